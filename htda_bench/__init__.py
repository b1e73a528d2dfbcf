"""htda-bench: robustness evaluation of spiking neural networks (S-SNN vs HTDA and your own)."""

__version__ = "0.1.0"


def load_model(name: str):
    """A zoo model in eval mode after its sha256 check (see ``htda_bench.zoo``)."""
    from .zoo import load_model as _load_model

    return _load_model(name)


def evaluate(model, suite="pgd-mnist", **overrides):
    """Evaluate a model under a suite; returns a pandas DataFrame (see ``htda_bench.harness``)."""
    from .harness import evaluate as _evaluate

    return _evaluate(model, suite=suite, **overrides)


__all__ = ["__version__", "evaluate", "load_model"]
