"""Sharded evaluation under torchrun (gloo, CPU) equals the single-process run; stores merge
idempotently."""

import os
import subprocess
import sys

import pandas as pd

from htda_bench.store import ResultsStore, merge_stores

RUN = ["run", "--suite", "pgd-mnist", "--models", "s-snn-vgg32c-mnist", "--n-examples", "64", "--seeds", "0",
       "--eps", "40/255", "--batch-size", "16", "--quiet"]


def outcomes(path):
    with ResultsStore(path) as store:
        frame = store.outcomes_frame()
    keep = ["model", "seed", "attack", "eps_key", "example_index", "correct", "firing_rate"]
    return frame[keep].sort_values(keep[:5]).reset_index(drop=True)


def run(command, tmp_path, name, data_root):
    environment = dict(os.environ, OMP_NUM_THREADS="1", HTDA_BENCH_DATA=str(data_root))
    arguments = [*RUN, "--out", str(tmp_path / f"{name}.sqlite"), "--leaderboards", str(tmp_path / name)]
    result = subprocess.run([*command, "-m", "htda_bench", *arguments], capture_output=True, text=True,
                            env=environment, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_two_process_torchrun_equals_one_process(data_root, tmp_path):
    run([sys.executable], tmp_path, "single", data_root)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"]
    run(torchrun, tmp_path, "sharded", data_root)
    single, sharded = outcomes(tmp_path / "single.sqlite"), outcomes(tmp_path / "sharded.sqlite")
    assert len(single) == 128  # 64 clean + 64 attacked
    pd.testing.assert_frame_equal(single, sharded)
    first = pd.read_csv(tmp_path / "single" / "pgd-mnist.csv").drop(columns=["date"])
    second = pd.read_csv(tmp_path / "sharded" / "pgd-mnist.csv").drop(columns=["date"])
    pd.testing.assert_frame_equal(first, second)


def test_merging_overlapping_stores_equals_one_combined_store(tmp_path):
    from htda_bench.store import OutcomeKey

    def key(seed):
        return OutcomeKey("pgd-mnist", "1", "m", "w" * 64, "f" * 64, seed, "pgd", 40 / 255)

    with ResultsStore(tmp_path / "a.sqlite") as a, ResultsStore(tmp_path / "b.sqlite") as b, \
            ResultsStore(tmp_path / "all.sqlite") as combined:
        a.add_outcomes(key(0), range(0, 40), [i % 3 == 0 for i in range(40)])
        b.add_outcomes(key(0), range(20, 64), [i % 3 == 0 for i in range(20, 64)])
        b.add_outcomes(key(1), range(0, 64), [True] * 64)
        combined.add_outcomes(key(0), range(0, 64), [i % 3 == 0 for i in range(64)])
        combined.add_outcomes(key(1), range(0, 64), [True] * 64)
    merge_stores([tmp_path / "a.sqlite", tmp_path / "b.sqlite"], tmp_path / "merged.sqlite")
    merged, expected = outcomes(tmp_path / "merged.sqlite"), outcomes(tmp_path / "all.sqlite")
    assert not merged.duplicated(["seed", "attack", "eps_key", "example_index"]).any()
    pd.testing.assert_frame_equal(merged, expected)
