"""Figures 3-5 of the HTDA paper and robust-accuracy-vs-eps curves, from results or attention maps.

Each figure function takes plain data (frames, arrays) so it can be tested without trained models;
the ``*_frame`` helpers gather that data from a ``ResultsSource``. Figures have a fixed size per
panel (``grid_size``) so their pixel size is predictable.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..leaderboard import read_leaderboard  # noqa: E402
from ..errors import ConfigError  # noqa: E402
from ..store import eps_label  # noqa: E402
from ..suites import load_suite  # noqa: E402
from ..utils import atomic_path  # noqa: E402

DPI = 100
PANEL = (4.2, 3.6)  # inches per panel
MIN_WIDTH = 6.0  # inches: room for the figure title
TITLE_SIZE = 11
FAMILY_COLORS = {"s-snn": "#4c72b0", "htda": "#dd8452"}
FAMILY_LABELS = {"s-snn": "S-SNN", "htda": "HTDA"}
BASE_NAME = re.compile(r"^(?P<family>s-snn|htda)-(?P<arch>vgg[0-9]+c)-(?P<dataset>[a-z0-9]+)$")
ROBUST = re.compile(r"^robust_acc_eps(?P<eps>[0-9.]+)_mean$")


def grid_size(rows: int, columns: int) -> tuple[float, float]:
    """Figure size in inches for a grid of panels; pixels are this times ``DPI``."""
    return max(PANEL[0] * columns, MIN_WIDTH), PANEL[1] * rows + 0.4


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI)  # no bbox "tight": the size stays grid_size
    plt.close(figure)
    return path


def _arch_order(values) -> list[str]:
    return sorted(set(values), key=lambda arch: int(re.sub(r"\D", "", arch) or 0))


# -- data gathering -----------------------------------------------------------------------------
def _base_rows(rows: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Rows of the paper's two families only (``<family>-<arch>-<dataset>``), with family and arch."""
    parts = rows["model"].str.extract(BASE_NAME)
    rows = rows.assign(family=parts["family"], arch=parts["arch"], dataset=dataset)
    return rows[parts["dataset"] == dataset]


def firing_rate_frame(source, suites: dict[str, str]) -> pd.DataFrame:
    """Per-seed clean firing rate (%) of every S-SNN and HTDA model: dataset, arch, family, seed, value."""
    frames = [_base_rows(source.metric_rows(suite, "firing_rate"), dataset) for dataset, suite in suites.items()]
    frames = [frame for frame in frames if not frame.empty]
    columns = ["dataset", "arch", "family", "model", "seed", "value"]
    return pd.concat(frames)[columns].reset_index(drop=True) if frames else pd.DataFrame(columns=columns)


def firing_matrices(source, suites: dict[str, str]) -> list[dict]:
    """Layer x time-step firing-rate matrices (%), averaged over seeds, one per S-SNN/HTDA model."""
    found = []
    for dataset, suite in suites.items():
        rows = _base_rows(source.metric_rows(suite, "firing_rate_matrix"), dataset)
        for (model, family, arch), group in rows.groupby(["model", "family", "arch"]):
            payloads = [np.asarray(p, dtype=float) for p in group["payload"] if p is not None]
            if payloads:
                found.append({"dataset": dataset, "arch": arch, "family": family, "model": model,
                              "matrix": np.mean(payloads, axis=0)})
    return found


