"""``htda-bench run`` and ``htda-bench suites``: evaluate zoo models under a suite."""

from __future__ import annotations

import json

from rich.console import Console

from ..attacks import parse_eps
from ..distributed import init_from_environment
from ..errors import ConfigError
from ..harness import DEFAULT_STORE, resolve_suite, run_targets, zoo_targets
from ..harness.summary import paper_style_table
from ..suites import list_suites


def parse_list(text: str | None, convert):
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError(f"empty list {text!r}: give comma-separated values")
    return [convert(item) for item in items]


def parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a whole number") from None


def add_override_arguments(parser) -> None:
    """The suite overrides ``run`` and ``submit`` share."""
    parser.add_argument("--eps", help="comma-separated eps values, fractions allowed: 1/255,2/255")
    parser.add_argument("--steps", type=int, help="attack iterations")
    parser.add_argument("--step-size", help="attack step size, fractions allowed: 2/255")
    parser.add_argument("--seeds", help="comma-separated seeds: 0,1,2")
    parser.add_argument("--n-examples", type=int, help="evaluate the first N test examples")
    parser.add_argument("--batch-size", type=int, help="examples per batch (does not change any number)")
    parser.add_argument("--data-root", help="dataset folder (default $HTDA_BENCH_DATA)")
    parser.add_argument("--out", default=str(DEFAULT_STORE), help=f"results store (default {DEFAULT_STORE})")
    parser.add_argument("--leaderboards", default="leaderboards", help="leaderboard folder (default leaderboards)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def suite_overrides(args) -> dict:
    if args.steps is not None and args.steps < 1:
        raise ConfigError("--steps must be at least 1")
    return dict(models=parse_list(getattr(args, "models", None), str), eps=parse_list(args.eps, parse_eps),
                steps=args.steps, step_size=parse_eps(args.step_size) if args.step_size else None,
                seeds=parse_list(args.seeds, parse_int), n_examples=args.n_examples, batch_size=args.batch_size,
                attack_clean_correct_only=getattr(args, "attack_clean_correct_only", False) or None)


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="evaluate zoo models under a suite",
                                description="Evaluate every zoo model a suite names; resumable: rerun the "
                                            "same command after an interruption.")
    run.add_argument("--suite", required=True, help="suite name (htda-bench suites list)")
    run.add_argument("--models", help="comma-separated zoo names or glob patterns (default: the suite's)")
    run.add_argument("--attack-clean-correct-only", action="store_true",
                     help="protocol option: store clean-misclassified examples as not robust without "
                          "attacking them (faster; results go under protocol version +clean-correct-only)")
    add_override_arguments(run)
    run.set_defaults(handler=run_suite)

    suites = subparsers.add_parser("suites", help="list the shipped suites")
    commands = suites.add_subparsers(dest="suites_command", required=True)
    listing = commands.add_parser("list", help="list suites")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=list_suites_command)

    merge = subparsers.add_parser("merge", help="merge results stores of separate jobs (idempotent)")
    merge.add_argument("stores", nargs="+", help="input stores")
    merge.add_argument("-o", "--output", required=True, help="output store (written atomically)")
    merge.set_defaults(handler=merge_command)


def run_suite(args) -> int:
    from ..reliability.suite import reliable_suite_names

    if args.suite in reliable_suite_names():
        raise ConfigError(f"{args.suite} is a reliable suite: run htda-bench reliable --suite {args.suite}")
    suite = resolve_suite(args.suite, **suite_overrides(args))
    targets = zoo_targets(suite)
    world = init_from_environment()  # torchrun: shard the examples over the ranks
    frame = run_targets(suite, targets, store_path=args.out, leaderboards_dir=args.leaderboards,
                        data_root=args.data_root, show_progress=not args.quiet)
    if not world.is_root:
        return 0
    console = Console()
    console.print(paper_style_table(frame, suite))
    console.print(f"leaderboard: {args.leaderboards}/{suite.board_name}.csv  store: {args.out}")
    return 0


def list_suites_command(args) -> int:
    suites = list_suites()
    if args.json:
        print(json.dumps([{**suite.to_dict(), "config_hash": suite.config_hash} for suite in suites], indent=2))
        return 0
    from rich.table import Table

    table = Table(title="htda-bench suites")
    for column in ("suite", "version", "dataset", "attacks", "eps (x255)", "seeds", "examples", "description"):
        table.add_column(column)
    for suite in suites:
        attacks = ", ".join(f"{a.name}" + (f" {a.steps} steps" if a.steps else "") for a in suite.attacks)
        table.add_row(suite.name, suite.protocol_version, suite.dataset, attacks,
                      ", ".join(f"{eps * 255:g}" for eps in suite.eps), ",".join(map(str, suite.seeds)),
                      str(suite.n_examples), suite.description)
    Console().print(table)
    return 0


def merge_command(args) -> int:
    from ..store import merge_stores

    path = merge_stores(args.stores, args.output)
    Console().print(f"merged {len(args.stores)} stores into {path}; regenerate leaderboards with "
                    "htda-bench run (nothing is recomputed that the store holds)")
    return 0
