"""``leaderboard verify``: re-run an entry's protocol on its first examples and compare.

Checks, in order: the model file and weights still have the sha256 the entry recorded; the entry's
reference numbers agree with its stored per-example outcomes (and, for entries evaluated on no
more examples than the reference, with its headline numbers); the headline numbers agree with the
leaderboard CSV; the suite still has the entry's config hash; and a fresh evaluation in a
temporary store of the first N examples gives the reference accuracies within a tolerance.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from ..data import load_split
from ..errors import ConfigError
from ..harness import resolve_suite, run_targets
from ..harness.runner import CLEAN, Target
from ..leaderboard import read_leaderboard
from ..utils import sha256_file
from .submit import (REFERENCE_EXAMPLES, bits_accuracy, entries_dir, prefix_outcomes, read_entry, rebuild_model)
from .validate import SubmissionError

NUMBER_TOLERANCE = 0.01  # stored numbers are rounded to 2 decimals


@dataclass
class Check:
    name: str
    expected: str
    observed: str
    ok: bool


@dataclass
class VerifyResult:
    suite: str
    name: str
    n_examples: int = 0
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def add(self, name: str, expected, observed, ok: bool) -> bool:
        self.checks.append(Check(name, str(expected), str(observed), bool(ok)))
        return bool(ok)


def _hash_check(result: VerifyResult, label: str, path: str, expected: str) -> bool:
    observed = sha256_file(path) if Path(path).is_file() else f"missing file {path}"
    return result.add(f"{label} sha256", expected[:16], observed[:16], observed == expected)


def _close(a, b, tolerance: float) -> bool:
    return a is not None and b is not None and abs(float(a) - float(b)) <= tolerance


def _reference_checks(result: VerifyResult, entry: dict) -> bool:
    reference = entry["verify_reference"]
    outcomes = reference["outcomes"]
    ok = result.add("reference clean = its outcomes", reference["clean_acc"], bits_accuracy(outcomes[CLEAN]),
                    _close(reference["clean_acc"], bits_accuracy(outcomes[CLEAN]), NUMBER_TOLERANCE))
    for condition, value in reference["robust_acc"].items():
        computed = bits_accuracy(outcomes[condition]) if condition in outcomes else None
        ok &= result.add(f"reference {condition} = its outcomes", value, computed,
                         _close(value, computed, NUMBER_TOLERANCE))
    if entry["n_examples"] == reference["n_examples"]:  # the reference covers the whole evaluation
        ok &= result.add("entry clean = reference", entry["clean_acc"], reference["clean_acc"],
                         _close(entry["clean_acc"], reference["clean_acc"], NUMBER_TOLERANCE))
        for condition, item in entry["robust_acc"].items():
            ok &= result.add(f"entry {condition} = reference", item["mean"], reference["robust_acc"].get(condition),
                             _close(item["mean"], reference["robust_acc"].get(condition), NUMBER_TOLERANCE))
    return ok


def _board_checks(result: VerifyResult, entry: dict, leaderboards_dir) -> None:
    try:
        board = read_leaderboard(leaderboards_dir, entry["suite"])
    except ConfigError as error:
        result.add("entry on the leaderboard", "a row", str(error), False)
        return
    rows = board[board["model"] == entry["name"]]
    if rows.empty:
        result.add("entry on the leaderboard", "a row", "no row", False)
        return
    row = rows.iloc[0]
    result.add("entry clean = leaderboard", entry["clean_acc"], row["clean_acc_mean"],
               _close(entry["clean_acc"], row["clean_acc_mean"], NUMBER_TOLERANCE))
    for condition, item in entry["robust_acc"].items():
        column = f"{item['column']}_mean"
        observed = row[column] if item["column"] and column in row.index else None
        result.add(f"entry {condition} = leaderboard", item["mean"], observed,
                   _close(item["mean"], observed, NUMBER_TOLERANCE))


def verify_entry(suite: str, name: str, leaderboards_dir="leaderboards", n_examples: int = REFERENCE_EXAMPLES,
                 tolerance: float = 1.0, data_root=None, show_progress: bool = False) -> VerifyResult:
    """Verify one entry (see the module docstring); ``result.ok`` says whether every check passed."""
    entry = read_entry(leaderboards_dir, suite, name)
    result = VerifyResult(suite=suite, name=name)
    if not all(key in entry for key in ("verify_reference", "model_file", "weights", "overrides")):
        raise SubmissionError("entry", f"entry {name!r} of {suite} lacks what verify needs (written by an "
                                       "older htda-bench?)")
    hashes_ok = _hash_check(result, "model file", entry["model_file"], entry["model_file_sha256"])
    hashes_ok &= _hash_check(result, "weights", entry["weights"], entry["weights_sha256"])
    _reference_checks(result, entry)
    _board_checks(result, entry, leaderboards_dir)
    reference = entry["verify_reference"]
    count = min(int(n_examples), int(reference["n_examples"]))
    if count < 1:
        raise SubmissionError("verify", f"--n-examples must be at least 1, got {n_examples}")
    result.n_examples = count
    suite_obj = resolve_suite(suite, **{**entry["overrides"], "n_examples": count})
    full = resolve_suite(suite, **entry["overrides"])
    config_ok = result.add("suite config hash", entry["config_hash"], full.config_hash,
                           full.config_hash == entry["config_hash"])
    if not (hashes_ok and config_ok):
        result.add("re-run", "identical files and suite", "skipped", False)
        return result
    split = load_split(suite_obj.dataset, "test", data_root)
    fingerprint_ok = result.add("dataset fingerprint", entry["dataset_fingerprint"][:16], split.fingerprint[:16],
                                split.fingerprint == entry["dataset_fingerprint"])
    if not fingerprint_ok:
        return result
    model = rebuild_model(entry)
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "verify.sqlite"
        run_targets(suite_obj, [Target(name, model, entry["evaluated_sha256"])], store, None, data_root,
                    show_progress)
        fresh = prefix_outcomes(store, suite_obj, name, entry["evaluated_sha256"], split.fingerprint, count)
    for condition, per_seed in fresh.items():
        stored = reference["outcomes"].get(condition)
        expected = bits_accuracy(stored, count) if stored else None
        observed = bits_accuracy(per_seed)
        result.add(f"re-run {condition} ({count} examples)", expected, observed,
                   _close(expected, observed, tolerance))
    return result


def verify_suite(suite: str, name: str | None = None, leaderboards_dir="leaderboards", **options) -> list[VerifyResult]:
    """Verify one entry, or every entry of the suite when ``name`` is None."""
    if name is not None:
        return [verify_entry(suite, name, leaderboards_dir, **options)]
    names = sorted(path.stem for path in entries_dir(leaderboards_dir, suite).glob("*.json"))
    if not names:
        raise SubmissionError("entry", f"no entries for suite {suite} under {entries_dir(leaderboards_dir, suite)}")
    return [verify_entry(suite, entry_name, leaderboards_dir, **options) for entry_name in names]


def render_verification(result: VerifyResult) -> Table:
    verdict = "[green]PASS[/green]" if result.ok else "[red]FAIL[/red]"
    table = Table(title=f"verify {result.suite} / {result.name}: {verdict}", header_style="bold")
    for column in ("check", "expected", "observed", "result"):
        table.add_column(column, justify="left" if column == "check" else "right")
    for check in result.checks:
        table.add_row(check.name, check.expected, check.observed, "ok" if check.ok else "[red]MISMATCH[/red]")
    return table
