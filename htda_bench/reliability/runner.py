"""Evaluate models under a reliable suite: every attack per example, the worst case, the flags.

One reliable suite is an ordinary ``Suite`` (its attacks are distinct registered names: ``pgd``,
``pgd50``, ``pgd-rect0.5``, ..., ``apgd-ce``, ``apgd-dlr``, ``square``, ``bpda``, ``transfer``)
plus a ``reliability:`` section in the same YAML file (which ``parse_suite`` ignores): the large eps
of the chance check and its attacks, which attacks count as black-box, and the flag thresholds.

Per model, ``SuiteRunner`` scores every applicable attack at every eps into the results store
(resumable, like ``htda-bench run``), then a second small suite ``<name>.large-eps`` scores the
large-eps attacks, and two measurements on the model (zero input gradients, determinism) are stored
as metrics. Everything in the leaderboard is then derived from the store:

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
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from ..attacks import ATTACKS, parse_eps
from ..attacks.adaptive import ensure_registered, has_attention, spiking_neurons, transfer_source
from ..data import Split, load_split
from ..data.datasets import DATASETS
from ..errors import ConfigError
from ..harness.runner import CLEAN, SuiteRunner, Target
from ..leaderboard import eps_label, leaderboard_frame, write_run_record
from ..leaderboard.tables import ROBUST_PATTERN, TRAILING_COLUMNS
from ..store import ResultsStore
from ..suites import AttackSpec, Suite, parse_suite
from ..utils import atomic_path
from .checks import Flag, Thresholds, compute_flags, determinism_gap, zero_gradient_share

DEFAULT_STORE = Path("results") / "htda-bench.sqlite"
RELIABILITY_CONDITION = "reliability"  # model_metrics condition of the stored measurements
LARGE_EPS_SUFFIX = ".large-eps"
DEFAULT_LARGE_EPS = 0.5
DEFAULT_LARGE_EPS_ATTACKS = (AttackSpec("pgd", steps=20),)  # step size 2.5 * eps / steps
DEFAULT_BLACK_BOX = ("square", "transfer")
DETERMINISM_EXAMPLES = 16
SURROGATE_ATTACK = re.compile(r"^pgd-(rect|sigmoid|atan)[0-9.]+$")


# -- the suite --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReliableSuite:
    """A ``Suite`` plus what the reliability checks need (the YAML's ``reliability:`` section)."""

    suite: Suite
    large_eps: float = DEFAULT_LARGE_EPS
    large_eps_attacks: tuple[AttackSpec, ...] = DEFAULT_LARGE_EPS_ATTACKS
    reference_attack: str = "pgd"  # the paper's attack
    converged_attack: str = "pgd50"  # the same attack run longer
    black_box_attacks: tuple[str, ...] = DEFAULT_BLACK_BOX
    thresholds: Thresholds = field(default_factory=Thresholds)
    determinism_examples: int = DETERMINISM_EXAMPLES

    @property
    def name(self) -> str:
        return self.suite.name

    @property
    def large_eps_suite(self) -> Suite:
        return dataclasses.replace(self.suite, name=self.suite.name + LARGE_EPS_SUFFIX, attacks=self.large_eps_attacks,
                                   eps=(self.large_eps,),
                                   description=f"large-eps sanity check of {self.suite.name}")

    def to_dict(self) -> dict:
        return {"suite": self.suite.to_dict(), "config_hash": self.suite.config_hash, "large_eps": self.large_eps,
                "large_eps_attacks": [dataclasses.asdict(spec) for spec in self.large_eps_attacks],
                "reference_attack": self.reference_attack, "converged_attack": self.converged_attack,
                "black_box_attacks": list(self.black_box_attacks), "thresholds": self.thresholds.to_dict(),
                "determinism_examples": self.determinism_examples}

    def with_overrides(self, attacks: list[str] | None = None, large_eps: float | None = None,
                       **overrides) -> "ReliableSuite":
        """Suite overrides (n_examples, seeds, eps, models, batch_size; None ignored), ``attacks``
        (keep only these names of the suite's attacks) and ``large_eps``."""
        suite = self.suite
        if attacks is not None:
            known = {spec.name for spec in suite.attacks}
            unknown = [name for name in attacks if name not in known]
            if unknown:
                raise ConfigError(f"suite {suite.name} has no attack {', '.join(unknown)}; it has {', '.join(sorted(known))}")
            suite = dataclasses.replace(suite, attacks=tuple(spec for spec in suite.attacks if spec.name in attacks))
        suite = suite.with_overrides(**overrides)
        changed = dataclasses.replace(self, suite=suite)
        if large_eps is not None:
            changed = dataclasses.replace(changed, large_eps=float(large_eps))
        _validate(changed)
        return changed


def _attack_specs(items, where: str) -> tuple[AttackSpec, ...]:
    try:
        return tuple(AttackSpec(name=str(item["name"]), steps=item.get("steps"),
                                step_size=parse_eps(str(item["step_size"])) if item.get("step_size") is not None else None,
                                random_start=bool(item.get("random_start", True)))
                     for item in items)
    except (KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"{where}: invalid attack list ({type(error).__name__} {error})") from None


def _validate(reliable: ReliableSuite) -> None:
    suite = reliable.suite
    names = [spec.name for spec in suite.attacks]
    if len(set(names)) != len(names):
        raise ConfigError(f"suite {suite.name}: attack names must be distinct (they key the stored results): {names}")
    for name in names + [spec.name for spec in reliable.large_eps_attacks]:
        if not ensure_registered(name):
            raise ConfigError(f"suite {suite.name}: unknown attack {name!r}; known: {', '.join(sorted(ATTACKS))}")
    if not 0.0 < reliable.large_eps <= 1.0:
        raise ConfigError(f"suite {suite.name}: large_eps {reliable.large_eps} must be in (0, 1]")
    if reliable.determinism_examples < 1:
        raise ConfigError(f"suite {suite.name}: determinism_examples must be at least 1")


def parse_reliable_suite(data: dict, source: str) -> ReliableSuite:
    suite = parse_suite(data, source)
    section = data.get("reliability") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"suite file {source}: 'reliability' must be a mapping")
    known = {"large_eps", "large_eps_attacks", "reference_attack", "converged_attack", "black_box_attacks",
             "thresholds", "determinism_examples"}
    unknown = set(section) - known
    if unknown:
        raise ConfigError(f"suite file {source}: unknown reliability keys {sorted(unknown)}; known: {sorted(known)}")
    options = {}
    if "large_eps" in section:
        options["large_eps"] = parse_eps(str(section["large_eps"]))
    if "large_eps_attacks" in section:
        options["large_eps_attacks"] = _attack_specs(section["large_eps_attacks"], source)
    for key in ("reference_attack", "converged_attack"):
        if key in section:
            options[key] = str(section[key])
    if "black_box_attacks" in section:
        options["black_box_attacks"] = tuple(str(name) for name in section["black_box_attacks"])
    if "determinism_examples" in section:
        options["determinism_examples"] = int(section["determinism_examples"])
    options["thresholds"] = Thresholds.from_dict(section.get("thresholds"))
    reliable = ReliableSuite(suite=suite, **options)
    _validate(reliable)
    return reliable


