"""The evaluation harness: run suites on zoo models or on any model following the contract."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import save as safetensors_bytes

from ..data import load_split
from ..distributed import current_world
from ..errors import ConfigError
from ..leaderboard import leaderboard_frame, write_leaderboard, write_run_record
from ..store import ResultsStore
from ..suites import Suite, load_suite
from .runner import SuiteRunner, Target

DEFAULT_STORE = Path("results") / "htda-bench.sqlite"


def state_dict_sha256(model: torch.nn.Module) -> str:
    """A weights hash for a model that did not come from a file (the safetensors bytes' sha256)."""
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    return hashlib.sha256(safetensors_bytes(tensors)).hexdigest()


def resolve_suite(suite: str | Suite, **overrides) -> Suite:
    base = load_suite(suite) if isinstance(suite, str) else suite
    return base.with_overrides(**overrides)


def zoo_targets(suite: Suite) -> list[Target]:
    from ..zoo import get_card, load_model, model_names

    names = model_names(list(suite.models), dataset=suite.dataset)
    if not names:
        raise ConfigError(f"no zoo model matches {list(suite.models)} for dataset {suite.dataset}: "
                          "see htda-bench zoo list")
    return [Target(name, load_model(name), get_card(name)["weights_sha256"]) for name in names]


def run_targets(suite: Suite, targets: list[Target], store_path: str | Path = DEFAULT_STORE,
                leaderboards_dir: str | Path | None = "leaderboards", data_root=None,
                show_progress: bool = True, on_batch=None) -> pd.DataFrame:
    """Evaluate targets under the suite into the store; rewrite the leaderboard; return its frame.

    Under torchrun every rank scores its share, and rank 0 alone writes the store and the
    leaderboard and returns the frame (other ranks return an empty one).
    """
    split = load_split(suite.dataset, "test", data_root)
    world = current_world()
    if not world.is_root:
        runner = SuiteRunner(suite, split, None, show_progress=False, world=world)
        for target in targets:
            runner.run(target)
        world.barrier()
        return pd.DataFrame()
    with ResultsStore(store_path) as store:
        runner = SuiteRunner(suite, split, store, show_progress=show_progress, on_batch=on_batch, world=world)
        for target in targets:
            record = runner.run(target)
            if leaderboards_dir is not None:
                write_run_record(record, leaderboards_dir, suite.board_name, target.name)
        frame = leaderboard_frame(store, suite.name, suite.protocol_version)
        if leaderboards_dir is not None:
            write_leaderboard(store, suite.name, suite.protocol_version, leaderboards_dir, suite.board_name)
    world.barrier()
    names = {target.name for target in targets}
    return frame[frame["model"].isin(names)].reset_index(drop=True)


def evaluate(model: torch.nn.Module | str, suite: str | Suite = "pgd-mnist", name: str | None = None,
             store: str | Path | None = None, data_root=None, show_progress: bool = False,
             **overrides) -> pd.DataFrame:
    """Evaluate one model (a zoo name or an ``nn.Module`` following the model contract) under a
    suite; returns its leaderboard row(s) as a DataFrame. Overrides: n_examples, seeds, eps, ..."""
    resolved = resolve_suite(suite, **overrides)
    if isinstance(model, str):
        from ..zoo import get_card, load_model

        target = Target(model, load_model(model), get_card(model)["weights_sha256"])
    else:
        target = Target(name or type(model).__name__, model, state_dict_sha256(model))
    if store is None:
        with tempfile.TemporaryDirectory() as folder:
            return run_targets(resolved, [target], Path(folder) / "store.sqlite", None, data_root, show_progress)
    return run_targets(resolved, [target], store, None, data_root, show_progress)
