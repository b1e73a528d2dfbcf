"""``htda-bench submit`` (add your model to a suite's leaderboard) and ``htda-bench leaderboard
verify`` (re-run an entry on its first examples and compare with what it recorded)."""

from __future__ import annotations

import json

from rich.console import Console

from ..submission import DEFAULT_EOT_SAMPLES, render_verification, submit, verify_suite
from ..submission.submit import REFERENCE_EXAMPLES, entry_path
from .run_cmd import add_override_arguments, suite_overrides

EXIT_VERIFY_FAILED = 1


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "submit", help="evaluate your model under a suite and add it to the leaderboard",
        description="Load build_model() from a Python file, load the weights (safetensors, or a torch state "
                    "dict opened with weights_only=True), check the model contract on 4 test images, run the "
                    "suite's protocol and add the model to <leaderboards>/<suite>.csv with an entry file "
                    "<leaderboards>/entries/<suite>/<name>.json. The model file is Python code: it is run.")
    parser.add_argument("--model-file", required=True, help="Python file defining the factory")
    parser.add_argument("--factory", default="build_model", help="function returning the nn.Module "
                                                                 "(default build_model)")
    parser.add_argument("--weights", required=True, help="weights: .safetensors, or a state dict .pt/.pth/.bin/.ckpt")
    parser.add_argument("--suite", required=True, help="suite name (htda-bench suites list)")
    parser.add_argument("--name", required=True, help="leaderboard name (letters, digits, . _ + -)")
    parser.add_argument("--authors", help="authors, as one string")
    parser.add_argument("--paper-url", help="link to the paper or code")
    parser.add_argument("--replace", action="store_true", help="replace an entry of the same name")
    parser.add_argument("--stochastic", action="store_true",
                        help="the model is random on purpose: evaluate the mean logits of --eot-samples calls "
                             "(expectation over transformation)")
    parser.add_argument("--eot-samples", type=int, default=DEFAULT_EOT_SAMPLES,
                        help=f"forward calls averaged with --stochastic (default {DEFAULT_EOT_SAMPLES})")
    add_override_arguments(parser)
    parser.set_defaults(handler=submit_command)


def register_verify(leaderboard_subparsers) -> None:
    """Add ``verify`` to the subparsers of the ``leaderboard`` command group."""
    parser = leaderboard_subparsers.add_parser(
        "verify", help="re-run leaderboard entries on their first examples and compare",
        description="Check an entry's model file and weights against their recorded sha256, then evaluate "
                    "the first N test examples in a temporary store and compare clean and robust accuracy "
                    "with the entry's reference on the same examples. Exit code 1 on any mismatch.")
    parser.add_argument("suite")
    parser.add_argument("--name", help="entry to verify (default: every entry of the suite)")
    parser.add_argument("--n-examples", type=int, default=REFERENCE_EXAMPLES,
                        help=f"examples to re-run, at most the entry's reference (default {REFERENCE_EXAMPLES})")
    parser.add_argument("--tolerance", type=float, default=1.0,
                        help="largest accepted accuracy difference, in percentage points (default 1.0)")
    parser.add_argument("--leaderboards", default="leaderboards", help="leaderboard folder (default leaderboards)")
    parser.add_argument("--data-root", help="dataset folder (default $HTDA_BENCH_DATA)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=verify_command)


def submit_command(args) -> int:
    console = Console(stderr=True)

    def announce(report) -> None:
        for warning in report.warnings:
            console.print(f"[yellow]warning:[/yellow] {warning}")
        console.print(f"checks passed ({report.n_spiking_layers} spiking layers); evaluating {args.name}")

    entry = submit(args.model_file, args.weights, args.suite, args.name, args.factory, authors=args.authors,
                   paper_url=args.paper_url, replace=args.replace, stochastic=args.stochastic,
                   eot_samples=args.eot_samples, store_path=args.out, leaderboards_dir=args.leaderboards,
                   data_root=args.data_root, show_progress=not args.quiet, overrides=suite_overrides(args),
                   on_validated=announce)
    robust = ", ".join(f"{condition} {item['mean']:.2f}%" for condition, item in entry["robust_acc"].items()
                       if item["mean"] is not None)
    flags = f"; flags: {', '.join(entry['flags'])}" if entry["flags"] else ""
    partial = f" (partial: {entry['n_examples']} examples)" if entry["partial"] else ""
    Console().print(f"{entry['name']}: clean {entry['clean_acc']:.2f}%, {robust}{partial}{flags}\n"
                    f"leaderboard: {args.leaderboards}/{entry['suite']}.csv  "
                    f"entry: {entry_path(args.leaderboards, entry['suite'], entry['name'])}  store: {args.out}")
    return 0


def verify_command(args) -> int:
    results = verify_suite(args.suite, args.name, args.leaderboards, n_examples=args.n_examples,
                           tolerance=args.tolerance, data_root=args.data_root, show_progress=not args.quiet)
    if args.json:
        print(json.dumps([{"suite": r.suite, "name": r.name, "ok": r.ok, "n_examples": r.n_examples,
                           "checks": [vars(check) for check in r.checks]} for r in results], indent=2))
    else:
        console = Console()
        for result in results:
            console.print(render_verification(result))
    return 0 if all(result.ok for result in results) else EXIT_VERIFY_FAILED
