"""Results store: idempotent inserts, per-key isolation, concurrent writers, duplicate-free merges."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time

import pandas as pd
import pytest

from htda_bench.errors import ConfigError
from htda_bench.store import OutcomeKey, ResultsStore, eps_label, merge_stores

KEY = OutcomeKey(suite="pgd-mnist", protocol_version="1", model="s-snn-vgg32c-mnist",
                 weights_sha256="ab" * 32, dataset_fingerprint="cd" * 32, seed=0, attack="pgd", eps=20 / 255)


def _key(**changes) -> OutcomeKey:
    fields = {**KEY.__dict__, **changes}
    return OutcomeKey(**fields)


def _row_count(path, table="outcomes") -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_eps_key_formatting():
    assert KEY.eps_key == "20"
    assert eps_label(20 / 255) == "20"
    assert eps_label(1 / 255) == "1"
    assert eps_label(0.5 / 255) == "0.5"
    assert eps_label(0.0) == "0"
    assert eps_label(8 / 255) == "8"


def test_overlapping_inserts_do_not_duplicate_and_resume_sees_them(tmp_path):
    path = tmp_path / "deep" / "store.sqlite"
    with ResultsStore(path) as store:
        assert store.add_outcomes(KEY, indices=range(0, 10), correct=[i % 2 == 0 for i in range(10)]) == 10
        # A resumed run repeats indices 5..9 (with different values: the first write wins).
        assert store.add_outcomes(KEY, indices=range(5, 15), correct=[1] * 10) == 5
        assert store.done_indices(KEY) == set(range(15))
        assert store.done_indices(KEY, indices=[3, 14, 20]) == {3, 14}
        frame = store.outcomes_frame(model=KEY.model)
    assert _row_count(path) == 15
    assert frame.duplicated(["seed", "attack", "eps_key", "example_index"]).sum() == 0
    assert frame.set_index("example_index").loc[7, "correct"] == 0
    assert list(frame.columns) == ["suite", "protocol_version", "model", "weights_sha256",
                                   "dataset_fingerprint", "seed", "attack", "eps", "eps_key",
                                   "example_index", "correct", "firing_rate"]


def test_keys_are_isolated(tmp_path):
    with ResultsStore(tmp_path / "store.sqlite") as store:
        store.add_outcomes(KEY, [0, 1, 2], [1, 1, 1])
        store.add_outcomes(_key(seed=1), [0], [0])
        store.add_outcomes(_key(eps=8 / 255), [5, 6], [0, 1])
        store.add_outcomes({**KEY.__dict__, "attack": "clean", "eps": 0.0}, [9], [True])
        assert store.done_indices(KEY) == {0, 1, 2}
        assert store.done_indices(_key(seed=1)) == {0}
        assert store.done_indices(_key(eps=8 / 255)) == {5, 6}
        assert store.done_indices(_key(attack="clean", eps=0.0)) == {9}
        assert store.done_indices(_key(weights_sha256="ef" * 32)) == set()
        assert len(store.outcomes_frame(seed=0, attack="pgd")) == 5
        assert sorted(store.outcomes_frame(attack="pgd")["eps_key"].unique()) == ["20", "8"]


def test_unusable_file_is_a_config_error(tmp_path):
    (tmp_path / "notes.sqlite").write_text("not a database " * 100)
    with pytest.raises(ConfigError, match="notes.sqlite"):
        ResultsStore(tmp_path / "notes.sqlite")


def test_mismatched_lengths_rejected(tmp_path):
    with ResultsStore(tmp_path / "store.sqlite") as store:
        with pytest.raises(ValueError):
            store.add_outcomes(KEY, [0, 1], [1])
        assert store.done_indices(KEY) == set()


def test_metrics_and_runs_round_trip(tmp_path):
    with ResultsStore(tmp_path / "store.sqlite") as store:
        store.set_metric(KEY, condition="clean", metric="firing_rate", value=0.1, payload=[[0.1, 0.2]])
        store.set_metric(KEY, condition="clean", metric="firing_rate", value=0.2, payload=[[0.3, 0.4]])
        store.add_run({"run_id": "r1", "suite": "pgd-mnist", "protocol_version": "1", "model": KEY.model,
                       "seeds": [0, 1], "config": {"b": 2}, "hardware": "cpu"})
        metrics = store.metrics_frame(metric="firing_rate")
        runs = store.runs_frame(suite="pgd-mnist")
    assert len(metrics) == 1 and metrics.loc[0, "value"] == 0.2
    assert metrics.loc[0, "payload"] == [[0.3, 0.4]]
    assert runs.loc[0, "seeds"] == [0, 1]
    assert runs.loc[0, "config_json"] == '{"b": 2}' and runs.loc[0, "extra_json"] == '{"hardware": "cpu"}'


def _write_seed(path, seed, barrier):
    with ResultsStore(path) as store:
        barrier.wait(timeout=120)
        key = _key(seed=seed)
        for start in range(0, 1000, 2):  # many small transactions so the two writers interleave
            store.add_outcomes(key, range(start, start + 2), [1, 0])


def test_two_processes_write_at_once(tmp_path):
    path = tmp_path / "store.sqlite"
    ResultsStore(path).close()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    workers = [context.Process(target=_write_seed, args=(path, seed, barrier)) for seed in (0, 1)]
    for worker in workers:
        worker.start()
    # Hold the write lock while the workers start writing: they must wait (busy timeout), not fail.
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    barrier.wait(timeout=120)
    time.sleep(0.5)
    blocker.execute("COMMIT")
    blocker.close()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    with ResultsStore(path) as store:
        assert store.done_indices(_key(seed=0)) == set(range(1000))
        assert store.done_indices(_key(seed=1)) == set(range(1000))
    assert _row_count(path) == 2000


def _fill(store, spans):
    for seed, start, stop in spans:
        store.add_outcomes(_key(seed=seed), range(start, stop), [i % 3 == 0 for i in range(start, stop)])


def test_merge_of_overlapping_stores_equals_combined_insertion(tmp_path):
    spans_a, spans_b = [(0, 0, 60)], [(0, 40, 100), (1, 0, 30)]
    with ResultsStore(tmp_path / "a.sqlite") as store:
        _fill(store, spans_a)
        store.set_metric(KEY, condition="clean", metric="macs_m", value=1.5)
        store.add_run({"run_id": "r1", "suite": "pgd-mnist"})
    with ResultsStore(tmp_path / "b.sqlite") as store:
        _fill(store, spans_b)
        store.set_metric(KEY, condition="clean", metric="macs_m", value=1.5)
        store.add_run({"run_id": "r1", "suite": "pgd-mnist"})
    with ResultsStore(tmp_path / "combined.sqlite") as store:
        _fill(store, spans_a + spans_b)
        expected = store.outcomes_frame()

    output = merge_stores([tmp_path / "a.sqlite", tmp_path / "b.sqlite"], tmp_path / "merged.sqlite")
    with ResultsStore(output) as store:
        merged = store.outcomes_frame()
        assert store.merge_from(tmp_path / "b.sqlite")["outcomes"] == 0  # merging again adds nothing
        assert len(store.metrics_frame()) == 1 and len(store.runs_frame()) == 1
    assert len(merged) == 130
    assert merged.equals(expected)
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", "-wal", "-journal"))]


def test_merge_with_missing_source_leaves_output_untouched(tmp_path):
    with ResultsStore(tmp_path / "a.sqlite") as store:
        _fill(store, [(0, 0, 10)])
    output = tmp_path / "merged.sqlite"
    output.write_bytes(b"previous contents")
    with pytest.raises(ConfigError, match="missing.sqlite"):
        merge_stores([tmp_path / "a.sqlite", tmp_path / "missing.sqlite"], output)
    assert output.read_bytes() == b"previous contents"
    with ResultsStore(tmp_path / "a.sqlite") as store, pytest.raises(ConfigError):
        store.merge_from(tmp_path / "missing.sqlite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sqlite", "merged.sqlite"]


def test_merge_failure_midway_leaves_output_untouched(tmp_path):
    with ResultsStore(tmp_path / "a.sqlite") as store:
        _fill(store, [(0, 0, 10)])
    (tmp_path / "garbage.sqlite").write_bytes(b"this is not a database" * 100)
    output = tmp_path / "merged.sqlite"
    output.write_bytes(b"previous contents")
    with pytest.raises(ConfigError):
        merge_stores([tmp_path / "a.sqlite", tmp_path / "garbage.sqlite"], output)
    assert output.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sqlite", "garbage.sqlite", "merged.sqlite"]


def test_firing_rates_are_stored_per_example(tmp_path):
    with ResultsStore(tmp_path / "s.sqlite") as store:
        store.add_outcomes(KEY, [0, 1], [True, False], firing_rates=[0.25, 0.5])
        store.add_outcomes(KEY, [2], [True])  # rate unknown
        frame = store.outcomes_frame().set_index("example_index")
    assert frame.loc[0, "firing_rate"] == 0.25 and frame.loc[1, "firing_rate"] == 0.5
    assert pd.isna(frame.loc[2, "firing_rate"])
