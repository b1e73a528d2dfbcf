"""Reliable suites: adaptive attacks, the per-example worst case and the reliability flags.

Everything runs on tiny purpose-built models and synthetic data (4 classes, 1x8x8 binary images
with one bright quadrant), so no dataset or zoo checkpoint is needed: a small conv net trained here
for 60 steps is the well-behaved model; wrappers around it break one property each.
"""

import argparse
import io
import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from rich.console import Console
from torch import nn

from htda_bench.attacks import ATTACKS, build_attack, check_adversarial
from htda_bench.attacks.adaptive import (BPDA_BACKWARD_TEMPERATURE, ensure_registered, spiking_neurons,
                                         straight_through_attention, surrogate_factory, swapped_surrogate,
                                         transfer_source)
from htda_bench.cli import reliable_cmd
from htda_bench.data import Split
from htda_bench.errors import ConfigError
from htda_bench.harness import state_dict_sha256
from htda_bench.harness.runner import Target
from htda_bench.models import PaperLIF, create_model
from htda_bench.reliability import (FLAG_NAMES, ReliableSuite, Thresholds, counterpart_name, load_reliable_suite,
                                    reliable_suite_names, run_reliable)
from htda_bench.reliability.checks import check_worst_case, worst_case_accuracy
from htda_bench.suites import AttackSpec, Suite, list_suites

N_CLASSES = 4


# -- synthetic task and models ----------------------------------------------------------------------
def quadrant_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [n,1,8,8]: class c lights quadrant c, 10% of pixels flipped; balanced labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % N_CLASSES)[torch.randperm(n, generator=generator)]
    images = torch.zeros(n, 1, 8, 8)
    for i, label in enumerate(labels.tolist()):
        row, col = divmod(label, 2)
        images[i, 0, 4 * row:4 * row + 4, 4 * col:4 * col + 4] = 1
    flips = torch.rand(images.shape, generator=generator) < 0.1
    return (torch.where(flips, 1 - images, images) * 255).to(torch.uint8), labels


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, N_CLASSES)

    def forward(self, x):
        return self.fc(F.avg_pool2d(F.relu(self.conv(x)), 2).flatten(1))  # no spiking_layers(): the runner adds one


def train_small_net(seed: int) -> SmallNet:
    torch.manual_seed(seed)
    model = SmallNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    images, labels = quadrant_data(512, 100 + seed)
    images = images.float() / 255
    for _ in range(60):
        batch = torch.randint(0, len(labels), (64,))
        loss = F.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


class Wrapper(nn.Module):
    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base

    def spiking_layers(self):
        return []


class GradientBlocked(Wrapper):
    """The input is detached before the classifier: every input gradient is exactly zero."""

    def forward(self, x):
        return self.base(x.detach()) + 0.0 * x.flatten(1).sum(1, keepdim=True)  # keeps the graph connected


class NoiseDetector(Wrapper):
    """Wrong on clean (binary) images, right as soon as a pixel is off {0, 1}: accuracy rises with eps."""

    def forward(self, x):
        logits = self.base(x)
        perturbed = torch.minimum(x, 1 - x).flatten(1).amax(1) > 1e-4
        return torch.where(perturbed[:, None], logits, logits.roll(1, dims=1))


class Noisy(Wrapper):
    """Random logit noise: not a function of its input."""

    def forward(self, x):
        return self.base(x) + 1e-3 * torch.randn(x.shape[0], N_CLASSES)


@pytest.fixture(scope="module")
def small_nets():
    return train_small_net(0), train_small_net(1)  # (well-behaved model, transfer source)


@pytest.fixture(scope="module")
def split():
    images, labels = quadrant_data(32, 7)
    return Split("mnist", "test", images, labels, "synthetic-quadrants", "test")


