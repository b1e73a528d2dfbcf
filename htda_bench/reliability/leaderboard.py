"""The reliable leaderboard from the store: per model the worst case over all attacks, per attack, flags."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.datasets import DATASETS
from ..harness.runner import CLEAN
from ..leaderboard import eps_label, leaderboard_frame
from ..leaderboard.tables import ROBUST_PATTERN, TRAILING_COLUMNS
from ..store import ResultsStore
from ..utils import atomic_path
from .checks import Flag, compute_flags
from .suite import LARGE_EPS_SUFFIX, RELIABILITY_CONDITION, SURROGATE_ATTACK, ReliableSuite


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


__all__ = ["reliability_frame", "write_reliability_leaderboard"]
