"""``htda-bench leaderboard show``: print a suite's leaderboard (rich table or JSON)."""

from __future__ import annotations

import json

from rich.console import Console

from ..leaderboard import read_leaderboard, render_leaderboard
from .submit_cmd import register_verify


def register(subparsers) -> None:
    parser = subparsers.add_parser("leaderboard", help="show leaderboards")
    commands = parser.add_subparsers(dest="leaderboard_command", required=True)
    show = commands.add_parser("show", help="print a suite's leaderboard")
    show.add_argument("suite")
    show.add_argument("--leaderboards", default="leaderboards", help="leaderboard folder (default leaderboards)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=show_leaderboard)
    register_verify(commands)


def show_leaderboard(args) -> int:
    frame = read_leaderboard(args.leaderboards, args.suite)
    if args.json:
        print(json.dumps(json.loads(frame.to_json(orient="records")), indent=2))
    else:
        Console().print(render_leaderboard(frame, f"leaderboard {args.suite}"))
    return 0
