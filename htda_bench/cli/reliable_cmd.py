"""``htda-bench reliable``: evaluate zoo models under a reliable suite (worst case over adaptive
attacks, with reliability flags on every leaderboard row)."""

from __future__ import annotations

import json
import math

from rich.console import Console
from rich.table import Table

from ..attacks import parse_eps
from ..errors import ConfigError
from ..leaderboard import eps_label
from .run_cmd import parse_int, parse_list

DEFAULT_STORE = "results/htda-bench.sqlite"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reliable", help="worst-case robustness over adaptive attacks, with reliability flags",
        description="Evaluate zoo models under a reliable suite (reliable-mnist, reliable-cifar, reliable-nmnist): "
                    "per example the worst case over the paper's PGD, PGD with swapped surrogates, 50-step PGD, "
                    "APGD-CE/DLR, Square, BPDA (HTDA) and a transfer attack, plus automatic checks reported as "
                    "flags. Writes <leaderboards>/<suite>.csv and <leaderboards>/runs/<suite>/<model>.json. "
                    "Resumable: rerun the same command after an interruption.")
    parser.add_argument("--suite", required=True, help="reliable-mnist, reliable-cifar, reliable-nmnist or a YAML file")
    parser.add_argument("--models", help="comma-separated zoo names or glob patterns (default: the suite's)")
    parser.add_argument("--n-examples", type=int, help="evaluate the first N test examples (default 200)")
    parser.add_argument("--seeds", help="comma-separated seeds (default 0)")
    parser.add_argument("--eps", help="comma-separated eps values, fractions allowed: 20/255,40/255")
    parser.add_argument("--attacks", help="run only these attacks of the suite, e.g. pgd,apgd-ce,square")
    parser.add_argument("--large-eps", help="eps of the chance-level check (default 0.5)")
    parser.add_argument("--batch-size", type=int, help="examples per batch (APGD and Square results depend on it)")
    parser.add_argument("--data-root", help="dataset folder (default $HTDA_BENCH_DATA)")
    parser.add_argument("--out", default=DEFAULT_STORE, help=f"results store (default {DEFAULT_STORE})")
    parser.add_argument("--leaderboards", default="leaderboards", help="leaderboard folder (default leaderboards)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.set_defaults(handler=reliable_command)


def overrides_from_args(args) -> dict:
    if args.n_examples is not None and args.n_examples < 1:
        raise ConfigError("--n-examples must be at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    return dict(models=parse_list(args.models, str), n_examples=args.n_examples,
                seeds=parse_list(args.seeds, parse_int), eps=parse_list(args.eps, parse_eps),
                batch_size=args.batch_size, attacks=parse_list(args.attacks, str),
                large_eps=None if args.large_eps is None else parse_eps(args.large_eps))


def _cell(value) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def render(frame, suite) -> Table:
    table = Table(title=f"{suite.name}: worst case over attacks (paper PGD in brackets)", header_style="bold")
    table.add_column("model", no_wrap=True)
    table.add_column("clean %", justify="right")
    for eps in suite.eps:
        table.add_column(f"ε={eps * 255:g}/255 %", justify="right")
    table.add_column("zero grad %", justify="right")
    table.add_column("flags failed")
    for _, row in frame.iterrows():
        cells = [str(row["model"]), _cell(row["clean_acc_mean"])]
        for eps in suite.eps:
            label = eps_label(eps)
            cells.append(f"{_cell(row.get(f'robust_acc_eps{label}_mean'))} ({_cell(row.get(f'pgd_acc_eps{label}'))})")
        cells.append(_cell(row.get("zero_grad_share")))
        failed = row.get("flags_failed")
        cells.append(failed if isinstance(failed, str) and failed else "none")
        table.add_row(*cells)
    return table


def reliable_command(args) -> int:
    from ..reliability import load_reliable_suite, run_reliable

    reliable = load_reliable_suite(args.suite, **overrides_from_args(args))
    frame = run_reliable(reliable, store_path=args.out, leaderboards_dir=args.leaderboards,
                         data_root=args.data_root, show_progress=not args.quiet)
    if args.json:
        print(json.dumps(json.loads(frame.to_json(orient="records")), indent=2))
        return 0
    console = Console()
    console.print(render(frame, reliable.suite))
    console.print(f"leaderboard: {args.leaderboards}/{reliable.name}.csv  flags: "
                  f"{args.leaderboards}/runs/{reliable.name}/<model>.json  store: {args.out}")
    return 0
