"""Shared fixtures: the real data root (``HTDA_BENCH_DATA``), small real batches, tiny models."""

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = os.environ.get("HTDA_BENCH_DATA")
    if not root or not (Path(root) / "MNIST" / "raw").is_dir():
        pytest.skip("set HTDA_BENCH_DATA to the dataset mirrors (../shared/datasets) to run data tests")
    return Path(root)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Decoded-data cache under one temporary folder per test session."""
    monkeypatch.setenv("HTDA_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "decoded-cache"))


@pytest.fixture(scope="session")
def mnist_test(data_root):
    from htda_bench.data import load_split

    return load_split("mnist", "test", data_root, download=False)
