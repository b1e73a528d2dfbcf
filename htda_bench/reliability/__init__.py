"""Trustworthy robustness: reliable suites (worst case per example over adaptive attacks) and flags.

``run_reliable("reliable-mnist")`` evaluates the suite's zoo models (or given ``Target``s) under the
paper's PGD and stronger, adaptive attacks (``htda_bench.attacks.adaptive`` and ``.autoattack``),
reports per example the worst case over all of them, and attaches automatic checks (``checks``) to
every leaderboard row. Importing this package registers the adaptive attacks. The suite definition
is in ``suite``, the evaluation in ``runner``, the leaderboard in ``leaderboard``.
"""

from ..attacks import adaptive, autoattack  # noqa: F401  (registers pgd50, pgd-<surrogate>, apgd-*, square, bpda, transfer)
from ..attacks.adaptive import straight_through_attention, swapped_surrogate, transfer_source
from .checks import FLAG_NAMES, Flag, Thresholds, compute_flags, determinism_gap, zero_gradient_share
from .leaderboard import reliability_frame
from .runner import counterpart_name, evaluate_reliability, plan_attacks, run_reliable
from .suite import ReliableSuite, load_reliable_suite, reliable_suite_names

__all__ = [
    "FLAG_NAMES", "Flag", "ReliableSuite", "Thresholds", "compute_flags", "counterpart_name", "determinism_gap",
    "evaluate_reliability", "load_reliable_suite", "plan_attacks", "reliability_frame", "reliable_suite_names",
    "run_reliable", "straight_through_attention", "swapped_surrogate", "transfer_source", "zero_gradient_share",
]