def tiny_suite(**changes) -> ReliableSuite:
    attacks = (AttackSpec("pgd", steps=10), AttackSpec("pgd50", steps=50), AttackSpec("apgd-ce", steps=20),
               AttackSpec("apgd-dlr", steps=20), AttackSpec("square", steps=300), AttackSpec("transfer", steps=10))
    suite = Suite(name="reliable-test", protocol_version="1", dataset="mnist", models=("*",), attacks=attacks,
                  eps=(0.15, 0.4), seeds=(0,), n_examples=32, batch_size=32)
    suite = Suite(**{**{f: getattr(suite, f) for f in suite.__dataclass_fields__}, **changes})
    return ReliableSuite(suite, large_eps=0.5, large_eps_attacks=(AttackSpec("pgd", steps=20),))


def evaluate(tmp_path, reliable, name, model, source, split):
    frame = run_reliable(reliable, [Target(name, model, state_dict_sha256(model))], store_path=tmp_path / "s.sqlite",
                         leaderboards_dir=tmp_path / "lb", split=split,
                         sources={name: Target("source", source, state_dict_sha256(source))}, show_progress=False)
    assert len(frame) == 1
    report = json.loads((tmp_path / "lb" / "runs" / reliable.name / f"{name}.json").read_text())["reliability"]
    return frame.iloc[0], report


def render_text(table) -> str:
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def assert_worst_case_below_every_attack(row, report, eps_values):
    for eps_key, worst in report["worst_case"].items():
        for attack, curve in report["per_attack"].items():
            assert worst <= curve[eps_key] + 1e-9, (attack, eps_key)
    for eps in eps_values:
        label = f"{eps * 255:.4f}".rstrip("0").rstrip(".")
        attack_columns = [c for c in row.index if c.endswith(f"_acc_eps{label}") and not c.startswith("surrogate")]
        assert attack_columns
        assert row[f"robust_acc_eps{label}_mean"] <= min(row[c] for c in attack_columns)


# -- suites -----------------------------------------------------------------------------------------
def test_shipped_reliable_suites_load_with_overrides_and_distinct_registered_attacks():
    assert reliable_suite_names() == ["reliable-cifar", "reliable-mnist", "reliable-nmnist"]
    assert {"reliable-mnist", "pgd-mnist"} <= {suite.name for suite in list_suites()}  # plain parser still reads them
    for name in reliable_suite_names():
        reliable = load_reliable_suite(name)
        names = [spec.name for spec in reliable.suite.attacks]
        assert len(names) == len(set(names)) and all(n in ATTACKS for n in names)
        assert {"pgd", "pgd50", "apgd-ce", "apgd-dlr", "square", "bpda", "transfer", "pgd-rect0.5"} <= set(names)
        assert reliable.suite.n_examples == 200 and reliable.suite.seeds == (0,)
        assert {spec.name: spec.steps for spec in reliable.suite.attacks}["square"] == 1000  # query budget
        assert reliable.large_eps == 0.5 and reliable.thresholds == Thresholds()
    raised = load_reliable_suite("reliable-mnist", n_examples=1000, seeds=[0, 1, 2], attacks=["pgd", "square"])
    assert raised.suite.n_examples == 1000 and raised.suite.seeds == (0, 1, 2) and not raised.suite.partial
    assert [spec.name for spec in raised.suite.attacks] == ["pgd", "square"]
    with pytest.raises(ConfigError):
        load_reliable_suite("reliable-mnist", attacks=["autoattack"])
    with pytest.raises(ConfigError):
        load_reliable_suite("pgd-mnist")  # no reliability section
    assert counterpart_name("htda-vgg32c-mnist") == "s-snn-vgg32c-mnist"
    assert counterpart_name("htda-fixedlif-vgg32c-cifar10") == "s-snn-vgg32c-cifar10"
    assert counterpart_name("s-snn-vgg128c-nmnist") == "htda-vgg128c-nmnist"
    assert counterpart_name("htda-vgg32c-mnist-noattn") == "s-snn-vgg32c-mnist"
    assert counterpart_name("my-snn") is None
    assert ensure_registered("pgd-atan3.5") and "pgd-atan3.5" in ATTACKS and not ensure_registered("pgd-foo1")


