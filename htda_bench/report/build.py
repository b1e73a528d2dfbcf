"""``htda-bench report``: write the paper's tables (CSV + Markdown) and figures (PNG) from the results
store and leaderboards, plus an index README saying what was generated, from which runs, and when.

Figures that need trained HTDA models (Fig. 2, 3) come from the zoo; when it holds none, or a figure
has no data yet, the index says so instead of the report failing.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..errors import ConfigError, HtdaBenchError
from ..suites import list_suites
from ..utils import atomic_path, git_commit, write_text_atomic
from . import attention_figures, plots
from .paper import PAPER_DOI
from .reliability import reliability_sections
from .tables import ALL_TABLES, DATASET_SUITES, NOT_RUN, VARIANT_DOC, ReportTable, ResultsSource, build_table

FIGURE_FILES = {
    "fig2": "fig2_attention_maps_{model}.png", "fig3": "fig3_attention_histograms.png",
    "fig4": "fig4_firing_rates.png", "fig5": "fig5_firing_heatmaps.png", "curves": "robustness_curves.png",
}
FIG2_IMAGES = 6  # one test image per class 0..5
HIST_EXAMPLES = 256  # test images whose attention maps feed Fig. 3


@dataclass
class Report:
    """What ``build_report`` wrote: table files, figure files with a caption, skipped items, index."""

    out: Path
    tables: dict[int, tuple[Path, Path]] = field(default_factory=dict)
    figures: dict[str, tuple[Path, str]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    reliability: list[tuple[str, str]] = field(default_factory=list)  # (suite caption, paragraph)
    index: Path | None = None


def _md(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(table: ReportTable) -> str:
    """The table as Markdown: title, dataset variants, notes, the grid, then numbered footnotes."""
    variants = "; ".join(f"{d}: {v}" + (f" ({VARIANT_DOC[v]})" if v in VARIANT_DOC else "")
                         for d, v in table.variants.items())
    lines = [f"# Table {table.number}: {table.title}", "", f"Dataset variant: {variants}.", ""]
    lines += [f"- {note}" for note in table.notes]
    lines += ["- `*_paper`: the published value (HTDA paper); `*_diff`: reproduced mean minus paper mean.",
              f"- `{NOT_RUN}`: nothing in this project computed the cell; the footnote says what is missing.", ""]
    columns = [c for c in table.frame.columns if c != "not_run_reason"]
    lines += ["| " + " | ".join(columns + ["note"]) + " |", "|" + "---|" * (len(columns) + 1)]
    footnotes: dict[str, int] = {}
    for row in table.frame.to_dict("records"):
        reason = row.get("not_run_reason", "")
        marker = f"[{footnotes.setdefault(reason, len(footnotes) + 1)}]" if reason else ""
        lines.append("| " + " | ".join([_md(row[c]) for c in columns] + [marker]) + " |")
    if footnotes:
        lines += ["", *(f"[{n}] {NOT_RUN}: {reason}" for reason, n in footnotes.items())]
    return "\n".join(lines) + "\n"


def write_table(table: ReportTable, folder: str | os.PathLike) -> tuple[Path, Path]:
    """``tableN.csv`` (the paper's layout) and ``tableN.md`` under ``folder``, each written atomically."""
    folder = Path(folder)
    csv_path, md_path = folder / f"table{table.number}.csv", folder / f"table{table.number}.md"
    with atomic_path(csv_path) as temporary:
        table.frame.to_csv(temporary, index=False, lineterminator="\n")
    write_text_atomic(md_path, render_markdown(table))
    return csv_path, md_path


def _zoo_attention_models(report: Report, zoo: Path | None):
    """(card, model) for every HTDA zoo model with an attention generator; unloadable ones are noted."""
    from ..zoo import list_cards, load_model

    for card in list_cards(zoo):
        if card["family"] != "htda":
            continue
        try:
            model = load_model(card["name"], zoo)
        except HtdaBenchError as error:
            report.skipped.append(f"Fig. 2/3 for {card['name']}: {error}")
            continue
        if getattr(model, "attention", None) is not None:
            yield card, model


def _attention_figures(report: Report, folder: Path, data_root, zoo: Path | None) -> None:
    from ..data import load_split
    from ..metrics.attention import attention_maps

    histograms: dict[str, dict] = {}
    found = False
    for card, model in _zoo_attention_models(report, zoo):
        found = True
        try:
            split = load_split(card["dataset"], "test", data_root, download=False)
        except HtdaBenchError as error:
            report.skipped.append(f"Fig. 2/3 for {card['name']}: test data unavailable ({error})")
            continue
        firsts = [int((split.labels == label).nonzero()[0]) for label in range(FIG2_IMAGES)
                  if (split.labels == label).any()]
        images = split.as_float(torch.tensor(firsts))
        path = folder / FIGURE_FILES["fig2"].format(model=card["name"])
        attention_figures.attention_figure(model, images, path, seed=0, labels=split.labels[firsts].tolist(),
                                           title=f"Fig. 2: attention maps of {card['name']} ({split.variant})")
        report.figures[f"fig2:{card['name']}"] = (path, f"Fig. 2: attention maps of {card['name']} on clean, "
                                                  "randomly translated + rotated (seed 0) and noisy test images")
        sample = split.as_float(slice(0, min(HIST_EXAMPLES, len(split))))
        histograms.setdefault(card["dataset"], {})[card["name"]] = attention_maps(model, sample).numpy()
    if not found:
        report.skipped.append("Fig. 2 and Fig. 3: the zoo holds no HTDA model with attention yet")
        return
    if histograms:
        path = plots.attention_histograms(histograms, folder / FIGURE_FILES["fig3"])
        report.figures["fig3"] = (path, f"Fig. 3: histograms of attention-map values on the first {HIST_EXAMPLES} "
                                        "test images, per dataset")


def _result_figures(report: Report, folder: Path, source: ResultsSource) -> None:
    rates = plots.firing_rate_frame(source, DATASET_SUITES)
    if rates.empty:
        report.skipped.append("Fig. 4: no clean firing_rate of an S-SNN/HTDA model in the results store")
    else:
        path = plots.firing_rate_bars(rates, folder / FIGURE_FILES["fig4"])
        report.figures["fig4"] = (path, "Fig. 4: mean firing rate of the feature extractor, S-SNN vs HTDA, "
                                        "error bars = std over seeds")
    matrices = plots.firing_matrices(source, DATASET_SUITES)
    if not matrices:
        report.skipped.append("Fig. 5: no firing_rate_matrix of an S-SNN/HTDA model in the results store")
    else:
        path = plots.firing_heatmaps(matrices, folder / FIGURE_FILES["fig5"])
        report.figures["fig5"] = (path, "Fig. 5: firing rate per layer x time step, S-SNN vs HTDA")
    # single-attack suites only (the paper's PGD/FGSM protocols): a worst-case suite would be a tangle of lines
    curves = plots.curve_frame(source, [suite.name for suite in list_suites() if len(suite.attacks) == 1])
    if curves.empty:
        report.skipped.append("Robustness curves: no leaderboard has results yet")
    else:
        path = plots.robustness_curves(curves, folder / FIGURE_FILES["curves"])
        report.figures["curves"] = (path, "Robust accuracy vs eps per suite (beyond the paper), from the leaderboards")


def _index(report: Report, source: ResultsSource, tables: dict[int, ReportTable], generated: str) -> str:
    where = lambda path: os.path.relpath(path, report.out)  # noqa: E731
    lines = ["# htda-bench report", "",
             f"Generated {generated} by htda-bench {__version__} (commit {git_commit()}) with `htda-bench report`,",
             f"from the results store `{source.store_path}`" + ("" if source.store is not None else " (absent)")
             + f" and the leaderboards `{source.leaderboards_dir}`.",
             f"Paper values: HTDA paper (doi {PAPER_DOI}), `htda_bench/reference/htda-paper-tables.csv`. "
             f"A cell reading `{NOT_RUN}` was not computed by this project.", "", "## Tables", ""]
    if tables:
        lines += ["| table | title | files | dataset variant | suites | cells not run |", "|---|---|---|---|---|---|"]
        for number, table in sorted(tables.items()):
            csv_path, md_path = report.tables[number]
            variants = "; ".join(f"{d}: {v}" for d, v in table.variants.items())
            missing = int((table.frame == NOT_RUN).to_numpy().sum())
            lines.append(f"| {number} | {_md(table.title)} | [{where(csv_path)}]({where(csv_path)}), "
                         f"[{where(md_path)}]({where(md_path)}) | {variants} | {', '.join(table.suites)} | {missing} |")
    else:
        lines.append("No tables requested.")
    lines += ["", "## Figures", ""]
    lines += [f"- [{where(path)}]({where(path)}): {caption}" for path, caption in report.figures.values()]
    if not report.figures:
        lines.append("No figures written.")
    if report.skipped:
        lines += ["", "Skipped:", "", *(f"- {item}" for item in report.skipped)]
    if report.reliability:
        lines += ["", "## Reliability (adaptive attacks)", ""]
        for caption, paragraph in report.reliability:
            lines += [f"**{_md(caption)}.** {paragraph}", ""]
    lines += ["", "## Runs", "", "The run each reproduced row comes from (the model's latest run in the suite).", ""]
    lines += ["| suite | protocol | source | model | run id | dataset variant | examples | seeds | finished | commit |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    count = 0
    for suite in sorted(source.origin):
        for run in source.runs(suite):
            count += 1
            seeds = run["seeds"] if isinstance(run["seeds"], str) else ",".join(map(str, run["seeds"] or []))
            lines.append(f"| {suite} | {run['protocol_version']} | {_md(source.origin[suite])} | {run['model']} | "
                         f"{run['run_id']} | {run['dataset_variant']} | {run['n_examples']} | {seeds} | "
                         f"{run['finished']} | {str(run['git_commit'] or '')[:12]} |")
    not_run = sorted(suite for suite, origin in source.origin.items() if origin == NOT_RUN)
    if not count:
        lines.append("| (none) | | | | | | | | | |")
    if not_run:
        lines += ["", f"Suites with no results: {', '.join(not_run)}."]
    return "\n".join(lines) + "\n"


def parse_tables(text: str | None) -> tuple[int, ...]:
    """'1,2,5' -> (1, 2, 5); None or 'all' -> every table."""
    if text is None or text.strip().lower() == "all":
        return ALL_TABLES
    try:
        numbers = tuple(dict.fromkeys(int(part) for part in text.split(",") if part.strip()))
    except ValueError:
        raise ConfigError(f"--tables takes comma-separated numbers from 1 to 6, not {text!r}") from None
    unknown = [n for n in numbers if n not in ALL_TABLES]
    if unknown or not numbers:
        raise ConfigError(f"--tables takes numbers from 1 to 6, not {text!r}")
    return numbers


def build_report(out: str | os.PathLike = "reports", store: str | os.PathLike = "results/htda-bench.sqlite",
                 leaderboards: str | os.PathLike | None = "leaderboards", data_root=None,
                 tables: tuple[int, ...] | list[int] = ALL_TABLES, figures: bool = True,
                 zoo: str | os.PathLike | None = None) -> Report:
    """Write ``<out>/tables/tableN.{csv,md}``, ``<out>/figures/*.png`` and ``<out>/README.md``.

    Reads the store without modifying it (a missing store counts as empty: every cell "not run").
    """
    out = Path(out)
    report = Report(out=out)
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    source = ResultsSource(store, leaderboards)
    try:
        built = {}
        for number in tables:
            built[number] = build_table(number, source)
            report.tables[number] = write_table(built[number], out / "tables")
        if figures:
            folder = out / "figures"
            _result_figures(report, folder, source)
            _attention_figures(report, folder, data_root, None if zoo is None else Path(zoo))
            if leaderboards is not None:
                for path, caption, paragraph in reliability_sections(leaderboards, folder):
                    report.figures[f"reliability:{path.stem}"] = (path, caption)
                    report.reliability.append((caption, paragraph))
        report.index = out / "README.md"
        write_text_atomic(report.index, _index(report, source, built, generated))
    finally:
        source.close()
    return report
