"""The model zoo: one JSON card per checkpoint under ``zoo/``, weights under ``zoo/weights/``.

``load_model(name)`` re-hashes the weights and compares with the card before loading, so a
tampered or truncated file is refused, never silently used. Weights are safetensors (no pickle).
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path

from .errors import CheckpointError, ConfigError
from .models.checkpoint import load_weights
from .utils import repository_root, sha256_file

CARD_REQUIRED = ("name", "family", "arch", "dataset", "dataset_variant", "weights", "weights_sha256",
                 "test_accuracy", "test_examples", "recipe", "epochs", "wall_time_s", "hardware", "date",
                 "git_commit")


def zoo_dir() -> Path:
    """``$HTDA_BENCH_ZOO``, else the ``zoo/`` folder of this checkout."""
    return Path(os.environ.get("HTDA_BENCH_ZOO", repository_root() / "zoo"))


def _read_card(path: Path) -> dict:
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"model card {path} is unreadable: {error}") from None
    missing = [key for key in CARD_REQUIRED if key not in card]
    if missing:
        raise CheckpointError(f"model card {path} lacks {missing}")
    return card


def list_cards(zoo: Path | None = None) -> list[dict]:
    """All model cards, sorted by name."""
    folder = zoo or zoo_dir()
    return sorted((_read_card(path) for path in folder.glob("*.json")), key=lambda card: card["name"])


def model_names(patterns: list[str] | None = None, dataset: str | None = None, zoo: Path | None = None) -> list[str]:
    """Zoo names matching any of the glob patterns (all by default), optionally for one dataset."""
    names = [card["name"] for card in list_cards(zoo) if dataset is None or card["dataset"] == dataset]
    if not patterns:
        return names
    return [name for name in names if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)]


def get_card(name: str, zoo: Path | None = None) -> dict:
    folder = zoo or zoo_dir()
    path = folder / f"{name}.json"
    if not path.exists():
        known = ", ".join(card["name"] for card in list_cards(folder)) or "none"
        raise ConfigError(f"unknown model {name!r}: the zoo holds {known}")
    return _read_card(path)


def weights_path(card: dict, zoo: Path | None = None) -> Path:
    return (zoo or zoo_dir()) / card["weights"]


def verify_weights(card: dict, zoo: Path | None = None) -> Path:
    """Raise unless the weights file exists and its sha256 equals the card's."""
    path = weights_path(card, zoo)
    if not path.exists():
        raise CheckpointError(f"weights of {card['name']} missing: expected {path}")
    digest = sha256_file(path)
    if digest != card["weights_sha256"]:
        raise CheckpointError(f"weights of {card['name']} fail the sha256 check ({digest[:12]}... != card "
                              f"{card['weights_sha256'][:12]}...): the file was changed; restore it from git")
    return path


def load_model(name: str, zoo: Path | None = None):
    """A zoo model in eval mode, after its sha256 check, following the model contract."""
    card = get_card(name, zoo)
    model = load_weights(verify_weights(card, zoo))
    model.zoo_card = card
    return model


def _recipe_description(root: Path, recipe: str | None) -> str | None:
    """The recipe's own account of what was trained (budget, deviations), for the card."""
    import yaml

    path = Path(recipe) if recipe else None
    if path is not None and not path.is_absolute():
        path = root / path
    if path is None or not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    return " ".join(str(data.get("description", "")).split()) or None


def publish(run_dir: str | Path, name: str | None = None, zoo: Path | None = None, data_root=None,
            allow_float16: bool = True) -> dict:
    """Copy a finished training run into the zoo: weights (float16 when clean accuracy on the full
    test set stays within 0.1 points of float32) and a model card with the measured accuracy."""
    import torch

    from .data import load_split
    from .metrics.accuracy import clean_accuracy
    from .models.checkpoint import save_weights
    from .utils import write_json_atomic

    run_dir = Path(run_dir)
    folder = zoo or zoo_dir()
    try:
        run_card = json.loads((run_dir / "card.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise ConfigError(f"{run_dir} holds no finished training run (card.json): train it to the end first") from None
    name = name or run_card["name"]
    model = load_weights(run_dir / "model.safetensors")
    split = load_split(run_card["dataset"], "test", data_root)
    fp32_accuracy = clean_accuracy(model, split)
    weights_file = folder / "weights" / f"{name}.safetensors"
    dtype = None
    accuracy = fp32_accuracy
    if allow_float16:
        save_weights(model, weights_file, dtype=torch.float16)
        half_accuracy = clean_accuracy(load_weights(weights_file), split)
        if abs(half_accuracy - fp32_accuracy) <= 0.1:
            dtype, accuracy = torch.float16, half_accuracy
    if dtype is None:
        save_weights(model, weights_file)
    card = {
        "name": name, "family": run_card["family"], "variant": run_card.get("variant", run_card["family"]),
        "training_note": _recipe_description(folder.parent, run_card.get("recipe")),
        "arch": run_card["arch"], "dataset": run_card["dataset"], "dataset_variant": split.variant,
        "test_fingerprint": split.fingerprint, "recipe": run_card["recipe"], "init_from": run_card.get("init_from"),
        "epochs": run_card["epochs"],
        "iterations": run_card["iterations"], "train_examples": run_card["train_examples"],
        "wall_time_s": run_card["wall_time_s"], "hardware": run_card["hardware"],
        "test_accuracy": round(accuracy, 2), "test_examples": len(split),
        "fp32_test_accuracy": round(fp32_accuracy, 2),
        "weights": str(weights_file.relative_to(folder)), "weights_dtype": "float16" if dtype else "float32",
        "weights_sha256": sha256_file(weights_file),
        "final_train_accuracy": run_card.get("final_train_accuracy"),
        "attention_stats": run_card.get("attention_stats"),
        "train_config": run_card["train_config"], "model_config": run_card["model_config"],
        "history": run_card.get("history"), "trained_git_commit": run_card["git_commit"],
        "trained_git_commits": run_card.get("git_commits", [run_card["git_commit"]]),
        "git_commit": run_card["git_commit"], "package_versions": run_card["package_versions"],
        "date": run_card["date"],
    }
    write_json_atomic(folder / f"{name}.json", card)
    return card
