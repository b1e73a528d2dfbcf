"""Attacks on tiny real models: a linear net and a conv + PaperLIF SNN trained on a separable task."""

import pytest
import torch
import torchattacks
from spikingjelly.activation_based import functional
from torch import nn

from htda_bench.attacks import (
    ATTACKS, FGSM, PGD, AttackValidityError, SeededAttack, build_attack, check_adversarial,
    parse_eps, register_attack, uniform_noise,
)
from htda_bench.errors import ConfigError, HtdaBenchError
from htda_bench.models.lif import PaperLIF

EPS = 0.2


def separable_task(n: int, seed: int = 0):
    """[n,1,8,8] images in [0,1]: class 0 has a brighter left half, class 1 a brighter right half."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = torch.empty(n, 1, 8, 8).uniform_(0.3, 0.7, generator=g)
    images[labels == 0, :, :, :4] += 0.15
    images[labels == 1, :, :, 4:] += 0.15
    return images, labels, torch.arange(n, dtype=torch.long)


class TinySNN(nn.Module):
    """Conv -> learnable PaperLIF over 3 steps -> rate -> linear; state reset at every call."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.lif = PaperLIF(learnable=True)
        self.head = nn.Linear(4 * 8 * 8, 2)
        self.seen_training = []

    def forward(self, x):
        self.seen_training.append(self.training)
        functional.reset_net(self)
        current = self.conv(x).unsqueeze(0).expand(3, -1, -1, -1, -1)
        return self.head(self.lif(current).mean(0).flatten(1))


def train(model, steps=80):
    images, labels, _ = separable_task(256, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model.eval()


def accuracy(model, images, labels):
    with torch.no_grad():
        return (model(images).argmax(1) == labels).float().mean().item()


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    return train(nn.Sequential(nn.Flatten(), nn.Linear(64, 2)))


@pytest.fixture(scope="module")
def snn():
    torch.manual_seed(0)
    return train(TinySNN(), steps=60)


@pytest.mark.parametrize("name", ["pgd", "fgsm"])
def test_eps_zero_returns_clean_images(linear, name):
    images, labels, indices = separable_task(32)
    adv = build_attack(name, linear, eps=0.0, seed=3)(images, labels, indices)
    assert torch.equal(adv, images)


def test_pgd_and_fgsm_lower_accuracy_of_trained_models(linear, snn):
    images, labels, indices = separable_task(128, seed=2)
    for model in (linear, snn):
        clean = accuracy(model, images, labels)
        assert clean >= 0.9
        for name in ("fgsm", "pgd"):
            adv = build_attack(name, model, eps=EPS, seed=0, steps=5 if name == "pgd" else None)(
                images, labels, indices)
            assert accuracy(model, adv, labels) <= clean - 0.5, (type(model).__name__, name)
            assert float((adv - images).abs().max()) <= EPS + 1e-6


def test_same_seed_same_examples_whatever_the_batch_size(snn):
    images, labels, indices = separable_task(64, seed=4)
    attack = PGD(snn, eps=EPS, alpha=0.05, steps=3, seed=11)
    whole = attack(images, labels, indices)
    pieces = torch.cat([attack(images[i:i + 7], labels[i:i + 7], indices[i:i + 7]) for i in range(0, 64, 7)])
    assert torch.equal(whole, pieces)
    assert torch.equal(PGD(snn, eps=EPS, alpha=0.05, steps=3, seed=11)(images, labels, indices), whole)


def test_random_start_depends_on_seed_and_index_only():
    images, _, indices = separable_task(16)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    start = PGD(model, eps=EPS, seed=1).random_init(images, indices)
    assert not torch.equal(start, PGD(model, eps=EPS, seed=2).random_init(images, indices))
    assert torch.equal(start[5:9], PGD(model, eps=EPS, seed=1).random_init(images[5:9], indices[5:9]))
    noise = uniform_noise((1, 8, 8), indices, seed=1, eps=EPS)
    assert noise.shape == (16, 1, 8, 8) and float(noise.abs().max()) <= EPS
    assert not torch.equal(noise[0], noise[1])  # examples get their own streams
    assert not torch.equal(noise, uniform_noise((1, 8, 8), indices, seed=1, eps=EPS, salt=1))
    torch.manual_seed(0)
    first = uniform_noise((3,), indices, seed=1, eps=EPS)
    torch.manual_seed(99)  # the global RNG plays no part
    assert torch.equal(first, uniform_noise((3,), indices, seed=1, eps=EPS))


def test_same_math_as_torchattacks(linear):
    images, labels, indices = separable_task(32, seed=5)
    ours = FGSM(linear, eps=EPS)(images, labels, indices)
    assert torch.equal(ours, torchattacks.FGSM(linear, eps=EPS)(images, labels))
    ours = PGD(linear, eps=EPS, alpha=0.03, steps=4, random_start=False)(images, labels, indices)
    theirs = torchattacks.PGD(linear, eps=EPS, alpha=0.03, steps=4, random_start=False)(images, labels)
    assert torch.equal(ours, theirs)


class BrokenAttack(SeededAttack):
    def forward(self, images, labels, indices):
        return (images + 2 * self.eps).clamp(0, 1)


def test_validity_check_catches_a_broken_attack(linear):
    images, labels, indices = separable_task(8)
    with pytest.raises(AttackValidityError, match=r"L-inf distance 0\.4 exceeds eps 0\.2") as err:
        BrokenAttack("Broken", linear, eps=EPS, seed=0)(images, labels, indices)
    assert isinstance(err.value, HtdaBenchError) and "\n" not in str(err.value)
    with pytest.raises(AttackValidityError, match="non-finite"):
        check_adversarial(images, images.clone().fill_(float("nan")), EPS)
    with pytest.raises(AttackValidityError, match=r"outside \[0, 1\]"):
        check_adversarial(images, images + 1.0, 2.0)
    with pytest.raises(AttackValidityError, match="normalisation belongs inside the model"):
        PGD(linear, eps=EPS)(images - 0.5, labels, indices)
    check_adversarial(images, images, 0.0)


def test_attack_leaves_parameters_and_mode_alone(snn):
    images, labels, indices = separable_task(16)
    flags = [p.requires_grad for p in snn.parameters()]
    snn.train()
    snn.seen_training.clear()
    with torch.no_grad():  # evaluation loops often run under no_grad
        PGD(snn, eps=EPS, alpha=0.05, steps=2, seed=0)(images, labels, indices)
    assert snn.seen_training and not any(snn.seen_training)  # eval during the attack
    assert snn.training  # and the caller's mode afterwards
    snn.eval()
    assert all(p.grad is None for p in snn.parameters())
    assert [p.requires_grad for p in snn.parameters()] == flags


def test_event_frames_shape():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4 * 2 * 5 * 5, 3))
    frames = torch.rand(6, 4, 2, 5, 5)
    adv = PGD(model, eps=0.1, alpha=0.05, steps=2, seed=0)(frames, torch.zeros(6, dtype=torch.long), torch.arange(6))
    assert adv.shape == frames.shape and 0 < float((adv - frames).abs().max()) <= 0.1 + 1e-6


