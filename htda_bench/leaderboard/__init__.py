"""Leaderboards: per-suite CSV tables and run records regenerated from the results store."""

from .tables import (
    COLUMNS_DOC,
    describe_column,
    eps_label,
    leaderboard_frame,
    read_leaderboard,
    render_leaderboard,
    write_leaderboard,
    write_run_record,
)

__all__ = [
    "COLUMNS_DOC",
    "describe_column",
    "eps_label",
    "leaderboard_frame",
    "read_leaderboard",
    "render_leaderboard",
    "write_leaderboard",
    "write_run_record",
]
