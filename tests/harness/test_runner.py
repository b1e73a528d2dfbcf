"""The harness on a trained zoo model: attacks lower accuracy, results do not depend on batch size
or on interruption, adversarial batches are checked, leaderboards have the documented columns."""

import pandas as pd
import torch
import pytest

from htda_bench.attacks import SeededAttack, register_attack
from htda_bench.attacks.base import ATTACKS, AttackValidityError
from htda_bench.harness import run_targets
from htda_bench.harness.runner import Target
from htda_bench.leaderboard import read_leaderboard
from htda_bench.store import ResultsStore
from htda_bench.suites import load_suite


def mnist_suite(**overrides):
    settings = dict(n_examples=24, seeds=[0], eps=[40 / 255], batch_size=24)
    settings.update(overrides)
    return load_suite("pgd-mnist").with_overrides(**settings)


def outcomes(store_path):
    with ResultsStore(store_path) as store:
        frame = store.outcomes_frame()
    return frame.sort_values(["attack", "eps_key", "seed", "example_index"]).reset_index(drop=True)


def test_pgd_and_fgsm_lower_accuracy_and_eps_zero_does_not(mnist_zoo_model, data_root, tmp_path):
    name, model = mnist_zoo_model
    target = Target(name, model, model.zoo_card["weights_sha256"])
    pgd = run_targets(mnist_suite(eps=[0.0, 60 / 255]), [target], tmp_path / "pgd.sqlite", tmp_path / "lb",
                      data_root, show_progress=False)
    row = pgd.iloc[0]
    assert row["clean_acc_mean"] > 90
    assert row["robust_acc_eps0_mean"] == row["clean_acc_mean"]
    assert row["robust_acc_eps60_mean"] < row["clean_acc_mean"] - 20
    fgsm_suite = load_suite("fgsm-mnist").with_overrides(n_examples=24, seeds=[0], eps=[60 / 255])
    fgsm = run_targets(fgsm_suite, [target], tmp_path / "fgsm.sqlite", None, data_root, show_progress=False)
    assert fgsm.iloc[0]["robust_acc_eps60_mean"] < fgsm.iloc[0]["clean_acc_mean"]
    # PGD is at least as strong as FGSM here
    assert row["robust_acc_eps60_mean"] <= fgsm.iloc[0]["robust_acc_eps60_mean"]


def test_outcomes_do_not_depend_on_batch_size(mnist_zoo_model, data_root, tmp_path):
    name, model = mnist_zoo_model
    target = Target(name, model, model.zoo_card["weights_sha256"])
    for batch, path in ((7, "a.sqlite"), (64, "b.sqlite")):
        run_targets(mnist_suite(batch_size=batch), [target], tmp_path / path, None, data_root, show_progress=False)
    first, second = outcomes(tmp_path / "a.sqlite"), outcomes(tmp_path / "b.sqlite")
    pd.testing.assert_frame_equal(first[["attack", "example_index", "correct"]],
                                  second[["attack", "example_index", "correct"]])


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_to_the_uninterrupted_table(mnist_zoo_model, data_root, tmp_path):
    name, model = mnist_zoo_model
    target = Target(name, model, model.zoo_card["weights_sha256"])
    suite = mnist_suite(batch_size=8)
    whole = run_targets(suite, [target], tmp_path / "whole.sqlite", tmp_path / "lb1", data_root, show_progress=False)

    calls = []

    def stop_after_two_attack_batches(label, last_index):
        calls.append(label)
        if len([c for c in calls if c != "clean"]) == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_targets(suite, [target], tmp_path / "cut.sqlite", tmp_path / "lb2", data_root,
                    show_progress=False, on_batch=stop_after_two_attack_batches)
    partial = outcomes(tmp_path / "cut.sqlite")
    assert 0 < len(partial[partial["attack"] == "pgd"]) < 24
    resumed = run_targets(suite, [target], tmp_path / "cut.sqlite", tmp_path / "lb2", data_root, show_progress=False)
    stable = [c for c in whole.columns if c not in ("date",)]
    pd.testing.assert_frame_equal(whole[stable], resumed[stable])
    finished = outcomes(tmp_path / "cut.sqlite")
    assert not finished.duplicated(["attack", "eps_key", "seed", "example_index"]).any()
    assert (read_leaderboard(tmp_path / "lb2", "pgd-mnist")["model"] == name).any()


