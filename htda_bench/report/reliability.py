"""Report section for the reliable suites: robust accuracy per attack (S-SNN vs HTDA) and a
generated paragraph per dataset saying whether HTDA's advantage under the paper's PGD survives the
per-example worst case over attacks."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..utils import atomic_path  # noqa: E402

ATTACK_COLUMN = re.compile(r"^(?P<attack>.+)_acc_eps(?P<eps>[0-9.]+)$")
FAMILY_LABELS = {"s-snn": "S-SNN", "htda": "HTDA"}


def attack_frame(board: pd.DataFrame) -> pd.DataFrame:
    """Long format: model, family, arch, attack, eps (x/255), accuracy; the worst case as 'worst case'."""
    rows = []
    for _, row in board.iterrows():
        for column, value in row.items():
            match = ATTACK_COLUMN.match(str(column))
            worst = re.match(r"^robust_acc_eps(?P<eps>[0-9.]+)_mean$", str(column))
            if match and not str(column).startswith("large_eps") and pd.notna(value):
                rows.append((row["model"], row["family"], row["arch"], match["attack"].replace("_", "-"),
                             float(match["eps"]), float(value)))
            elif worst and pd.notna(value):
                rows.append((row["model"], row["family"], row["arch"], "worst case", float(worst["eps"]), float(value)))
    return pd.DataFrame(rows, columns=["model", "family", "arch", "attack", "eps", "accuracy"])


def attack_figure(frame: pd.DataFrame, title: str, path: str | Path) -> Path:
    """One panel per eps: accuracy per attack, S-SNN vs HTDA side by side."""
    eps_values = sorted(frame["eps"].unique())
    figure, axes = plt.subplots(len(eps_values), 1, figsize=(11, 3.2 * len(eps_values)), squeeze=False)
    frame = frame.assign(model_family=frame["family"].map(FAMILY_LABELS).fillna(frame["family"]))
    order = [a for a in frame["attack"].drop_duplicates() if a != "worst case"] + ["worst case"]
    for axis, eps in zip(axes[:, 0], eps_values):
        sns.barplot(data=frame[frame["eps"] == eps], x="attack", y="accuracy", hue="model_family", order=order,
                    ax=axis, hue_order=[h for h in ("S-SNN", "HTDA") if h in set(frame["model_family"])],
                    palette={"S-SNN": "#4c72b0", "HTDA": "#dd8452"})
        axis.set_title(f"eps = {eps:g}/255")
        axis.set_xlabel("attack")
        axis.set_ylabel("accuracy (%)")
        axis.set_ylim(0, 100)
        axis.tick_params(axis="x", rotation=35)
        axis.legend(title="model")
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)
    return Path(path)


def advantage_paragraph(board: pd.DataFrame, suite: str) -> str:
    """Does HTDA's lead over S-SNN under the paper's PGD survive the worst case? With the numbers."""
    sentences = []
    for arch, group in board.groupby("arch"):
        rows = {row["family"]: row for _, row in group.iterrows()}
        if not {"s-snn", "htda"} <= set(rows):
            continue
        snn, htda = rows["s-snn"], rows["htda"]
        size = f"{int(htda['n_examples'])} examples, seeds {htda['seeds']}"
        for column in sorted((c for c in board.columns if re.match(r"^pgd_acc_eps[0-9.]+$", c)),
                             key=lambda c: float(c.split("eps")[1])):
            eps = column.split("eps")[1]
            worst = f"robust_acc_eps{eps}_mean"
            pgd_gap = htda[column] - snn[column]
            worst_gap = htda[worst] - snn[worst]
            if pgd_gap <= 0:
                verdict = "HTDA has no advantage under the paper's PGD to begin with"
            elif worst_gap >= pgd_gap - 1.0:
                verdict = "the advantage survives the worst case"
            elif worst_gap > 0:
                verdict = "the advantage shrinks under the worst case"
            else:
                verdict = "the advantage disappears under the worst case"
            sentences.append(
                f"{arch}, eps {eps}/255: under the paper's PGD HTDA scores {htda[column]:.1f}% against S-SNN's "
                f"{snn[column]:.1f}% ({pgd_gap:+.1f} points); over the worst case of all attacks "
                f"{htda[worst]:.1f}% against {snn[worst]:.1f}% ({worst_gap:+.1f} points): {verdict}.")
        failed = [f"{FAMILY_LABELS.get(family, family)}: {rows[family].get('flags_failed')}" for family in rows
                  if isinstance(rows[family].get("flags_failed"), str) and rows[family].get("flags_failed")]
        tail = f" Flags failed: {'; '.join(failed)}." if failed else " No flag failed."
        sentences.append(f"({suite}, {size}.){tail}")
    if not sentences:
        return f"{suite}: no arch has both an S-SNN and an HTDA row yet."
    return " ".join(sentences)


def reliability_sections(leaderboards_dir: str | Path, folder: Path) -> list[tuple[Path, str, str]]:
    """(figure, caption, paragraph) for each reliable-<dataset> leaderboard found."""
    sections = []
    for csv in sorted(Path(leaderboards_dir).glob("reliable-*.csv")):
        board = pd.read_csv(csv, dtype={"seeds": str})
        suite = csv.stem
        frame = attack_frame(board)
        if frame.empty:
            continue
        path = attack_figure(frame, f"{suite}: accuracy per attack, S-SNN vs HTDA", folder / f"{suite}_attacks.png")
        sections.append((path, f"{suite}: robust accuracy per attack and the per-example worst case, S-SNN vs HTDA",
                         advantage_paragraph(board, suite)))
    return sections
