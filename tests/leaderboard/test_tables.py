"""Leaderboard tables: hand-computed means/stds, documented column order, atomic writes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from rich.console import Console

from htda_bench.errors import ConfigError
from htda_bench.leaderboard import (
    COLUMNS_DOC,
    describe_column,
    eps_label,
    leaderboard_frame,
    read_leaderboard,
    render_leaderboard,
    write_leaderboard,
    write_run_record,
)
from htda_bench.store import OutcomeKey, ResultsStore

SUITE = "pgd-mnist"
N = 12
FINGERPRINT = "1234567890123456" * 4  # all digits: must survive the CSV round trip as text
WEIGHTS = {"s-snn-vgg32c-mnist": "aa" * 32, "htda-vgg32c-mnist": "0e12" * 16}
# correct counts out of N per (model, seed, condition); condition = (attack, eps)
CORRECT = {
    "s-snn-vgg32c-mnist": {
        0: {("clean", 0.0): 11, ("pgd", 8 / 255): 6, ("pgd", 20 / 255): 2},
        1: {("clean", 0.0): 10, ("pgd", 8 / 255): 5, ("pgd", 20 / 255): 3},
    },
    "htda-vgg32c-mnist": {
        0: {("clean", 0.0): 12, ("pgd", 8 / 255): 8, ("pgd", 20 / 255): 4},
        1: {("clean", 0.0): 12, ("pgd", 8 / 255): 8, ("pgd", 20 / 255): 1},
    },
}
EXPECTED_COLUMNS = [
    "model", "family", "arch", "clean_acc_mean", "clean_acc_std",
    "robust_acc_eps8_mean", "robust_acc_eps8_std", "robust_acc_eps20_mean", "robust_acc_eps20_std",
    "firing_rate_mean", "firing_rate_std", "macs_m", "params_m", "n_examples", "seeds",
    "dataset_variant", "dataset_fingerprint", "weights_sha256", "protocol_version", "date",
]


def _key(model, seed, attack, eps, weights=None):
    return OutcomeKey(suite=SUITE, protocol_version="1", model=model,
                      weights_sha256=weights or WEIGHTS[model], dataset_fingerprint=FINGERPRINT,
                      seed=seed, attack=attack, eps=eps)


def _fill(path):
    with ResultsStore(path) as store:
        for model, seeds in CORRECT.items():
            for seed, conditions in seeds.items():
                for (attack, eps), n_correct in conditions.items():
                    store.add_outcomes(_key(model, seed, attack, eps), range(N),
                                       [index < n_correct for index in range(N)])
        # Stale outcomes of older weights: the latest run record points elsewhere, so ignored.
        old = _key("s-snn-vgg32c-mnist", 0, "clean", 0.0, weights="ff" * 32)
        store.add_outcomes(old, range(50), [0] * 50)
        for seed, rate in ((0, 0.1), (1, 0.2)):
            key = _key("s-snn-vgg32c-mnist", seed, "clean", 0.0)
            store.set_metric(key, condition="clean", metric="firing_rate", value=rate, payload=[[rate] * 4])
            store.set_metric(key, condition="clean", metric="macs_m", value=12.5)
            store.set_metric(key, condition="clean", metric="params_m", value=0.3)
        run = {"suite": SUITE, "protocol_version": "1", "dataset_fingerprint": FINGERPRINT,
               "dataset_variant": "mnist-test", "n_examples": N, "seeds": [0, 1]}
        store.add_run({**run, "run_id": "old", "model": "s-snn-vgg32c-mnist", "weights_sha256": "ff" * 32,
                       "started": "2025-01-01T00:00:00+00:00", "finished": "2025-01-01T01:00:00+00:00"})
        store.add_run({**run, "run_id": "new", "model": "s-snn-vgg32c-mnist",
                       "weights_sha256": WEIGHTS["s-snn-vgg32c-mnist"],
                       "started": "2025-03-04T20:00:00-02:00", "finished": "2025-03-04T23:30:00-02:00"})
    return path


@pytest.fixture
def store_path(tmp_path):
    return _fill(tmp_path / "store.sqlite")


def test_eps_label():
    assert [eps_label(e) for e in (20 / 255, 1 / 255, 0.5 / 255, 8 / 255)] == ["20", "1", "0.5", "8"]


def test_csv_has_documented_columns_and_hand_computed_values(store_path, tmp_path):
    path = write_leaderboard(store_path, SUITE, "1", tmp_path / "leaderboards")
    assert path == tmp_path / "leaderboards" / f"{SUITE}.csv"
    with open(path) as handle:
        assert handle.readline().strip().split(",") == EXPECTED_COLUMNS
    for column in EXPECTED_COLUMNS:
        assert describe_column(column)
    assert set(COLUMNS_DOC) >= set(EXPECTED_COLUMNS) - {c for c in EXPECTED_COLUMNS if "robust" in c}

    frame = read_leaderboard(tmp_path / "leaderboards", SUITE).set_index("model")
    assert list(frame.index) == ["htda-vgg32c-mnist", "s-snn-vgg32c-mnist"]
    snn, htda = frame.loc["s-snn-vgg32c-mnist"], frame.loc["htda-vgg32c-mnist"]
    # s-snn clean: 11/12 = 91.667 %, 10/12 = 83.333 % -> mean 87.5, std 4.1667
    assert (snn["clean_acc_mean"], snn["clean_acc_std"]) == (87.5, 4.17)
    # eps 8: 50 %, 41.667 % -> 45.83 ± 4.17; eps 20: 16.667 %, 25 % -> 20.83 ± 4.17
    assert (snn["robust_acc_eps8_mean"], snn["robust_acc_eps8_std"]) == (45.83, 4.17)
    assert (snn["robust_acc_eps20_mean"], snn["robust_acc_eps20_std"]) == (20.83, 4.17)
    assert (snn["firing_rate_mean"], snn["firing_rate_std"]) == (0.15, 0.05)
    assert (snn["macs_m"], snn["params_m"]) == (12.5, 0.3)
    assert (snn["family"], snn["arch"], snn["seeds"], snn["n_examples"]) == ("s-snn", "vgg32c", "0,1", N)
    assert snn["weights_sha256"] == "aa" * 8 and snn["dataset_fingerprint"] == FINGERPRINT[:16]
    assert (snn["dataset_variant"], snn["protocol_version"], snn["date"]) == ("mnist-test", "1", "2025-03-05")
    # htda clean 100 % both seeds; eps 8: 66.667 % twice; eps 20: 33.333 %, 8.333 % -> 20.83 ± 12.5
    assert (htda["clean_acc_mean"], htda["clean_acc_std"]) == (100.0, 0.0)
    assert (htda["robust_acc_eps8_mean"], htda["robust_acc_eps8_std"]) == (66.67, 0.0)
    assert (htda["robust_acc_eps20_mean"], htda["robust_acc_eps20_std"]) == (20.83, 12.5)
    assert pd.isna(htda["firing_rate_mean"]) and pd.isna(htda["macs_m"])
    assert (htda["family"], htda["weights_sha256"], htda["date"]) == ("htda", "0e12" * 4, "")


def test_several_attacks_get_prefixed_columns(store_path):
    with ResultsStore(store_path) as store:
        store.add_outcomes(_key("htda-vgg32c-mnist", 0, "fgsm", 8 / 255), range(N), [1] * N)
        frame = leaderboard_frame(store, SUITE, "1")
    robust = [column for column in frame.columns if "robust" in column]
    assert robust == ["fgsm_robust_acc_eps8_mean", "fgsm_robust_acc_eps8_std",
                      "pgd_robust_acc_eps8_mean", "pgd_robust_acc_eps8_std",
                      "pgd_robust_acc_eps20_mean", "pgd_robust_acc_eps20_std"]
    row = frame.set_index("model").loc["htda-vgg32c-mnist"]
    assert (row["fgsm_robust_acc_eps8_mean"], row["fgsm_robust_acc_eps8_std"]) == (100.0, 0.0)
    assert pd.isna(frame.set_index("model").loc["s-snn-vgg32c-mnist", "fgsm_robust_acc_eps8_mean"])


def test_other_protocol_versions_are_not_mixed_in(store_path, tmp_path):
    assert leaderboard_frame(store_path, SUITE, "2").empty
    with pytest.raises(ConfigError, match="htda-bench run --suite pgd-mnist"):
        write_leaderboard(store_path, SUITE, "2", tmp_path / "leaderboards")


def test_read_leaderboard_missing_suite(tmp_path):
    with pytest.raises(ConfigError) as error:
        read_leaderboard(tmp_path, "pgd-cifar10")
    message = str(error.value)
    assert "pgd-cifar10" in message and "htda-bench run --suite pgd-cifar10" in message
    assert "\n" not in message


def test_csv_write_is_atomic(store_path, tmp_path, monkeypatch):
    directory = tmp_path / "leaderboards"
    path = write_leaderboard(store_path, SUITE, "1", directory)
    write_leaderboard(store_path, SUITE, "1", directory)
    assert sorted(p.name for p in directory.iterdir()) == [f"{SUITE}.csv"]
    before = path.read_bytes()

    def half_written(self, target, **kwargs):
        with open(target, "w") as handle:
            handle.write("model,fam")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_written)
    with pytest.raises(OSError):
        write_leaderboard(store_path, SUITE, "1", directory)
    assert path.read_bytes() == before
    assert sorted(p.name for p in directory.iterdir()) == [f"{SUITE}.csv"]


def test_write_run_record(tmp_path):
    record = {"run_id": "r1", "seeds": [0, 1], "finished": "2025-03-05T01:30:00+00:00"}
    path = write_run_record(record, tmp_path, SUITE, "htda-vgg32c-mnist")
    assert path == tmp_path / "runs" / SUITE / "htda-vgg32c-mnist.json"
    assert json.loads(path.read_text()) == record
    assert [p.name for p in path.parent.iterdir()] == ["htda-vgg32c-mnist.json"]
    with pytest.raises(ConfigError):
        write_run_record(record, tmp_path, SUITE, "../escape")


def test_render_leaderboard(store_path):
    table = render_leaderboard(leaderboard_frame(store_path, SUITE, "1"), title="pgd-mnist (protocol 1)")
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    assert "87.50 ± 4.17" in text and "ε=20/255" in text and "20.83 ± 12.50" in text
    assert [column.header for column in table.columns][:2] == ["model", "clean %"]