def test_broken_attack_is_caught_before_scoring(mnist_zoo_model, data_root, tmp_path):
    name, model = mnist_zoo_model

    @register_attack("too-far")
    class TooFar(SeededAttack):
        def forward(self, images, labels, indices):
            return (images + 2 * self.eps).clamp(0, 1)

        @classmethod
        def from_options(cls, model, eps, seed, steps=None, step_size=None):
            return cls("TooFar", model, eps, seed)

    try:
        suite = mnist_suite().with_overrides()
        import dataclasses

        suite = dataclasses.replace(suite, attacks=(dataclasses.replace(suite.attacks[0], name="too-far"),))
        with pytest.raises(AttackValidityError, match="exceeds eps"):
            run_targets(suite, [Target(name, model, "x")], tmp_path / "s.sqlite", None, data_root,
                        show_progress=False)
    finally:
        ATTACKS.pop("too-far")


def test_leaderboard_csv_has_the_documented_columns(mnist_zoo_model, data_root, tmp_path):
    name, model = mnist_zoo_model
    suite = mnist_suite(eps=[20 / 255, 40 / 255], n_examples=8)
    run_targets(suite, [Target(name, model, model.zoo_card["weights_sha256"])], tmp_path / "s.sqlite",
                tmp_path / "lb", data_root, show_progress=False)
    columns = list(pd.read_csv(tmp_path / "lb" / "pgd-mnist.csv").columns)
    assert columns == ["model", "family", "arch", "clean_acc_mean", "clean_acc_std",
                       "robust_acc_eps20_mean", "robust_acc_eps20_std", "robust_acc_eps40_mean",
                       "robust_acc_eps40_std", "firing_rate_mean", "firing_rate_std", "macs_m", "params_m",
                       "n_examples", "seeds", "dataset_variant", "dataset_fingerprint", "weights_sha256",
                       "protocol_version", "date"]
    row = pd.read_csv(tmp_path / "lb" / "pgd-mnist.csv").iloc[0]
    assert 0 < row["firing_rate_mean"] < 100 and row["macs_m"] > 0 and row["params_m"] > 0.5
    assert (tmp_path / "lb" / "runs" / "pgd-mnist" / f"{name}.json").exists()


class LinearProbe(torch.nn.Module):
    """A seeded linear classifier on pixels (about 10% accurate): many clean failures, real gradients."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(32 * 32, 10)
        self.examples_seen = 0

    def spiking_layers(self):
        return []

    def forward(self, x):
        self.examples_seen += len(x)
        return self.fc(x.flatten(1) - 0.13) * 10


def test_attack_clean_correct_only_skips_clean_failures_under_its_own_protocol(data_root, tmp_path):
    runs = {}
    for option in (False, True):
        model = LinearProbe()
        suite = mnist_suite(n_examples=40, batch_size=40, attack_clean_correct_only=option or None, steps=3)
        run_targets(suite, [Target("probe", model, "0" * 64)], tmp_path / f"{option}.sqlite", tmp_path / "lb",
                    data_root, show_progress=False)
        runs[option] = (suite, outcomes(tmp_path / f"{option}.sqlite"), model.examples_seen)
    plain_suite, plain, plain_seen = runs[False]
    suite, skipping, seen = runs[True]
    assert suite.protocol_version == plain_suite.protocol_version + "+clean-correct-only"
    assert suite.config_hash != plain_suite.config_hash
    assert set(skipping["protocol_version"]) == {suite.protocol_version}
    clean = plain[plain["attack"] == "clean"].set_index("example_index")["correct"]
    wrong = set(clean.index[clean == 0])
    assert 10 < len(wrong) < 40
    attacked = skipping[skipping["attack"] == "pgd"].set_index("example_index")["correct"]
    plain_attacked = plain[plain["attack"] == "pgd"].set_index("example_index")["correct"]
    assert (attacked.loc[sorted(wrong)] == 0).all()  # stored as not robust, not attacked
    right = sorted(set(clean.index) - wrong)
    assert attacked.loc[right].tolist() == plain_attacked.loc[right].tolist()
    assert seen < plain_seen  # the skipped examples never went through an attack
    # the option's leaderboard is its own file: the paper protocol's board is not overwritten
    assert read_leaderboard(tmp_path / "lb", "pgd-mnist")["protocol_version"].tolist() == [plain_suite.protocol_version]
    assert read_leaderboard(tmp_path / "lb", "pgd-mnist+clean-correct-only")["protocol_version"].tolist() == [
        suite.protocol_version]