def reliable_suite_names() -> list[str]:
    folder = resources.files("htda_bench.suites")
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir()
                  if entry.name.endswith(".yaml") and "reliability" in (yaml.safe_load(entry.read_text()) or {}))


def load_reliable_suite(name: str | Path, **overrides) -> ReliableSuite:
    """A shipped reliable suite by name (``reliable-mnist``) or a YAML file path, with overrides."""
    path = Path(str(name))
    if str(name).endswith((".yaml", ".yml")) and path.is_file():
        text, source = path.read_text(), str(path)
    else:
        entry = resources.files("htda_bench.suites") / f"{name}.yaml"
        if not entry.is_file():
            raise ConfigError(f"unknown reliable suite {name!r}: choose one of {', '.join(reliable_suite_names())}")
        text, source = entry.read_text(), f"{name}.yaml"
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or "reliability" not in data:
        raise ConfigError(f"suite {name} is not a reliable suite (no 'reliability' section); "
                          f"choose one of {', '.join(reliable_suite_names())}")
    reliable = parse_reliable_suite(data, source)
    return reliable.with_overrides(**overrides) if overrides else reliable


# -- which attacks apply to a model -----------------------------------------------------------------
def counterpart_name(model: str) -> str | None:
    """The transfer source of a zoo model: ``htda*-vgg..`` <-> ``s-snn-vgg..`` (same arch and dataset)."""
    match = re.match(r"^(?P<family>.+?)-(?P<rest>vgg.*)$", model)
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


