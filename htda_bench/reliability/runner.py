"""Evaluate models under a reliable suite: every attack per example, the worst case, the flags.

One reliable suite is an ordinary ``Suite`` (its attacks are distinct registered names: ``pgd``,
``pgd50``, ``pgd-rect0.5``, ..., ``apgd-ce``, ``apgd-dlr``, ``square``, ``bpda``, ``transfer``)
plus a ``reliability:`` section in the same YAML file (which ``parse_suite`` ignores): the large eps
of the chance check and its attacks, which attacks count as black-box, and the flag thresholds
(``suite``).

Per model, ``SuiteRunner`` scores every applicable attack at every eps into the results store
(resumable, like ``htda-bench run``), then a second small suite ``<name>.large-eps`` scores the
large-eps attacks, and two measurements on the model (zero input gradients, determinism) are stored
as metrics. Everything in the leaderboard (``leaderboard``) is then derived from the store:

* per example, robust = correct under *every* attack of the model (the worst case);
* per attack, accuracy over the same examples; the flags of ``checks``.

``leaderboards/<suite>.csv`` holds one row per model (a failing flag never removes a row) and
``leaderboards/runs/<suite>/<model>.json`` the run record plus each flag's name, value, threshold
and pass/fail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from pathlib import Path

import pandas as pd
import torch

from ..attacks.adaptive import has_attention, spiking_neurons, transfer_source
from ..data import Split, load_split
from ..errors import ConfigError
from ..harness.runner import CLEAN, SuiteRunner, Target
from ..leaderboard import write_run_record
from ..store import ResultsStore
from ..suites import AttackSpec, Suite
from .checks import determinism_gap, zero_gradient_share
from .leaderboard import _json_safe, reliability_frame, write_reliability_leaderboard
from .suite import RELIABILITY_CONDITION, SURROGATE_ATTACK, ReliableSuite, load_reliable_suite

DEFAULT_STORE = Path("results") / "htda-bench.sqlite"


# -- which attacks apply to a model -----------------------------------------------------------------
def counterpart_name(model: str) -> str | None:
    """The transfer source of a zoo model: ``htda*-vgg..`` <-> ``s-snn-vgg..`` (same arch and dataset)."""
    match = re.match(r"^(?P<family>.+?)-(?P<rest>vgg\d+c-[a-z0-9]+)(-[a-z]+)?$", model)
    if not match:
        return None
    if match["family"].startswith("htda"):
        return f"s-snn-{match['rest']}"
    if match["family"] == "s-snn":
        return f"htda-{match['rest']}"
    return None


def zoo_transfer_source(model: str, dataset: str) -> Target | None:
    """The zoo counterpart of ``model`` as a ``Target``, or None if the zoo lacks it."""
    from ..zoo import get_card, load_model, model_names

    name = counterpart_name(model)
    if name is None or name not in model_names(dataset=dataset):
        return None
    return Target(name, load_model(name), get_card(name)["weights_sha256"])


def plan_attacks(reliable: ReliableSuite, model: torch.nn.Module, has_source: bool
                 ) -> tuple[tuple[AttackSpec, ...], dict[str, str]]:
    """The suite's attacks that apply to ``model``, and why each other one does not."""
    spiking = bool(spiking_neurons(model))
    attention = has_attention(model)
    kept, skipped = [], {}
    for spec in reliable.suite.attacks:
        if spec.name == "bpda" and not attention:
            skipped[spec.name] = "no HTDA attention generator"
        elif spec.name == "transfer" and not has_source:
            skipped[spec.name] = "no source model (no zoo counterpart)"
        elif SURROGATE_ATTACK.match(spec.name) and not spiking:
            skipped[spec.name] = "no SpikingJelly neuron whose surrogate could be swapped"
        else:
            kept.append(spec)
    if not kept:
        raise ConfigError(f"no attack of suite {reliable.name} applies to this model")
    return tuple(kept), skipped


# -- evaluation -------------------------------------------------------------------------------------
def _progress_note(show: bool, text: str) -> None:
    if show:
        from rich.console import Console

        Console(stderr=True).print(text)


def _chance(labels: torch.Tensor) -> float:
    """% accuracy of the best constant guess on these labels (the most frequent class's share)."""
    if len(labels) == 0:
        return math.nan
    return 100.0 * float(torch.bincount(labels.long()).max()) / len(labels)


def _check_transfer_source(store: ResultsStore, suite: Suite, target: Target, split: Split,
                           source: Target | None) -> None:
    """Stored transfer outcomes are keyed by the attacked model only: refuse to mix sources."""
    if source is None:
        return
    stored = store.metrics_frame(suite=suite.name, protocol_version=suite.protocol_version, model=target.name,
                                 weights_sha256=target.weights_sha256, dataset_fingerprint=split.fingerprint,
                                 condition=RELIABILITY_CONDITION, metric="plan")
    for payload in stored["payload"]:
        before = (payload or {}).get("transfer_source") or {}
        if before and before.get("weights_sha256") != source.weights_sha256:
            raise ConfigError(f"the store holds transfer results for {target.name} crafted on {before.get('model')} "
                              f"(weights {str(before.get('weights_sha256'))[:12]}), now the source is {source.name} "
                              f"(weights {source.weights_sha256[:12]}): use another results store (--out)")


