"""Training settings; a recipe YAML under ``zoo/recipes`` holds exactly these fields."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ConfigError

PAPER_ALPHA = {"cifar10": 0.10, "cifar100": 0.10, "mnist": 0.01, "nmnist": 0.01}


@dataclass
class TrainConfig:
    family: str = "s-snn"
    arch: str = "vgg32c"
    dataset: str = "mnist"
    epochs: float = 1.0  # fractions allowed for tiny budgets
    batch_size: int = 200
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.05  # share of all iterations spent in linear warm-up
    seed: int = 0
    # HTDA loss L = alpha*CE + (1-alpha)*L_M; None means the paper's value for the dataset
    alpha: float | None = None
    beta: float = 0.40
    gamma: float = 0.51
    temperature_start: float = 1.0
    temperature_end: float = 6.0
    # Deviation options (README, "Deviations from the paper"): iterations of CE only before
    # L_M is switched on, and the scale the CE term keeps when alpha is small.
    attention_loss_start: float = 0.0  # fraction of training before L_M is switched on
    ce_weight: str = "alpha"  # "alpha" (paper: alpha*CE) or "one" (CE + (1-alpha)/alpha * L_M)
    grad_clip: float | None = None  # max global gradient norm (None: no clipping, as in the paper)
    model_options: dict = field(default_factory=dict)
    # A zoo model whose matching weights the run starts from (train/warm_start.py), or None:
    # a deviation from the paper's single-stage training, used where noted in a recipe.
    init_from: str | None = None
    precision: str = "bf16"  # autocast dtype for training on CPU: "bf16" or "fp32"
    train_subset: int | None = None  # first N training examples only (tests, smoke runs)
    eval_subset: int | None = None  # first N test examples for the end-of-epoch accuracy
    threads: int | None = None
    recipe: str | None = None  # the recipe file this config came from, if any

    def __post_init__(self):
        if self.precision not in ("bf16", "fp32"):
            raise ConfigError(f"precision must be 'bf16' or 'fp32', not {self.precision!r}")
        if self.epochs <= 0 or self.batch_size <= 0:
            raise ConfigError("epochs and batch size must be positive")
        if self.ce_weight not in ("alpha", "one"):
            raise ConfigError("ce_weight must be 'alpha' or 'one'")

    @property
    def resolved_alpha(self) -> float:
        return PAPER_ALPHA.get(self.dataset, 0.1) if self.alpha is None else self.alpha

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        data = {k: v for k, v in self.to_dict().items() if k not in ("threads", "recipe")}
        if data["init_from"] is None:  # settings from before init_from existed keep their hash
            del data["init_from"]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_recipe(cls, path: str | Path, **overrides) -> "TrainConfig":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"recipe {path} does not exist: see zoo/recipes/ for the shipped ones") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"recipe {path} is not valid YAML: {str(error).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"recipe {path} must be a mapping of training settings")
        data.pop("description", None)
        data.update({k: v for k, v in overrides.items() if v is not None})
        data["recipe"] = str(path)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"recipe {path} has unknown settings {unknown}: allowed are {sorted(known)}")
        return cls(**data)