def test_cli_parses_reliable_options():
    parser = argparse.ArgumentParser()
    reliable_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["reliable", "--suite", "reliable-mnist", "--models", "htda-*", "--n-examples", "500",
                              "--seeds", "0,1", "--eps", "20/255,0.5", "--attacks", "pgd,square", "--quiet"])
    overrides = reliable_cmd.overrides_from_args(args)
    assert overrides["models"] == ["htda-*"] and overrides["n_examples"] == 500 and overrides["seeds"] == [0, 1]
    assert overrides["eps"] == [20 / 255, 0.5] and overrides["attacks"] == ["pgd", "square"]
    assert args.handler is reliable_cmd.reliable_command
    reliable = load_reliable_suite("reliable-mnist", **overrides)
    assert reliable.suite.eps == (20 / 255, 0.5)


# -- forward-preserving patches ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def htda_and_batch():
    torch.manual_seed(0)
    model = create_model("htda", "vgg32c", "mnist", attention_source="layer2").eval()
    return model, torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind,value", [("rect", 0.5), ("rect", 4.0), ("sigmoid", 4.0), ("atan", 2.0)])
def test_surrogate_swap_leaves_htda_forward_bit_identical(htda_and_batch, kind, value):
    model, images = htda_and_batch
    originals = [module.surrogate_function for _, module in spiking_neurons(model)]
    assert len(originals) == 7  # six extractor LIF layers and the classifier's
    with torch.no_grad():
        before = model(images)
        with swapped_surrogate(model, surrogate_factory(kind, value)) as swapped:
            assert len(swapped) == 7
            assert all(type(m.surrogate_function) is not surrogate.Rect or m.surrogate_function.alpha == 1 / value
                       for _, m in spiking_neurons(model))
            during = model(images)
        after = model(images)
    assert torch.equal(before, during) and torch.equal(before, after)
    assert all(m.surrogate_function is o for (_, m), o in zip(spiking_neurons(model), originals))


class TinySNN(nn.Module):
    """SpikingJelly LIFNode (BaseNode) and PaperLIF (SimpleBaseNode) on a 1x8x8 input, T = 4."""

    def __init__(self):
        super().__init__()
        self.conv = layer.Conv2d(1, 4, 3, padding=1)
        self.lif1 = neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), step_mode="m")
        self.fc = layer.Linear(4 * 8 * 8, N_CLASSES)
        self.lif2 = PaperLIF()
        functional.set_step_mode(self, "m")

    def forward(self, x):
        functional.reset_net(self)
        x_seq = (3 * x).unsqueeze(0).repeat(4, 1, 1, 1, 1)
        hidden = self.lif1(self.conv(x_seq)).flatten(2)
        return (self.fc(hidden) + self.lif2(self.fc(hidden))).mean(0)


def test_surrogate_swap_changes_only_the_backward_and_restores_on_error():
    torch.manual_seed(0)
    model = TinySNN().eval()
    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2, 3])

    def logits_and_gradient():
        x = images.clone().requires_grad_(True)
        logits = model(x)
        return logits.detach(), torch.autograd.grad(F.cross_entropy(logits, labels), x)[0]

    logits, gradient = logits_and_gradient()
    assert gradient.abs().max() > 0
    with swapped_surrogate(model, surrogate_factory("sigmoid", 16.0)) as swapped:
        assert sorted(swapped) == ["lif1", "lif2"]
        swapped_logits, swapped_gradient = logits_and_gradient()
    assert torch.equal(logits, swapped_logits) and not torch.equal(gradient, swapped_gradient)
    with pytest.raises(RuntimeError):
        with swapped_surrogate(model, surrogate_factory("rect", 2.0)):
            raise RuntimeError("attack failed")
    assert type(model.lif1.surrogate_function) is surrogate.ATan and type(model.lif2.surrogate_function) is surrogate.Rect
    assert torch.equal(logits_and_gradient()[1], gradient)


