"""The end-of-run table in the layout of the paper's Table 1: S-SNN and HTDA side by side per arch."""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table

from ..leaderboard import eps_label


def _cell(row: pd.Series | None, column: str) -> str:
    if row is None or column + "_mean" not in row or pd.isna(row[column + "_mean"]):
        return "-"
    std = row.get(column + "_std", float("nan"))
    return f"{row[column + '_mean']:.2f}" + ("" if std is None or math.isnan(std) else f" ± {std:.2f}")


def paper_style_table(frame: pd.DataFrame, suite) -> Table:
    """Rows: arch (plus any variant suffix); columns: clean and each eps, S-SNN | HTDA."""
    table = Table(title=f"{suite.name} (protocol {suite.protocol_version}, {frame['n_examples'].min() if len(frame) else 0}"
                        f" examples, seeds {','.join(map(str, suite.seeds))})")
    table.add_column("arch")
    single_attack = len(suite.attacks) == 1
    conditions = [("clean", "clean_acc")]
    for attack in suite.attacks:
        prefix = "" if single_attack else f"{attack.name}_"
        conditions += [(f"{attack.name} {eps * 255:g}/255", f"{prefix}robust_acc_eps{eps_label(eps)}")
                       for eps in suite.eps]
    for label, _ in conditions:
        table.add_column(f"{label}\nS-SNN", justify="right")
        table.add_column(f"{label}\nHTDA", justify="right")
    rows: dict[str, dict[str, pd.Series]] = {}
    for _, row in frame.iterrows():
        family = row.get("family") or ""
        side = "s-snn" if family == "s-snn" else "htda"
        group = row["model"].replace(f"{family}-", "", 1) if family else row["model"]
        rows.setdefault(group, {})[side] = row
    for group, sides in sorted(rows.items()):
        cells = [group]
        for _, column in conditions:
            cells += [_cell(sides.get("s-snn"), column), _cell(sides.get("htda"), column)]
        table.add_row(*cells)
    return table
