"""Leaderboard tables built from the results store: one row per model, mean ± std over seeds.

The CSV is derived data: it can always be regenerated from the store, so it is rewritten whole
(atomically) rather than edited, and its columns are stable and documented in ``COLUMNS_DOC``.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from ..errors import ConfigError
from ..store import ResultsStore, eps_label
from ..utils import atomic_path, write_json_atomic

__all__ = ["COLUMNS_DOC", "eps_label", "leaderboard_frame", "write_leaderboard", "write_run_record",
           "read_leaderboard", "render_leaderboard", "describe_column"]

LEADING_COLUMNS = ["model", "family", "arch", "clean_acc_mean", "clean_acc_std"]
TRAILING_COLUMNS = ["firing_rate_mean", "firing_rate_std", "macs_m", "params_m", "n_examples", "seeds",
                    "dataset_variant", "dataset_fingerprint", "weights_sha256", "protocol_version", "date"]
TEXT_COLUMNS = ["model", "family", "arch", "seeds", "dataset_variant", "dataset_fingerprint",
                "weights_sha256", "protocol_version", "date"]
ROBUST_PATTERN = re.compile(r"^(?:(?P<attack>.+)_)?robust_acc_eps(?P<eps>[0-9.]+)_(?P<stat>mean|std)$")

COLUMNS_DOC: dict[str, str] = {
    "model": "model name as registered (e.g. s-snn-vgg32c-mnist)",
    "family": "name prefix before '-vgg' (e.g. s-snn, htda); empty if the name has no '-vgg'",
    "arch": "architecture token from the name (e.g. vgg32c); empty if none",
    "clean_acc_mean": "clean accuracy in %, mean over seeds",
    "clean_acc_std": "clean accuracy in %, standard deviation over seeds (ddof=0; 0 for one seed)",
    "robust_acc_eps<N>_mean": "accuracy in % under the suite's attack at eps = N/255, mean over seeds; "
                              "prefixed '<attack>_' when the suite has several attacks",
    "robust_acc_eps<N>_std": "standard deviation over seeds of robust_acc_eps<N>_mean (ddof=0)",
    "firing_rate_mean": "mean spike firing rate on clean inputs (metric firing_rate), mean over seeds",
    "firing_rate_std": "standard deviation over seeds of the firing rate (ddof=0)",
    "macs_m": "multiply-accumulates per inference, millions (metric macs_m), mean over seeds",
    "params_m": "trainable parameters, millions (metric params_m)",
    "n_examples": "clean test examples evaluated per seed (minimum over seeds)",
    "seeds": "comma-separated evaluation seeds",
    "dataset_variant": "dataset variant of the latest run (e.g. the test split used)",
    "dataset_fingerprint": "first 16 hex digits of the dataset fingerprint",
    "weights_sha256": "first 16 hex digits of the SHA-256 of the evaluated weights",
    "protocol_version": "suite protocol version the numbers were produced under",
    "date": "UTC date (YYYY-MM-DD) the latest run finished",
}


def describe_column(name: str) -> str:
    """The COLUMNS_DOC entry for a concrete column name, robust-accuracy columns included."""
    match = ROBUST_PATTERN.match(name)
    if match:
        return COLUMNS_DOC[f"robust_acc_eps<N>_{match['stat']}"]
    return COLUMNS_DOC[name]


def _name_parts(model: str) -> tuple[str, str]:
    match = re.match(r"^(?P<family>.+?)-(?P<arch>vgg[0-9a-z_]*)(?:-|$)", model)
    return (match["family"], match["arch"]) if match else ("", "")


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _mean_std(values) -> tuple[float, float]:
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values, ddof=0))


def _latest_run(runs: pd.DataFrame, model: str) -> pd.Series | None:
    """The model's run record that finished last (by ``finished``, then ``started``)."""
    runs = runs[runs["model"] == model]
    if runs.empty:
        return None
    order = pd.DataFrame({
        "finished": pd.to_datetime(runs["finished"], utc=True, errors="coerce", format="ISO8601"),
        "started": pd.to_datetime(runs["started"], utc=True, errors="coerce", format="ISO8601"),
    }, index=runs.index).sort_values(["finished", "started"], na_position="first", kind="stable")
    return runs.loc[order.index[-1]]