def evaluate_reliability(reliable: ReliableSuite, target: Target, split: Split, store: ResultsStore,
                         source: Target | None = None, show_progress: bool = True) -> dict:
    """Score ``target`` under every applicable attack of the suite and the large-eps check, and store
    the model measurements. Resumable: stored outcomes are not recomputed. Returns the main run record
    (with ``reliability_plan``: attacks run, attacks skipped and why, transfer source)."""
    from ..submission.validate import ensure_spiking_layers  # the runner's firing-rate recorder needs it

    ensure_spiking_layers(target.model)
    if source is not None:
        source.model.eval()
        source.model.requires_grad_(False)
    attacks, skipped = plan_attacks(reliable, target.model, source is not None)
    main = dataclasses.replace(reliable.suite, attacks=attacks)
    runner = SuiteRunner(main, split, store, show_progress=show_progress)
    if runner.world.size > 1:
        raise ConfigError("reliable suites run in one process (torchrun sharding is not supported)")
    _check_transfer_source(store, main, target, split, source)
    with transfer_source(target.model, source.model) if source is not None else contextlib.nullcontext():
        record = runner.run(target)
    _progress_note(show_progress, f"{target.name}: large-eps check (eps {reliable.large_eps:g})")
    SuiteRunner(reliable.large_eps_suite, split, store, show_progress=show_progress).run(target)

    indices = runner.indices
    images, labels = split.as_float(indices), split.labels[indices]
    keys = [runner.key(target, seed, CLEAN, 0.0) for seed in main.seeds]
    stored = store.metrics_frame(suite=main.name, protocol_version=main.protocol_version, model=target.name,
                                 weights_sha256=target.weights_sha256, dataset_fingerprint=split.fingerprint,
                                 condition=RELIABILITY_CONDITION)
    have = stored[stored["metric"] == "zero_grad_share"]
    if have.empty or int((have["payload"].iloc[0] or {}).get("n", -1)) != len(indices):
        _progress_note(show_progress, f"{target.name}: input gradients of {len(indices)} clean examples")
        share, count = zero_gradient_share(target.model, images, labels, batch_size=main.batch_size)
        for key in keys:
            store.set_metric(key, condition=RELIABILITY_CONDITION, metric="zero_grad_share", value=share,
                             payload={"n": count})
    gap = determinism_gap(target.model, images[: reliable.determinism_examples])
    plan = {"attacks": [spec.name for spec in attacks], "not_applicable": skipped,
            "transfer_source": None if source is None else {"model": source.name,
                                                            "weights_sha256": source.weights_sha256}}
    for key in keys:
        store.set_metric(key, condition=RELIABILITY_CONDITION, metric="determinism_gap", value=gap)
        store.set_metric(key, condition=RELIABILITY_CONDITION, metric="chance_acc", value=_chance(labels),
                         payload={"n": len(indices)})
        store.set_metric(key, condition=RELIABILITY_CONDITION, metric="plan", value=None, payload=plan)
    record["reliability_plan"] = plan
    return record


def run_reliable(suite: str | ReliableSuite, targets: list[Target] | None = None, *,
                 store_path: str | Path = DEFAULT_STORE, leaderboards_dir: str | Path | None = "leaderboards",
                 data_root=None, split: Split | None = None, sources: dict[str, Target | None] | None = None,
                 show_progress: bool = True, **overrides) -> pd.DataFrame:
    """Evaluate ``targets`` (default: the suite's zoo models) under a reliable suite; returns their rows.

    ``sources`` maps a target name to its transfer source (None: no transfer attack); targets not in
    it get their zoo counterpart (``htda-*`` <-> ``s-snn-*``) when the zoo has one. ``split`` replaces
    the suite's test split (tests use synthetic data). Overrides: n_examples, seeds, eps, models,
    batch_size, attacks (subset of names), large_eps.
    """
    reliable = load_reliable_suite(suite, **overrides) if isinstance(suite, (str, Path)) else (
        suite.with_overrides(**overrides) if overrides else suite)
    if targets is None:
        from ..harness import zoo_targets

        targets = zoo_targets(reliable.suite)
    if not targets:
        raise ConfigError(f"no model to evaluate under {reliable.name}")
    split = split if split is not None else load_split(reliable.suite.dataset, "test", data_root)
    sources = dict(sources or {})
    reports: dict[str, dict] = {}
    records: dict[str, dict] = {}
    with ResultsStore(store_path) as store:
        for target in targets:
            source = sources[target.name] if target.name in sources else zoo_transfer_source(
                target.name, reliable.suite.dataset)
            records[target.name] = evaluate_reliability(reliable, target, split, store, source, show_progress)
            frame, reports = reliability_frame(store, reliable)
            if leaderboards_dir is not None:
                write_reliability_leaderboard(frame, leaderboards_dir, reliable.name)
                record = {**records[target.name], "reliability": reports[target.name]}
                write_run_record(_json_safe(record), leaderboards_dir, reliable.name, target.name)
    names = {target.name for target in targets}
    result = frame[frame["model"].isin(names)].reset_index(drop=True)
    result.attrs["reports"] = {name: reports[name] for name in names if name in reports}
    return result


__all__ = [
    "DEFAULT_STORE", "counterpart_name", "evaluate_reliability", "plan_attacks", "run_reliable", "zoo_transfer_source",
]
