"""``htda-bench report``: the paper's tables and figures regenerated from the results store."""

from __future__ import annotations

from rich.console import Console


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="write the paper's tables (CSV + Markdown) and figures (PNG) from the results",
        description="Without --tables or --figures, writes every table and figure; with one of them, "
                    "only what it names.")
    parser.add_argument("--tables", default=None, help="comma-separated table numbers, e.g. 1,2,4 (or 'all')")
    parser.add_argument("--figures", action="store_true", help="write the figures (Fig. 2-5 and eps curves)")
    parser.add_argument("--out", default="reports", help="output folder (default reports)")
    parser.add_argument("--store", default="results/htda-bench.sqlite",
                        help="results store to read (default results/htda-bench.sqlite)")
    parser.add_argument("--leaderboards", default="leaderboards", help="leaderboard folder (default leaderboards)")
    parser.add_argument("--data-root", default=None, help="dataset root for the attention figures")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.set_defaults(handler=run_report)


def run_report(args) -> int:
    from ..report.build import build_report, parse_tables

    everything = args.tables is None and not args.figures
    tables = parse_tables(args.tables) if args.tables is not None or everything else ()
    report = build_report(out=args.out, store=args.store, leaderboards=args.leaderboards,
                          data_root=args.data_root, tables=tables, figures=args.figures or everything)
    if not args.quiet:
        console = Console()
        for number, (csv_path, md_path) in sorted(report.tables.items()):
            console.print(f"table {number}: {csv_path}, {md_path}")
        for path, _ in report.figures.values():
            console.print(f"figure: {path}")
        for item in report.skipped:
            console.print(f"[yellow]skipped[/yellow] {item}")
        console.print(f"index: {report.index}")
    return 0