# -- leaderboard ------------------------------------------------------------------------------------
def _label(attack: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", attack.lower()).strip("_")


def _eps_column(stem: str, eps: float) -> str:
    return f"{stem}_eps{eps_label(eps)}"


def _outcomes(store: ResultsStore, suite: str, protocol_version: str, model: str, weights: str,
              fingerprint: str) -> pd.DataFrame:
    frame = store.outcomes_frame(suite=suite, protocol_version=protocol_version, model=model)
    chosen = frame["weights_sha256"].str.startswith(weights) & frame["dataset_fingerprint"].str.startswith(fingerprint)
    return frame[chosen]


def _per_seed_mean(table: pd.DataFrame) -> pd.DataFrame:
    """[seed, eps, example] x columns of 0/1 -> % correct per (eps) averaged over seeds."""
    per_seed = table.groupby(level=["eps", "seed"]).mean() * 100.0
    return per_seed.groupby(level="eps").mean()


def _model_report(store: ResultsStore, reliable: ReliableSuite, row: pd.Series) -> tuple[dict, dict]:
    """(extra leaderboard columns, JSON report) for one model row of the base leaderboard."""
    suite = reliable.suite
    model, weights, fingerprint = row["model"], row["weights_sha256"], row["dataset_fingerprint"]
    outcomes = _outcomes(store, suite.name, suite.protocol_version, model, weights, fingerprint)
    metrics = store.metrics_frame(suite=suite.name, protocol_version=suite.protocol_version, model=model,
                                  condition=RELIABILITY_CONDITION)
    metrics = metrics[metrics["weights_sha256"].str.startswith(weights)
                      & metrics["dataset_fingerprint"].str.startswith(fingerprint)]
    measured = {name: group for name, group in metrics.groupby("metric")}
    plan = measured["plan"]["payload"].iloc[0] if "plan" in measured else None
    present = sorted(set(outcomes["attack"]) - {CLEAN})
    expected = list(plan["attacks"]) if plan else present
    missing = [name for name in expected if name not in present]
    attacks = [name for name in expected if name in present]

    attacked = outcomes[outcomes["attack"].isin(attacks)]
    table = attacked.pivot_table(index=["seed", "eps", "example_index"], columns="attack", values="correct",
                                 aggfunc="first")
    table = table.reindex(columns=attacks).dropna().astype(float)  # examples scored under every attack
    per_attack_frame = _per_seed_mean(table) if len(table) else pd.DataFrame(columns=attacks)
    per_attack = {name: {float(eps): float(value) for eps, value in per_attack_frame[name].items()}
                  for name in attacks}
    worst_per_seed = table.min(axis=1).groupby(level=["eps", "seed"]).mean() * 100.0 if len(table) else pd.Series(dtype=float)
    worst_mean = {float(eps): float(group.mean()) for eps, group in worst_per_seed.groupby(level="eps")}
    worst_std = {float(eps): float(np.std(group.to_numpy(), ddof=0)) for eps, group in worst_per_seed.groupby(level="eps")}
    scored = table.index.to_frame(index=False)
    clean = outcomes[outcomes["attack"] == CLEAN].merge(scored[["seed", "example_index"]].drop_duplicates(),
                                                        on=["seed", "example_index"])
    clean_acc = float((clean.groupby("seed")["correct"].mean() * 100.0).mean()) if len(clean) else math.nan
    long_rows = attacked.merge(scored, on=["seed", "eps", "example_index"])

    large = _outcomes(store, suite.name + LARGE_EPS_SUFFIX, suite.protocol_version, model, weights, fingerprint)
    large = large[large["attack"] != CLEAN]
    large_acc = math.nan
    if len(large):
        large_eps = float(large["eps"].max())
        large = large[large["eps"] == large_eps]
        large_table = large.pivot_table(index=["seed", "example_index"], columns="attack", values="correct",
                                        aggfunc="first").dropna()
        large_acc = float((large_table.min(axis=1).groupby(level="seed").mean() * 100.0).mean())
    else:
        large_eps = reliable.large_eps

    def metric(name):
        return float(measured[name]["value"].mean()) if name in measured and measured[name]["value"].notna().any() else None

    chance = metric("chance_acc")
    if chance is None:
        chance = 100.0 / DATASETS[suite.dataset].n_classes
    zero_grad, determinism = metric("zero_grad_share"), metric("determinism_gap")
    flags = compute_flags(clean_acc=clean_acc, per_attack=per_attack, worst_case=worst_mean, outcomes=long_rows,
                          large_eps_acc=None if math.isnan(large_acc) else large_acc, large_eps=large_eps,
                          chance=chance, black_box=reliable.black_box_attacks,
                          reference_attack=reliable.reference_attack, converged_attack=reliable.converged_attack,
                          zero_grad=zero_grad, determinism=determinism, thresholds=reliable.thresholds)
    if missing:  # an interrupted run: say so instead of a worst case over fewer attacks
        flags.append(Flag("complete", float(len(missing)), 0.0, False, "every planned attack has outcomes",
                          f"missing: {', '.join(missing)}"))
    failed = [flag.name for flag in flags if flag.passed is False]

    columns: dict = {}
    for eps in sorted(worst_mean):
        columns[_eps_column("robust_acc", eps) + "_mean"] = worst_mean[eps]
        columns[_eps_column("robust_acc", eps) + "_std"] = worst_std[eps]
    reference = per_attack.get(reliable.reference_attack, {})
    for eps in sorted(worst_mean):
        columns[_eps_column("pgd_minus_worst", eps)] = reference.get(eps, math.nan) - worst_mean[eps]
    for name in attacks:
        for eps, value in sorted(per_attack[name].items()):
            columns[_eps_column(f"{_label(name)}_acc", eps)] = value
    surrogate_names = [name for name in attacks if SURROGATE_ATTACK.match(name)]
    for eps in sorted(worst_mean):
        values = [per_attack[name][eps] for name in surrogate_names if eps in per_attack[name]]
        columns[_eps_column("surrogate_min_acc", eps)] = min(values) if values else math.nan
    columns.update({
        "large_eps": large_eps, "large_eps_acc": large_acc, "chance_acc": chance,
        "zero_grad_share": math.nan if zero_grad is None else zero_grad,
        "determinism_gap": math.nan if determinism is None else determinism,
        "flags_failed": ",".join(failed), "n_flags_failed": len(failed),
    })
    for flag in flags:
        columns[f"flag_{flag.name}"] = flag.status
    columns.update({
        "attacks": ",".join(attacks),
        "not_applicable": ",".join(sorted((plan or {}).get("not_applicable", {}))),
        "transfer_source": ((plan or {}).get("transfer_source") or {}).get("model", ""),
        "n_scored": int(scored.groupby(["seed", "eps"]).size().min()) if len(scored) else 0,
    })
    report = {
        "model": model, "suite": suite.name, "protocol_version": suite.protocol_version,
        "clean_acc": clean_acc, "worst_case": {eps_label(eps): value for eps, value in sorted(worst_mean.items())},
        "per_attack": {name: {eps_label(eps): value for eps, value in sorted(curve.items())}
                       for name, curve in per_attack.items()},
        "large_eps": {"eps": large_eps, "accuracy": large_acc, "chance": chance},
        "zero_grad_share": zero_grad, "determinism_gap": determinism,
        "flags": [flag.to_dict() for flag in flags], "flags_failed": failed,
        "plan": plan, "missing_attacks": missing, "n_scored_per_seed_and_eps": columns["n_scored"],
        "options": reliable.to_dict(),
    }
    return columns, report


def reliability_frame(store: ResultsStore | str | Path, reliable: ReliableSuite,
                      models: list[str] | None = None) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The reliable leaderboard (one row per model with outcomes in the store) and each model's report."""
    if not isinstance(store, ResultsStore):
        with ResultsStore(store) as opened:
            return reliability_frame(opened, reliable, models)
    base = leaderboard_frame(store, reliable.name, reliable.suite.protocol_version)
    if models is not None:
        base = base[base["model"].isin(models)]
    base = base[[column for column in base.columns if not ROBUST_PATTERN.match(column)]]
    rows, reports = [], {}
    for _, row in base.iterrows():
        columns, report = _model_report(store, reliable, row)
        leading = {key: row[key] for key in ("model", "family", "arch", "clean_acc_mean", "clean_acc_std")}
        trailing = {key: row[key] for key in TRAILING_COLUMNS if key in row}
        rows.append({**leading, **columns, **trailing})
        reports[row["model"]] = report
    if not rows:
        return pd.DataFrame(columns=list(base.columns)), reports
    frame = pd.DataFrame(rows)
    ordered = list(rows[0])
    for record in rows[1:]:
        ordered += [key for key in record if key not in ordered]
    # keep trailing provenance columns last
    ordered = [key for key in ordered if key not in TRAILING_COLUMNS] + [key for key in TRAILING_COLUMNS if key in ordered]
    frame = frame[ordered]
    numeric = [column for column in frame.columns if column.startswith(("robust_acc_eps", "pgd_minus_worst"))
               or "_acc_eps" in column or column in ("large_eps_acc", "chance_acc", "zero_grad_share")]
    frame[numeric] = frame[numeric].astype(float).round(2)
    return frame.sort_values("model", kind="stable").reset_index(drop=True), reports


def _json_safe(value):
    """Plain JSON: NaN and infinities become None (a flag's 'detail' says what happened)."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def write_reliability_leaderboard(frame: pd.DataFrame, leaderboards_dir: str | Path, suite: str) -> Path:
    path = Path(leaderboards_dir) / f"{suite}.csv"
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False, lineterminator="\n")
    return path


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
    "DEFAULT_STORE", "ReliableSuite", "counterpart_name", "evaluate_reliability", "load_reliable_suite",
    "parse_reliable_suite", "plan_attacks", "reliability_frame", "reliable_suite_names", "run_reliable",
    "write_reliability_leaderboard", "zoo_transfer_source",
]
