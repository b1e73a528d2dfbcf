"""Suites: versioned YAML protocols shipped with the package (``htda-bench suites list``).

A suite names a dataset, zoo models (glob patterns), attacks with their parameters, eps values,
seeds, the number of test examples and a protocol version. Command-line overrides produce a new
``Suite``; its ``config_hash`` changes with any field, so every result says what produced it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources

import yaml

from ..attacks import parse_eps
from ..data.datasets import DATASETS
from ..errors import ConfigError


@dataclass(frozen=True)
class AttackSpec:
    name: str
    steps: int | None = None
    step_size: float | None = None
    random_start: bool = True

    @property
    def label(self) -> str:
        return self.name


CLEAN_CORRECT_ONLY = "+clean-correct-only"


@dataclass(frozen=True)
class Suite:
    name: str
    protocol_version: str
    dataset: str
    models: tuple[str, ...]
    attacks: tuple[AttackSpec, ...]
    eps: tuple[float, ...]
    seeds: tuple[int, ...]
    n_examples: int
    batch_size: int = 200
    description: str = ""
    default_n_examples: int | None = field(default=None, compare=False)
    # Protocol option (off in every paper suite): examples the model already gets wrong on clean
    # input are stored as not robust without being attacked. It saves the attack's time on them,
    # but it can change numbers (a random start may land on a correctly classified point), so it
    # is part of the protocol version (suffix CLEAN_CORRECT_ONLY) and of the config hash.
    attack_clean_correct_only: bool = False

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("default_n_examples")
        if not data["attack_clean_correct_only"]:
            data.pop("attack_clean_correct_only")  # keeps the config hashes of existing suites
        return data

    @property
    def config_hash(self) -> str:
        """Hash of everything that can change a number (batch size cannot, by design)."""
        data = self.to_dict()
        data.pop("batch_size")
        data.pop("description")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def board_name(self) -> str:
        """The leaderboard file's name: a protocol option never overwrites the suite's own board."""
        return self.name + (CLEAN_CORRECT_ONLY if self.attack_clean_correct_only else "")

    @property
    def partial(self) -> bool:
        return self.default_n_examples is not None and self.n_examples < self.default_n_examples

    def with_overrides(self, **overrides) -> "Suite":
        """A copy with command-line overrides (``None`` values are ignored)."""
        changes = {key: value for key, value in overrides.items() if value is not None}
        attacks = self.attacks
        if "steps" in changes or "step_size" in changes:
            attacks = tuple(dataclasses.replace(attack, steps=changes.get("steps", attack.steps)
                                                if attack.steps is not None else None,
                                                step_size=changes.get("step_size", attack.step_size)
                                                if attack.step_size is not None else None)
                            for attack in attacks)
        changes.pop("steps", None)
        changes.pop("step_size", None)
        for key in ("models", "eps", "seeds"):
            if key in changes:
                changes[key] = tuple(changes[key])
        if changes.get("attack_clean_correct_only") and not self.attack_clean_correct_only:
            changes["protocol_version"] = self.protocol_version + CLEAN_CORRECT_ONLY
        suite = dataclasses.replace(self, attacks=attacks, **changes)
        _validate(suite)
        return suite


def _as_eps(value, where: str) -> float:
    try:
        return parse_eps(str(value))
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _validate(suite: Suite) -> None:
    if suite.dataset not in DATASETS:
        raise ConfigError(f"suite {suite.name}: unknown dataset {suite.dataset!r}")
    if suite.n_examples <= 0 or suite.batch_size <= 0:
        raise ConfigError(f"suite {suite.name}: n_examples and batch_size must be positive")
    if not suite.seeds or not suite.eps or not suite.attacks:
        raise ConfigError(f"suite {suite.name}: needs at least one seed, eps and attack")
    for eps in suite.eps:
        if not 0.0 <= eps <= 1.0:
            raise ConfigError(f"eps {eps} is outside [0, 1]: give eps as a fraction of the pixel range, e.g. 8/255")


def parse_suite(data: dict, source: str) -> Suite:
    try:
        attacks = tuple(
            AttackSpec(name=item["name"], steps=item.get("steps"),
                       step_size=_as_eps(item["step_size"], source) if item.get("step_size") is not None else None,
                       random_start=bool(item.get("random_start", True)))
            for item in data["attacks"]
        )
        suite = Suite(
            name=data["name"], protocol_version=str(data["protocol_version"]), dataset=data["dataset"],
            models=tuple(data["models"]), attacks=attacks,
            eps=tuple(_as_eps(value, source) for value in data["eps"]),
            seeds=tuple(int(seed) for seed in data["seeds"]), n_examples=int(data["n_examples"]),
            batch_size=int(data.get("batch_size", 200)), description=data.get("description", ""),
            default_n_examples=int(data["n_examples"]),
            attack_clean_correct_only=bool(data.get("attack_clean_correct_only", False)),
        )
        if suite.attack_clean_correct_only and not suite.protocol_version.endswith(CLEAN_CORRECT_ONLY):
            suite = dataclasses.replace(suite, protocol_version=suite.protocol_version + CLEAN_CORRECT_ONLY)
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"suite file {source} is invalid: {type(error).__name__} {error}") from None
    _validate(suite)
    return suite


def _suite_files() -> dict[str, str]:
    folder = resources.files(__package__)
    return {entry.name[: -len(".yaml")]: entry.read_text() for entry in folder.iterdir()
            if entry.name.endswith(".yaml")}


def list_suites() -> list[Suite]:
    return [parse_suite(yaml.safe_load(text), f"{name}.yaml") for name, text in sorted(_suite_files().items())]


def load_suite(name: str) -> Suite:
    files = _suite_files()
    if name not in files:
        raise ConfigError(f"unknown suite {name!r}: choose one of {', '.join(sorted(files))} "
                          "(htda-bench suites list)")
    return parse_suite(yaml.safe_load(files[name]), f"{name}.yaml")