def _select_rows(counts: pd.DataFrame, run: pd.Series | None) -> pd.DataFrame:
    """Outcome counts of one model restricted to one (weights, dataset) pair: the latest run's if
    it has outcomes, otherwise the pair with the most stored outcomes."""
    if run is not None:
        chosen = counts
        for column in ("weights_sha256", "dataset_fingerprint"):
            if _text(run[column]):
                chosen = chosen[chosen[column] == run[column]]
        if not chosen.empty:
            return chosen
    sizes = counts.groupby(["weights_sha256", "dataset_fingerprint"])["n"].sum()
    weights, fingerprint = sizes.sort_index().idxmax()
    return counts[(counts["weights_sha256"] == weights) & (counts["dataset_fingerprint"] == fingerprint)]


def _robust_columns(conditions: list[tuple[str, str, float]]) -> list[tuple[str, str, str]]:
    """(attack, eps_key, column stem) for every attacked condition, by attack then eps."""
    prefix = len({attack for attack, _, _ in conditions}) > 1
    ordered = sorted(set(conditions), key=lambda item: (item[0], item[2]))
    stems = []
    for attack, key, _ in ordered:
        label = re.sub(r"[^0-9a-z]+", "_", attack.lower()).strip("_")
        stems.append((attack, key, f"{label}_robust_acc_eps{key}" if prefix else f"robust_acc_eps{key}"))
    return stems


def _accuracy_per_seed(rows: pd.DataFrame) -> pd.Series:
    grouped = rows.groupby("seed")[["n", "n_correct"]].sum()
    return 100.0 * grouped["n_correct"] / grouped["n"]


def leaderboard_frame(store: ResultsStore | str | os.PathLike, suite: str,
                      protocol_version: str) -> pd.DataFrame:
    """One row per model with outcomes for ``suite`` at ``protocol_version``.

    When a model has outcomes for several weights or dataset fingerprints, only the pair of its
    latest run record (by ``finished``) counts; without a run record, the pair with the most rows.
    """
    if not isinstance(store, ResultsStore):
        with ResultsStore(store) as opened:
            return leaderboard_frame(opened, suite, protocol_version)
    protocol_version = str(protocol_version)
    counts = store.outcome_counts(suite, protocol_version)
    if counts.empty:
        return pd.DataFrame(columns=LEADING_COLUMNS + TRAILING_COLUMNS)
    runs = store.runs_frame(suite=suite, protocol_version=protocol_version)
    chosen = {}
    for model in sorted(counts["model"].unique()):
        run = _latest_run(runs, model)
        chosen[model] = (run, _select_rows(counts[counts["model"] == model], run))
    conditions = [(row.attack, row.eps_key, float(row.eps)) for _, rows in chosen.values()
                  for row in rows.itertuples() if row.attack != "clean"]
    robust = _robust_columns(conditions)

    records = []
    for model, (run, rows) in chosen.items():
        family, arch = _name_parts(model)
        clean = rows[rows["attack"] == "clean"]
        record = {"model": model, "family": family, "arch": arch}
        record["clean_acc_mean"], record["clean_acc_std"] = _mean_std(_accuracy_per_seed(clean))
        for attack, key, stem in robust:
            attacked = rows[(rows["attack"] == attack) & (rows["eps_key"] == key)]
            record[f"{stem}_mean"], record[f"{stem}_std"] = _mean_std(_accuracy_per_seed(attacked))
        weights, fingerprint = rows["weights_sha256"].iloc[0], rows["dataset_fingerprint"].iloc[0]
        metrics = store.metrics_frame(suite=suite, protocol_version=protocol_version, model=model,
                                      weights_sha256=weights, dataset_fingerprint=fingerprint,
                                      condition="clean")
        per_metric = {name: group["value"].tolist() for name, group in metrics.groupby("metric")}
        record["firing_rate_mean"], record["firing_rate_std"] = _mean_std(per_metric.get("firing_rate", []))
        record["macs_m"] = _mean_std(per_metric.get("macs_m", []))[0]
        record["params_m"] = _mean_std(per_metric.get("params_m", []))[0]
        clean_sizes = clean.groupby("seed")["n"].sum()
        record["n_examples"] = int(clean_sizes.min()) if not clean_sizes.empty else 0
        seeds = sorted(int(seed) for seed in (clean if not clean.empty else rows)["seed"].unique())
        record["seeds"] = ",".join(str(seed) for seed in seeds)
        finished = None if run is None else pd.to_datetime(run["finished"], utc=True, errors="coerce")
        record.update({
            "dataset_variant": "" if run is None else _text(run["dataset_variant"]),
            "dataset_fingerprint": str(fingerprint)[:16],
            "weights_sha256": str(weights)[:16],
            "protocol_version": protocol_version,
            "date": "" if finished is None or pd.isna(finished) else finished.strftime("%Y-%m-%d"),
        })
        records.append(record)

    robust_columns = [f"{stem}_{stat}" for _, _, stem in robust for stat in ("mean", "std")]
    frame = pd.DataFrame(records, columns=LEADING_COLUMNS + robust_columns + TRAILING_COLUMNS)
    accuracy_columns = ["clean_acc_mean", "clean_acc_std"] + robust_columns
    frame[accuracy_columns] = frame[accuracy_columns].astype(float).round(2)
    frame[["firing_rate_mean", "firing_rate_std"]] = frame[["firing_rate_mean", "firing_rate_std"]].round(4)
    frame[["macs_m", "params_m"]] = frame[["macs_m", "params_m"]].astype(float).round(3)
    return frame.sort_values("model", kind="stable").reset_index(drop=True)