def test_bpda_patch_keeps_htda_forward_and_uses_the_temperature_one_slope(htda_and_batch):
    model, images = htda_and_batch
    assert float(model.temperature) == 6.0
    with torch.no_grad():
        before = model(images)
        with straight_through_attention(model) as patched:
            assert patched == 1
            during = model(images)
        after = model(images)
    assert torch.equal(before, during) and torch.equal(before, after)
    assert "forward" not in model.attention.__dict__
    # the map's backward: slope of sigmoid(1 * z) instead of sigmoid(6 * z)
    features = torch.rand(2, 32, 16, 16, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    weights = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(4))
    sharp = torch.autograd.grad((model.attention(features, model.temperature) * weights).sum(), features)[0]
    with straight_through_attention(model):
        straight_map = model.attention(features, model.temperature)
        straight = torch.autograd.grad((straight_map * weights).sum(), features)[0]
    logits = model.attention.body(features)
    z = F.layer_norm(logits, logits.shape[-3:])
    soft = torch.sigmoid(BPDA_BACKWARD_TEMPERATURE * z)
    expected = torch.autograd.grad((soft * weights).sum(), features)[0]
    assert torch.equal(straight_map.detach(), model.attention(features, model.temperature).detach())
    assert torch.allclose(straight, expected, rtol=1e-4, atol=1e-7) and not torch.allclose(straight, sharp)


