"""``htda-bench`` entry point: builds the parser from the subcommand modules and maps user
errors to a one-line message and exit code 2."""

from __future__ import annotations

import argparse
import sys

from ..errors import HtdaBenchError
from . import data_cmd, leaderboard_cmd, reliable_cmd, report_cmd, run_cmd, submit_cmd, train_cmd, zoo_cmd

SUBCOMMAND_MODULES = (run_cmd, reliable_cmd, submit_cmd, report_cmd, train_cmd, zoo_cmd, leaderboard_cmd, data_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="htda-bench", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except HtdaBenchError as error:
        print(f"htda-bench: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("htda-bench: interrupted; completed work is saved, rerun the same command to resume",
              file=sys.stderr)
        return 130