def _safe_name(kind: str, name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ConfigError(f"{kind} name {name!r} cannot be used as a file name")
    return name


def write_leaderboard(store: ResultsStore | str | os.PathLike, suite: str, protocol_version: str,
                      leaderboards_dir: str | os.PathLike, board_name: str | None = None) -> Path:
    """Regenerate ``<leaderboards_dir>/<board_name or suite>.csv`` from the store (replaced atomically)."""
    frame = leaderboard_frame(store, suite, protocol_version)
    if frame.empty:
        where = store.path if isinstance(store, ResultsStore) else store
        raise ConfigError(f"no results for suite {suite} (protocol {protocol_version}) in {where}; "
                          f"run `htda-bench run --suite {suite}` first")
    path = Path(leaderboards_dir) / f"{_safe_name('suite', board_name or suite)}.csv"
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False, lineterminator="\n")
    return path


def write_run_record(record: dict, leaderboards_dir: str | os.PathLike, suite: str, model: str) -> Path:
    """Write ``<leaderboards_dir>/runs/<suite>/<model>.json`` (replaced atomically)."""
    path = Path(leaderboards_dir) / "runs" / _safe_name("suite", suite) / f"{_safe_name('model', model)}.json"
    write_json_atomic(path, json.loads(json.dumps(record, default=str)))
    return path


def read_leaderboard(leaderboards_dir: str | os.PathLike, suite: str) -> pd.DataFrame:
    """Read a leaderboard CSV back, keeping hashes, seeds and versions as text."""
    path = Path(leaderboards_dir) / f"{suite}.csv"
    if not path.is_file():
        raise ConfigError(f"no leaderboard for suite {suite} at {path}; "
                          f"run `htda-bench run --suite {suite}` first")
    frame = pd.read_csv(path, dtype={column: str for column in TEXT_COLUMNS})
    present = [column for column in TEXT_COLUMNS if column in frame.columns]
    frame[present] = frame[present].fillna("")
    return frame


def _plus_minus(mean, std, digits: int = 2) -> str:
    if pd.isna(mean):
        return "—"
    return f"{mean:.{digits}f}" if pd.isna(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def render_leaderboard(df: pd.DataFrame, title: str) -> Table:
    """A compact terminal table: accuracies as mean ± std, then firing rate, MACs and params."""
    table = Table(title=title, header_style="bold")
    table.add_column("model", no_wrap=True)
    table.add_column("clean %", justify="right")
    robust = [(column[: -len("_mean")], ROBUST_PATTERN.match(column)) for column in df.columns
              if ROBUST_PATTERN.match(column) and column.endswith("_mean")]
    for _, match in robust:
        attack = f"{match['attack']} " if match["attack"] else ""
        table.add_column(f"{attack}ε={match['eps']}/255 %", justify="right")
    for header in ("firing rate", "MACs (M)", "params (M)"):
        table.add_column(header, justify="right")
    for _, row in df.iterrows():
        cells = [str(row["model"]), _plus_minus(row["clean_acc_mean"], row["clean_acc_std"])]
        cells += [_plus_minus(row[f"{stem}_mean"], row[f"{stem}_std"]) for stem, _ in robust]
        cells.append(_plus_minus(row["firing_rate_mean"], row["firing_rate_std"], digits=4))
        cells += ["—" if pd.isna(row[column]) else f"{row[column]:g}" for column in ("macs_m", "params_m")]
        table.add_row(*cells)
    return table