# -- the torchattacks wrappers and the transfer attack ----------------------------------------------
class FramesNet(nn.Module):
    """Event frames [B, T=3, C=2, 8, 8] -> 4 logits (exercises the 5-D path of APGD and Square)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 2 * 8 * 8, N_CLASSES)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("name,steps", [("apgd-ce", 5), ("apgd-dlr", 5), ("square", 50)])
def test_torchattacks_wrappers_are_valid_seeded_per_batch_and_leave_the_global_rng(name, steps):
    torch.manual_seed(0)
    model = FramesNet().eval()
    images = torch.rand(6, 3, 2, 8, 8, generator=torch.Generator().manual_seed(5))
    labels = model(images).argmax(1)  # all correct when clean, so every example is attacked
    indices = torch.arange(10, 16)
    attack = build_attack(name, model, eps=0.1, seed=3, steps=steps)
    state = torch.random.get_rng_state()
    first = attack(images, labels, indices)
    assert torch.equal(torch.random.get_rng_state(), state)
    check_adversarial(images, first, 0.1)
    assert torch.equal(first, attack(images, labels, indices))  # same batch, same seed: same result
    assert (first - images).abs().max() > 0
    if name == "square":
        assert attack.n_queries == 50
        with pytest.raises(ConfigError):
            build_attack("square", model, eps=0.1, seed=0, steps=10, step_size=0.01)
    else:
        assert attack.steps == 5


def test_transfer_crafts_on_the_source_with_pgd_random_starts(small_nets):
    target, source = small_nets
    images, labels = quadrant_data(8, 11)
    images, indices = images.float() / 255, torch.arange(8)
    with pytest.raises(ConfigError):
        build_attack("transfer", target, eps=0.2, seed=0)
    with transfer_source(target, source):
        adversarial = build_attack("transfer", target, eps=0.2, seed=4, steps=5)(images, labels, indices)
    crafted_on_source = build_attack("pgd", source, eps=0.2, seed=4, steps=5)(images, labels, indices)
    assert torch.equal(adversarial, crafted_on_source)
    with pytest.raises(ConfigError):  # the source registration ended with the block
        build_attack("transfer", target, eps=0.2, seed=0)
    with pytest.raises(ConfigError):
        build_attack("bpda", target, eps=0.2, seed=0)  # no attention generator


# -- the flags --------------------------------------------------------------------------------------
def test_well_behaved_model_raises_no_flag_and_worst_case_is_below_every_attack(small_nets, split, tmp_path):
    good, source = small_nets
    reliable = tiny_suite()
    row, report = evaluate(tmp_path, reliable, "good", good, source, split)
    assert row["clean_acc_mean"] == 100.0
    assert row["flags_failed"] == "" or pd.isna(row["flags_failed"])
    assert [flag["name"] for flag in report["flags"]] == list(FLAG_NAMES)
    for flag in report["flags"]:
        assert flag["pass"] is True and set(flag) >= {"name", "value", "threshold", "pass"}
    assert all(row[f"flag_{name}"] == "pass" for name in FLAG_NAMES)
    assert_worst_case_below_every_attack(row, report, reliable.suite.eps)
    assert row["robust_acc_eps102_mean"] < row["pgd_acc_eps102"]  # the adaptive attacks find more than PGD
    assert row["zero_grad_share"] == 0.0 and row["determinism_gap"] == 0.0 and row["large_eps_acc"] <= 30.0
    assert row["transfer_source"] == "source" and row["attacks"] == "pgd,pgd50,apgd-ce,apgd-dlr,square,transfer"
    table = pd.read_csv(tmp_path / "lb" / "reliable-test.csv")
    assert {"square_acc_eps102", "apgd_dlr_acc_eps102", "flags_failed", "flag_black_box_gap"} <= set(table.columns)
    text = render_text(reliable_cmd.render(table, reliable.suite))
    assert "good" in text and "none" in text  # the CLI table: worst case, paper PGD, flags
    again, _ = evaluate(tmp_path, reliable, "good", good, source, split)  # resumed from the store: same row
    pd.testing.assert_series_equal(again.drop("date"), row.drop("date"))


@pytest.mark.parametrize("wrapper,expected", [
    (GradientBlocked, {"zero_gradient", "large_eps_chance", "black_box_gap"}),
    (NoiseDetector, {"monotone_eps"}),
    (Noisy, {"deterministic"}),
])
def test_each_flag_fires_on_a_model_that_violates_it(small_nets, split, tmp_path, wrapper, expected):
    good, source = small_nets
    reliable = tiny_suite()
    torch.manual_seed(0)
    row, report = evaluate(tmp_path, reliable, wrapper.__name__, wrapper(good), source, split)
    assert set(row["flags_failed"].split(",")) == expected
    flags = {flag["name"]: flag for flag in report["flags"]}
    for name in expected:
        assert flags[name]["pass"] is False and row[f"flag_{name}"] == "fail"
        assert flags[name]["value"] is None or flags[name]["value"] > flags[name]["threshold"]
    assert flags["worst_case_consistent"]["pass"] is True
    assert_worst_case_below_every_attack(row, report, reliable.suite.eps)
    if wrapper is GradientBlocked:
        assert row["zero_grad_share"] == 100.0 and row["large_eps_acc"] == 100.0
        white = min(row[f"{a}_acc_eps102"] for a in ("pgd", "pgd50", "apgd_ce", "apgd_dlr"))
        assert row["square_acc_eps102"] < white - 0.5  # the gradient-free attack alone beats every white-box one
    if wrapper is NoiseDetector:
        assert row["clean_acc_mean"] == 0.0 and row["pgd_acc_eps38.25"] > 50.0
    # a failing model keeps its row
    table = pd.read_csv(tmp_path / "lb" / "reliable-test.csv")
    assert list(table["model"]) == [wrapper.__name__]


def test_convergence_flag_fires_when_ten_pgd_steps_are_not_enough(small_nets, split, tmp_path):
    good, source = small_nets
    tiny_step = (AttackSpec("pgd", steps=10, step_size=0.005), AttackSpec("pgd50", steps=50, step_size=0.005))
    reliable = tiny_suite(attacks=tiny_step, eps=(0.4,))
    row, report = evaluate(tmp_path, reliable, "good-small-step", good, source, split)
    flag = {flag["name"]: flag for flag in report["flags"]}["pgd_converged"]
    assert flag["pass"] is False and flag["value"] > 1.0 and "pgd_converged" in row["flags_failed"]
    assert row["pgd_acc_eps102"] - row["pgd50_acc_eps102"] == pytest.approx(flag["value"], abs=0.01)
    assert row["flag_black_box_gap"] == "n/a"  # no black-box attack in this suite: not a failure


def test_worst_case_check_fires_on_a_report_that_is_not_the_per_example_minimum():
    rows = pd.DataFrame({"seed": 0, "eps": 0.1, "example_index": [0, 1, 0, 1],
                         "attack": ["a", "a", "b", "b"], "correct": [1, 0, 0, 1]})
    per_attack = {"a": {0.1: 50.0}, "b": {0.1: 50.0}}
    assert worst_case_accuracy(rows, ["a", "b"]) == {0.1: 0.0}
    assert check_worst_case({0.1: 0.0}, rows, ["a", "b"], per_attack, 0.0).passed is True
    wrong = check_worst_case({0.1: 50.0}, rows, ["a", "b"], per_attack, 0.0)  # min of accuracies, not per example
    assert wrong.passed is False and wrong.value == 50.0


def test_htda_pipeline_runs_bpda_surrogate_swap_and_transfer_both_ways(tmp_path):
    torch.manual_seed(0)
    htda = create_model("htda", "vgg32c", "mnist", attention_source="layer2").eval()
    s_snn = create_model("s-snn", "vgg32c", "mnist").eval()
    images = torch.randint(0, 256, (2, 1, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    split = Split("mnist", "test", images, torch.tensor([0, 1]), "synthetic", "test")
    attacks = (AttackSpec("pgd", steps=2), AttackSpec("pgd-sigmoid4", steps=2), AttackSpec("bpda", steps=2),
               AttackSpec("transfer", steps=2), AttackSpec("square", steps=5))
    suite = Suite(name="reliable-tiny", protocol_version="1", dataset="mnist", models=("*",), attacks=attacks,
                  eps=(0.1,), seeds=(0,), n_examples=2, batch_size=2)
    reliable = ReliableSuite(suite, large_eps_attacks=(AttackSpec("pgd", steps=2),), determinism_examples=2)
    pairs = {"htda-vgg32c-mnist": htda, "s-snn-vgg32c-mnist": s_snn}
    targets = [Target(name, model, state_dict_sha256(model)) for name, model in pairs.items()]
    sources = {target.name: next(t for t in targets if t.name != target.name) for target in targets}
    frame = run_reliable(reliable, targets, store_path=tmp_path / "s.sqlite", leaderboards_dir=tmp_path / "lb",
                         split=split, sources=sources, show_progress=False).set_index("model")
    assert frame.loc["htda-vgg32c-mnist", "attacks"] == "pgd,pgd-sigmoid4,bpda,transfer,square"
    assert frame.loc["htda-vgg32c-mnist", "transfer_source"] == "s-snn-vgg32c-mnist"
    assert frame.loc["s-snn-vgg32c-mnist", "not_applicable"] == "bpda"
    assert frame.loc["s-snn-vgg32c-mnist", "transfer_source"] == "htda-vgg32c-mnist"
    assert (frame["flag_worst_case_consistent"] == "pass").all() and (frame["flag_deterministic"] == "pass").all()
    assert "surrogate_min_acc_eps25.5" in frame.columns
    other = create_model("s-snn", "vgg32c", "mnist")
    with pytest.raises(ConfigError, match="transfer results"):  # stored transfer outcomes came from another source
        run_reliable(reliable, targets[:1], store_path=tmp_path / "s.sqlite", leaderboards_dir=None, split=split,
                     sources={targets[0].name: Target("other", other, state_dict_sha256(other))}, show_progress=False)