@pytest.mark.parametrize("text,value", [("8/255", 8 / 255), ("0.03", 0.03), ("0", 0.0), (" 1 ", 1.0), ("1/2", 0.5)])
def test_parse_eps_accepts(text, value):
    assert parse_eps(text) == value


@pytest.mark.parametrize("text", ["abc", "", "8/", "8/0", "1/2/3", "-0.1", "1.5", "255/8", "nan", "inf"])
def test_parse_eps_rejects(text):
    with pytest.raises(ConfigError, match="accepted: a number or a fraction in"):
        parse_eps(text)


def test_build_attack_names_and_options(linear):
    with pytest.raises(ConfigError, match="unknown attack 'cw'; known attacks: .*fgsm, pgd"):
        build_attack("cw", linear, eps=EPS, seed=0)
    with pytest.raises(ConfigError, match="steps"):
        build_attack("pgd", linear, eps=EPS, seed=0, steps=0)
    with pytest.raises(ConfigError, match="fgsm takes one step"):
        build_attack("fgsm", linear, eps=EPS, seed=0, steps=10)
    pgd = build_attack("PGD", linear, eps=EPS, seed=5)
    assert isinstance(pgd, PGD) and pgd.seed == 5 and pgd.steps == 10 and pgd.alpha == pytest.approx(2.5 * EPS / 10)
    assert build_attack("pgd", linear, eps=EPS, seed=0, steps=3, step_size=0.01).alpha == 0.01
    assert ATTACKS["fgsm"] is FGSM


def test_register_attack_decorator(linear):
    @register_attack("identity-test")
    class Identity(SeededAttack):
        @classmethod
        def from_options(cls, model, eps, seed, steps, step_size):
            return cls("Identity", model, eps, seed)

        def forward(self, images, labels, indices):
            return images.clone()

    try:
        images, labels, indices = separable_task(4)
        assert torch.equal(build_attack("identity-test", linear, EPS, 0)(images, labels, indices), images)
        with pytest.raises(ValueError, match="registered twice"):
            register_attack("identity-test")(Identity)
    finally:
        ATTACKS.pop("identity-test")
