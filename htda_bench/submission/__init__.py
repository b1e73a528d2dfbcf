"""Submit your own model to a suite's leaderboard (``htda-bench submit``) and re-check entries
(``htda-bench leaderboard verify``).

    from htda_bench.submission import submit, verify_entry
    entry = submit("my_snn.py", "my_snn.safetensors", "pgd-mnist", "my-snn", overrides={"n_examples": 500})
    assert verify_entry("pgd-mnist", "my-snn", n_examples=200).ok

A refused model raises ``SubmissionError`` (``.check`` names the failed check; exit code 2 in the CLI).
"""

from .submit import entry_path, read_entry, rebuild_model, submit
from .validate import (DEFAULT_EOT_SAMPLES, ExpectationOverTransformation, SubmissionError, ValidationReport,
                       ensure_spiking_layers, load_submission, validate_model)
from .verify import VerifyResult, render_verification, verify_entry, verify_suite

__all__ = [
    "DEFAULT_EOT_SAMPLES",
    "ExpectationOverTransformation",
    "SubmissionError",
    "ValidationReport",
    "VerifyResult",
    "ensure_spiking_layers",
    "entry_path",
    "load_submission",
    "read_entry",
    "rebuild_model",
    "render_verification",
    "submit",
    "validate_model",
    "verify_entry",
    "verify_suite",
]
