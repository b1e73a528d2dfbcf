"""The HTDA paper's published numbers (Tables 1-6), shipped as reference data.

Reports show them in "paper" columns beside reproduced values so a reader sees the gap at a
glance; they are never used to fill a cell the project did not compute.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources

import pandas as pd

from ..store import eps_label

PAPER_FILE = "htda-paper-tables.csv"
PAPER_DOI = "10.3389/fnins.2022.949142"
COLUMNS = ["table", "dataset", "arch", "model", "setting", "metric", "value", "std", "note"]


@lru_cache(maxsize=1)
def _cached() -> pd.DataFrame:
    source = resources.files("htda_bench") / "reference" / PAPER_FILE
    with source.open("r", encoding="utf-8") as handle:
        frame = pd.read_csv(handle, dtype={"model": str, "setting": str, "note": str, "arch": str})
    for column in ("setting", "note", "arch", "model", "dataset"):
        frame[column] = frame[column].fillna("")
    return frame[COLUMNS]


def paper_frame() -> pd.DataFrame:
    """The whole reference table in long format (a copy: callers may modify it)."""
    return _cached().copy()


def pgd_setting(eps: float) -> str:
    """The paper CSV's setting text for PGD at ``eps`` (a fraction), e.g. 'pgd eps=40/255'."""
    return f"pgd eps={eps_label(eps)}/255"


def paper_value(table: int, dataset: str, arch: str, model: str, setting: str | None,
                metric: str) -> tuple[float, float] | None:
    """(value, std) of one published figure, std NaN where the paper gives none; None if absent.

    ``setting`` None matches any setting (parameters have none).
    """
    frame = _cached()
    rows = frame[(frame["table"] == int(table)) & (frame["dataset"] == dataset) & (frame["arch"] == arch)
                 & (frame["model"] == model) & (frame["metric"] == metric)]
    if setting is not None:
        rows = rows[rows["setting"] == setting]
    if rows.empty:
        return None
    row = rows.iloc[0]
    std = float(row["std"]) if not pd.isna(row["std"]) else math.nan
    return float(row["value"]), std


def paper_note(table: int, dataset: str | None = None) -> list[str]:
    """Distinct non-empty notes the paper CSV attaches to a table (its caveats, in order)."""
    frame = _cached()
    rows = frame[frame["table"] == int(table)]
    if dataset is not None:
        rows = rows[rows["dataset"] == dataset]
    return list(dict.fromkeys(note for note in rows["note"] if note and not note.startswith("params_m=")))


def literature_rows(dataset: str | None = None) -> pd.DataFrame:
    """Table 6: published SNNs with method, network, time steps, params and accuracy."""
    frame = _cached()
    rows = frame[frame["table"] == 6]
    if dataset is not None:
        rows = rows[rows["dataset"] == dataset]
    records = []
    for row in rows.itertuples():
        steps = row.setting.removeprefix("steps=")
        params = row.note.removeprefix("params_m=") if row.note.startswith("params_m=") else ""
        records.append({"dataset": row.dataset, "method": row.model, "network": row.arch,
                        "time_steps": int(steps) if steps.isdigit() else None,
                        "params_m": float(params) if params else math.nan,
                        "accuracy": float(row.value),
                        "accuracy_std": float(row.std) if not pd.isna(row.std) else math.nan})
    return pd.DataFrame(records, columns=["dataset", "method", "network", "time_steps", "params_m",
                                          "accuracy", "accuracy_std"])