def curve_frame(source, suites: list[str]) -> pd.DataFrame:
    """Accuracy vs eps per model from the leaderboard CSVs (the store's frame where no CSV exists):
    suite, dataset, model, family, eps (x/255, 0 = clean), mean, std."""
    records = []
    for suite in suites:
        try:
            frame = read_leaderboard(source.leaderboards_dir, suite) if source.leaderboards_dir else None
        except ConfigError:
            frame = None
        frame = source.frame(suite) if frame is None or frame.empty else frame
        dataset = load_suite(suite).dataset
        for row in frame.to_dict("records"):
            points = [(0.0, row["clean_acc_mean"], row["clean_acc_std"])]
            for column in row:
                match = ROBUST.match(column)
                if match:
                    points.append((float(match["eps"]), row[column], row[column.replace("_mean", "_std")]))
            for eps, mean, std in points:
                if not pd.isna(mean):
                    records.append({"suite": suite, "dataset": dataset, "model": row["model"],
                                    "family": row.get("family", ""), "eps": eps, "mean": float(mean),
                                    "std": 0.0 if pd.isna(std) else float(std)})
    return pd.DataFrame(records, columns=["suite", "dataset", "model", "family", "eps", "mean", "std"])


# -- figures ------------------------------------------------------------------------------------
def firing_rate_bars(frame: pd.DataFrame, path: str | Path) -> Path:
    """Fig. 4: mean clean firing rate per arch, S-SNN vs HTDA, one panel per dataset; error bars are
    the standard deviation over seeds (ddof 0, as in the leaderboards)."""
    if frame.empty:
        raise ValueError("no firing rates to plot")
    datasets = list(dict.fromkeys(frame["dataset"]))
    figure, axes = plt.subplots(1, len(datasets), figsize=grid_size(1, len(datasets)), squeeze=False,
                                layout="constrained")
    for axis, dataset in zip(axes[0], datasets):
        rows = frame[frame["dataset"] == dataset]
        archs = _arch_order(rows["arch"])
        stats = rows.groupby(["arch", "family"])["value"].agg(mean="mean", std=lambda v: float(np.std(v)),
                                                             n="count")
        width = 0.38
        for offset, family in zip((-width / 2, width / 2), FAMILY_LABELS):
            values = [stats.loc[(arch, family)] if (arch, family) in stats.index else None for arch in archs]
            x = np.arange(len(archs)) + offset
            means = [np.nan if v is None else v["mean"] for v in values]
            stds = [0.0 if v is None else v["std"] for v in values]
            axis.bar(x, means, width, yerr=stds, capsize=4, color=FAMILY_COLORS[family],
                     label=FAMILY_LABELS[family], edgecolor="black", linewidth=0.5)
        axis.set_xticks(np.arange(len(archs)), archs)
        axis.set_xlabel("architecture")
        axis.set_ylabel("mean firing rate (%)")
        seeds = int(stats["n"].max())
        axis.set_title(f"{dataset} (clean inputs, {seeds} seed{'s' if seeds > 1 else ''})")
        axis.set_ylim(0, 1.3 * float(np.nanmax((stats["mean"] + stats["std"]).to_numpy())) or 1.0)
        axis.legend(title="model", loc="upper right")
    figure.suptitle("Fig. 4: feature-extractor firing rate, S-SNN vs HTDA\n(error bars: std over seeds)",
                    fontsize=TITLE_SIZE)
    return _save(figure, path)


def firing_heatmaps(matrices: list[dict], path: str | Path) -> Path:
    """Fig. 5: firing rate (%) per extractor layer x time step; one row per (dataset, arch), S-SNN left,
    HTDA right, sharing a colour scale within a row so the two compare directly."""
    if not matrices:
        raise ValueError("no firing-rate matrices to plot")
    pairs = list(dict.fromkeys((m["dataset"], m["arch"]) for m in matrices))
    figure, axes = plt.subplots(len(pairs), 2, figsize=grid_size(len(pairs), 2), squeeze=False,
                                layout="constrained")
    for row_axes, (dataset, arch) in zip(axes, pairs):
        chosen = {m["family"]: m for m in matrices if (m["dataset"], m["arch"]) == (dataset, arch)}
        top = max(float(np.max(m["matrix"])) for m in chosen.values()) or 1.0
        for axis, family in zip(row_axes, FAMILY_LABELS):
            if family not in chosen:
                axis.text(0.5, 0.5, f"{FAMILY_LABELS[family]} not run", ha="center", va="center")
                axis.set_axis_off()
                continue
            matrix = chosen[family]["matrix"]
            sns.heatmap(matrix, ax=axis, vmin=0, vmax=top, cmap="viridis", annot=matrix.size <= 60, fmt=".1f",
                        annot_kws={"size": 7}, cbar_kws={"label": "firing rate (%)"},
                        xticklabels=[str(t + 1) for t in range(matrix.shape[1])],
                        yticklabels=[f"conv{i + 1}" for i in range(matrix.shape[0])])
            axis.tick_params(axis="y", labelrotation=0)
            axis.set_xlabel("time step")
            axis.set_ylabel("extractor layer")
            axis.set_title(f"{FAMILY_LABELS[family]} {arch} {dataset}")
    figure.suptitle("Fig. 5: firing rate per layer and time step (clean inputs)", fontsize=TITLE_SIZE)
    return _save(figure, path)


