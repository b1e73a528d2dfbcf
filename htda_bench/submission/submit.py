"""Submit a model to a suite's leaderboard: validate, dry-run, evaluate, write the entry.

Validation and a one-example dry run happen before anything is written. The evaluation and the
writes (store rows, ``<leaderboards>/<suite>.csv`` regenerated from the store, the entry file)
happen under ``filelock.FileLock(<leaderboards>/.<suite>.lock)``, so parallel submissions to one
leaderboard queue up; they must share the results store for the CSV to hold all of them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tempfile
from pathlib import Path

import pandas as pd
from filelock import FileLock

from .. import __version__
from ..data import load_split
from ..harness import DEFAULT_STORE, resolve_suite, run_targets
from ..harness.runner import CLEAN, Target, condition_name
from ..leaderboard import eps_label
from ..metrics.spikes import parameter_count
from ..store import ResultsStore
from ..suites import Suite
from ..utils import package_versions, sha256_file, write_json_atomic
from .validate import (DEFAULT_EOT_SAMPLES, FLAG_GRADIENT_DISCONNECTED, ExpectationOverTransformation,
                       InputConnected, SubmissionError, ValidationReport, ensure_spiking_layers, load_submission,
                       model_time_steps, validate_model, validation_batch)

REFERENCE_EXAMPLES = 200  # verify_reference covers the first examples, at most this many
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
ARCHITECTURE_SUMMARY_LINES = 40


def entries_dir(leaderboards_dir, suite: str) -> Path:
    return Path(leaderboards_dir) / "entries" / suite


def entry_path(leaderboards_dir, suite: str, name: str) -> Path:
    return entries_dir(leaderboards_dir, suite) / f"{name}.json"


def lock_path(leaderboards_dir, suite: str) -> Path:
    return Path(leaderboards_dir) / f".{suite}.lock"


def read_entry(leaderboards_dir, suite: str, name: str) -> dict:
    path = entry_path(leaderboards_dir, suite, name)
    if not path.is_file():
        raise SubmissionError("entry", f"no entry {name!r} for suite {suite} at {path}")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SubmissionError("entry", f"entry {path} is unreadable: {error}") from error


def evaluated_sha256(weights_sha256: str, model_file_sha256: str, factory: str, eot_samples: int | None) -> str:
    """The identity results are stored under: the weights, the code and how it is evaluated, so a
    changed model file with the same weights never reuses stored outcomes."""
    text = f"weights={weights_sha256}\nmodel_file={model_file_sha256}\nfactory={factory}\neot={eot_samples or 0}\n"
    return hashlib.sha256(text.encode()).hexdigest()


def suite_conditions(suite: Suite) -> list[tuple[str, float]]:
    return [(CLEAN, 0.0)] + [(attack.name, float(eps)) for attack in suite.attacks for eps in suite.eps]


# -- verify reference: per-example outcomes of the first examples ---------------------------------
def prefix_outcomes(store_path, suite: Suite, model: str, weights_sha256: str, fingerprint: str,
                    n_examples: int) -> dict[str, dict[str, str]]:
    """{condition: {seed: '0101...'}}: correctness of examples 0..n-1 as read from the store."""
    with ResultsStore(store_path) as store:
        frame = store.outcomes_frame(suite=suite.name, protocol_version=suite.protocol_version, model=model,
                                     weights_sha256=weights_sha256, dataset_fingerprint=fingerprint)
    frame = frame[frame["example_index"] < n_examples]
    result: dict[str, dict[str, str]] = {}
    for attack, eps in suite_conditions(suite):
        per_seed = {}
        for seed in suite.seeds:
            rows = frame[(frame["attack"] == attack) & (frame["eps_key"] == eps_label(eps)) & (frame["seed"] == seed)]
            rows = rows.sort_values("example_index")
            if rows["example_index"].tolist() != list(range(n_examples)):
                raise SubmissionError("reference", f"the store lacks outcomes of {condition_name(attack, eps)} "
                                                   f"seed {seed} for examples 0..{n_examples - 1}")
            per_seed[str(seed)] = "".join("1" if ok else "0" for ok in rows["correct"])
        result[condition_name(attack, eps)] = per_seed
    return result


def bits_accuracy(per_seed: dict[str, str], n_examples: int | None = None) -> float:
    """Mean over seeds of the accuracy in % on the first ``n_examples`` (all by default)."""
    values = []
    for bits in per_seed.values():
        bits = bits[:n_examples] if n_examples is not None else bits
        values.append(100.0 * bits.count("1") / len(bits))
    return round(sum(values) / len(values), 4)


def make_reference(outcomes: dict[str, dict[str, str]], n_examples: int) -> dict:
    return {
        "n_examples": n_examples,
        "clean_acc": bits_accuracy(outcomes[CLEAN]),
        "robust_acc": {name: bits_accuracy(bits) for name, bits in outcomes.items() if name != CLEAN},
        "outcomes": outcomes,
    }


# -- the entry -----------------------------------------------------------------------------------
def robust_column(frame_columns, attack: str, eps: float) -> str | None:
    label = re.sub(r"[^0-9a-z]+", "_", attack.lower()).strip("_")
    for stem in (f"robust_acc_eps{eps_label(eps)}", f"{label}_robust_acc_eps{eps_label(eps)}"):
        if f"{stem}_mean" in frame_columns:
            return stem
    return None


def _number(value):
    return None if value is None or pd.isna(value) else float(value)


def _architecture(model) -> dict:
    lines = repr(model).splitlines()
    summary = "\n".join(lines[:ARCHITECTURE_SUMMARY_LINES])
    if len(lines) > ARCHITECTURE_SUMMARY_LINES:
        summary += f"\n... ({len(lines) - ARCHITECTURE_SUMMARY_LINES} more lines)"
    return {"class": type(model).__qualname__, "summary": summary}


def build_entry(*, name, suite: Suite, row: pd.Series, raw_model, report: ValidationReport, authors, paper_url,
                model_file: Path, model_file_sha256, factory, weights: Path, weights_sha256, identity,
                fingerprint, overrides, stochastic, eot_samples, reference) -> dict:
    robust = {}
    for attack, eps in suite_conditions(suite)[1:]:
        stem = robust_column(row.index, attack, eps)
        robust[condition_name(attack, eps)] = {
            "attack": attack, "eps": eps, "column": stem,
            "mean": None if stem is None else _number(row[f"{stem}_mean"]),
            "std": None if stem is None else _number(row[f"{stem}_std"]),
        }
    return {
        "name": name, "authors": authors, "link": paper_url,
        "architecture": _architecture(raw_model), "parameters": parameter_count(raw_model),
        "time_steps": model_time_steps(raw_model),
        "suite": suite.name, "dataset": suite.dataset, "protocol_version": suite.protocol_version,
        "config_hash": suite.config_hash, "overrides": overrides,
        "n_examples": int(row["n_examples"]), "seeds": list(suite.seeds), "partial": suite.partial,
        "clean_acc": _number(row["clean_acc_mean"]), "clean_acc_std": _number(row["clean_acc_std"]),
        "robust_acc": robust,
        "firing_rate": _number(row["firing_rate_mean"]), "firing_rate_std": _number(row["firing_rate_std"]),
        "macs_m": _number(row["macs_m"]), "params_m": _number(row["params_m"]),
        "spiking": report.spiking, "stochastic": stochastic, "eot_samples": eot_samples if stochastic else None,
        "flags": list(report.flags), "warnings": list(report.warnings),
        "model_file": str(model_file.resolve()), "model_file_sha256": model_file_sha256, "factory": factory,
        "weights": str(weights.resolve()), "weights_sha256": weights_sha256, "evaluated_sha256": identity,
        "dataset_fingerprint": fingerprint,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "htda_bench_version": __version__, "package_versions": package_versions(),
        "verify_reference": reference,
    }


# -- submit --------------------------------------------------------------------------------------
def _check_name(name: str, suite: str, leaderboards_dir, replace: bool) -> None:
    if not NAME_PATTERN.match(name or ""):
        raise SubmissionError("name", f"{name!r} is not a usable name: letters, digits and . _ + - "
                                      "(starting with a letter or digit, at most 100 characters)")
    from ..zoo import list_cards

    if name in {card["name"] for card in list_cards()}:
        raise SubmissionError("name", f"{name!r} is a zoo model; choose another name")
    if replace:
        return
    if entry_path(leaderboards_dir, suite, name).exists():
        raise SubmissionError("name", f"{name!r} is already on the {suite} leaderboard "
                                      f"({entry_path(leaderboards_dir, suite, name)}); pass --replace to replace it")
    board = Path(leaderboards_dir) / f"{suite}.csv"
    if board.is_file() and name in set(pd.read_csv(board, usecols=["model"], dtype=str)["model"]):
        raise SubmissionError("name", f"{name!r} is already a row of {board}; pass --replace to replace it")


def _dry_run(suite: Suite, target: Target, data_root, spiking: bool) -> None:
    """Evaluate one example with the real runner in a throwaway store: anything the runner cannot
    do with this model fails here, before the leaderboard lock is taken and anything is written."""
    tiny = suite.with_overrides(n_examples=1, seeds=[suite.seeds[0]], eps=[max(suite.eps)], batch_size=1)
    with tempfile.TemporaryDirectory() as folder:
        try:
            run_targets(tiny, [target], Path(folder) / "dry-run.sqlite", None, data_root, show_progress=False)
        except Exception as error:  # the runner on user code: any failure refuses the model
            hint = ("" if spiking else " (the model has no spiking layers; this htda-bench runner cannot "
                                       "measure its firing rate)")
            raise SubmissionError("dry-run", f"evaluating one example failed with {type(error).__name__}: "
                                             f"{error}{hint}") from error


def submit(model_file, weights, suite: str | Suite, name: str, factory: str = "build_model", *,
           authors: str | None = None, paper_url: str | None = None, replace: bool = False,
           stochastic: bool = False, eot_samples: int = DEFAULT_EOT_SAMPLES, store_path=DEFAULT_STORE,
           leaderboards_dir="leaderboards", data_root=None, show_progress: bool = False,
           overrides: dict | None = None, on_validated=None) -> dict:
    """Validate, evaluate and add a model to ``<leaderboards_dir>/<suite>.csv``; returns the entry
    (also written to ``<leaderboards_dir>/entries/<suite>/<name>.json``). ``overrides`` are the
    suite overrides of ``htda-bench run`` (n_examples, seeds, eps, steps, step_size, batch_size).
    ``on_validated(report)`` is called after the checks, before any evaluation (for messages)."""
    overrides = {key: (list(value) if isinstance(value, tuple) else value)
                 for key, value in (overrides or {}).items() if value is not None}
    resolved = resolve_suite(suite, **overrides)
    _check_name(name, resolved.name, leaderboards_dir, replace)
    model_file, weights = Path(model_file), Path(weights)
    raw_model = load_submission(model_file, weights, factory)
    model_file_sha256, weights_sha256 = sha256_file(model_file), sha256_file(weights)
    batch = validation_batch(resolved.dataset, data_root)
    report = validate_model(raw_model, resolved.dataset, data_root, stochastic, eot_samples, batch=batch)
    if on_validated is not None:
        on_validated(report)
    identity = evaluated_sha256(weights_sha256, model_file_sha256, factory, eot_samples if stochastic else None)
    target = Target(name, report.model, identity)
    _dry_run(resolved, target, data_root, report.spiking)

    split = load_split(resolved.dataset, "test", data_root)
    fingerprint, n_reference = split.fingerprint, min(REFERENCE_EXAMPLES, resolved.n_examples, len(split))
    Path(leaderboards_dir).mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path(leaderboards_dir, resolved.name))):
        _check_name(name, resolved.name, leaderboards_dir, replace)  # another submission may have won
        frame = run_targets(resolved, [target], store_path, leaderboards_dir, data_root, show_progress)
        if frame.empty or frame.iloc[0]["weights_sha256"] != identity[:16]:
            raise SubmissionError("leaderboard", f"the {resolved.name} leaderboard does not show the run just made "
                                                 f"for {name!r}; no entry written (rerun the command)")
        reference = make_reference(prefix_outcomes(store_path, resolved, name, identity, fingerprint, n_reference),
                                   n_reference)
        entry = build_entry(name=name, suite=resolved, row=frame.iloc[0], raw_model=raw_model, report=report,
                            authors=authors, paper_url=paper_url, model_file=model_file,
                            model_file_sha256=model_file_sha256, factory=factory, weights=weights,
                            weights_sha256=weights_sha256, identity=identity, fingerprint=fingerprint,
                            overrides=overrides, stochastic=stochastic, eot_samples=eot_samples,
                            reference=reference)
        write_json_atomic(entry_path(leaderboards_dir, resolved.name, name), entry)
    return entry


def rebuild_model(entry: dict):
    """The evaluated model of an entry from its stored model file, factory and weights paths."""
    model = ensure_spiking_layers(load_submission(entry["model_file"], entry["weights"], entry["factory"]))
    model.requires_grad_(False)
    if entry.get("stochastic"):
        model = ExpectationOverTransformation(model, entry.get("eot_samples") or DEFAULT_EOT_SAMPLES)
    if FLAG_GRADIENT_DISCONNECTED in entry.get("flags", []):
        model = InputConnected(model)
    return model.eval()
