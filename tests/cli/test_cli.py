"""The command line: subcommands work, and bad input gives one line and exit code 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args, env=None):
    environment = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "htda_bench", *args], capture_output=True, text=True,
                          env=environment, timeout=600)


def assert_clear_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_data_info_json(data_root):
    result = run_cli("data", "info", "mnist", "--json", "--data-root", str(data_root))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)["datasets"][0]
    assert info["test"]["examples"] == 10000 and info["test"]["shape"] == [1, 32, 32]


def test_train_tiny_budget_writes_weights_and_card(data_root, tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--model", "s-snn", "--dataset", "mnist", "--epochs", "1", "--batch-size", "16",
                     "--train-subset", "32", "--eval-subset", "32", "--out", str(out), "--quiet",
                     "--data-root", str(data_root))
    assert result.returncode == 0, result.stderr
    assert (out / "model.safetensors").exists() and (out / "card.json").exists()


def test_train_on_missing_data_is_a_clear_error(tmp_path):
    result = run_cli("train", "--model", "s-snn", "--dataset", "mnist", "--out", str(tmp_path / "x"),
                     "--data-root", str(tmp_path / "nowhere"), env={"HTDA_BENCH_DATA": ""})
    assert_clear_error(result, "MNIST not found", "MNIST/raw")


def test_bad_recipe_is_a_clear_error(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("family: s-snn\nlearning_speed: 3\n")
    assert_clear_error(run_cli("train", "--recipe", str(recipe), "--out", str(tmp_path / "o")),
                       "unknown settings", "learning_speed")
    assert_clear_error(run_cli("train", "--recipe", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "o")),
                       "does not exist")


@pytest.mark.parametrize("recipe", sorted((Path(__file__).parents[2] / "zoo" / "recipes").glob("*.yaml")),
                         ids=lambda path: path.stem)
def test_shipped_recipes_are_valid(recipe):
    from htda_bench.models import model_config
    from htda_bench.train import TrainConfig

    config = TrainConfig.from_recipe(recipe)
    model_config(config.family, config.arch, config.dataset, **config.model_options)


def test_suites_list_json():
    result = run_cli("suites", "list", "--json")
    assert result.returncode == 0, result.stderr
    names = {suite["name"] for suite in json.loads(result.stdout)}
    assert names >= {"pgd-cifar", "pgd-cifar100", "pgd-mnist", "pgd-nmnist", "fgsm-cifar", "fgsm-mnist"}


def test_run_bad_inputs_are_one_line_errors(tmp_path):
    out = ["--out", str(tmp_path / "s.sqlite"), "--leaderboards", str(tmp_path / "lb")]
    assert_clear_error(run_cli("run", "--suite", "pgd-nowhere", *out), "unknown suite", "pgd-mnist")
    assert_clear_error(run_cli("run", "--suite", "pgd-mnist", "--eps", "2", *out), "outside [0, 1]")
    assert_clear_error(run_cli("run", "--suite", "pgd-mnist", "--eps", "abc", *out), "abc")
    assert_clear_error(run_cli("run", "--suite", "pgd-mnist", "--models", "no-such-*", *out), "no zoo model")
    assert_clear_error(run_cli("run", "--suite", "pgd-mnist", "--n-examples", "4", "--data-root",
                               str(tmp_path / "nowhere"), *out, env={"HTDA_BENCH_DATA": ""}), "MNIST not found")
    assert_clear_error(run_cli("leaderboard", "show", "pgd-nothing", "--leaderboards", str(tmp_path / "lb")),
                       "pgd-nothing")
    assert not (tmp_path / "lb" / "pgd-mnist.csv").exists()


def test_run_writes_leaderboard_and_show_reads_it(data_root, tmp_path):
    lb = tmp_path / "lb"
    result = run_cli("run", "--suite", "pgd-mnist", "--models", "s-snn-*", "--n-examples", "8", "--seeds", "0",
                     "--eps", "40/255", "--out", str(tmp_path / "s.sqlite"), "--leaderboards", str(lb), "--quiet",
                     "--data-root", str(data_root))
    assert result.returncode == 0, result.stderr
    shown = run_cli("leaderboard", "show", "pgd-mnist", "--leaderboards", str(lb), "--json")
    rows = json.loads(shown.stdout)
    assert rows[0]["model"].startswith("s-snn") and rows[0]["n_examples"] == 8


def test_zoo_list_json_and_verify():
    listing = run_cli("zoo", "list", "--json")
    assert listing.returncode == 0 and json.loads(listing.stdout)
    assert run_cli("zoo", "verify").returncode == 0