def attention_histograms(maps: dict[str, dict[str, np.ndarray]], path: str | Path, bins: int = 40) -> Path:
    """Fig. 3: distribution of attention-map values, one panel per dataset, one curve per model
    (a near-binary map puts its mass at 0 and 1)."""
    datasets = [d for d, per_model in maps.items() if per_model]
    if not datasets:
        raise ValueError("no attention maps to plot")
    figure, axes = plt.subplots(1, len(datasets), figsize=grid_size(1, len(datasets)), squeeze=False,
                                layout="constrained")
    for axis, dataset in zip(axes[0], datasets):
        frames = [pd.DataFrame({"value": np.asarray(values, dtype=float).ravel(), "model": model})
                  for model, values in maps[dataset].items()]
        data = pd.concat(frames, ignore_index=True)
        sns.histplot(data=data, x="value", hue="model", bins=np.linspace(0, 1, bins + 1), stat="probability",
                     common_norm=False, element="step", ax=axis)
        axis.set_xlim(0, 1)
        axis.set_xlabel("attention map value M")
        axis.set_ylabel("fraction of map pixels")
        axis.set_title(f"{dataset}")
    figure.suptitle("Fig. 3: attention-map values (clean test images)", fontsize=TITLE_SIZE)
    return _save(figure, path)


def robustness_curves(frame: pd.DataFrame, path: str | Path) -> Path:
    """Beyond the paper: accuracy vs eps (0 = clean) per suite; colour by family, one line per model,
    error bars = std over seeds."""
    if frame.empty:
        raise ValueError("no leaderboard rows to plot")
    suites = list(dict.fromkeys(frame["suite"]))
    figure, axes = plt.subplots(1, len(suites), figsize=grid_size(1, len(suites)), squeeze=False,
                                layout="constrained")
    markers = "osD^vP*X"
    for axis, suite in zip(axes[0], suites):
        rows = frame[frame["suite"] == suite]
        for index, (model, points) in enumerate(rows.groupby("model", sort=True)):
            points = points.sort_values("eps")
            family = points["family"].iloc[0]
            axis.errorbar(points["eps"], points["mean"], yerr=points["std"], capsize=3, label=model,
                          color=FAMILY_COLORS.get(family, "grey"), marker=markers[index % len(markers)],
                          linestyle="-" if family in FAMILY_COLORS else "--")
        axis.set_xlabel("eps (x/255; 0 = clean)")
        axis.set_ylabel("accuracy (%)")
        axis.set_ylim(0, 100)
        axis.set_xticks(sorted(set(rows["eps"])), [eps_label(e / 255) for e in sorted(set(rows["eps"]))])
        axis.set_title(f"{suite} ({rows['dataset'].iloc[0]})")
        axis.legend(fontsize=7, title="model", title_fontsize=8)
        axis.grid(alpha=0.3)
    figure.suptitle("Robust accuracy vs eps (S-SNN blue, HTDA orange;\nerror bars: std over seeds)",
                    fontsize=TITLE_SIZE)
    return _save(figure, path)
