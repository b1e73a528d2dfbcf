"""The speed paths change no number: fused LIF kernel, BatchNorm folding, the harness's fast path."""

import pytest
import torch
from spikingjelly.activation_based import functional

from htda_bench.attacks.gradient import PGD
from htda_bench.models import PaperLIF, create_model
from htda_bench.models.speed import fold_batchnorm, for_evaluation, set_fast_paths


def _pair(learnable: bool):
    fused, plain = PaperLIF(learnable=learnable), PaperLIF(learnable=learnable)
    with torch.no_grad():  # away from the initial values, so every term of the gradient matters
        for lif in (fused, plain):
            lif.decay_logit.add_(0.3)
            lif.threshold_raw.sub_(0.2)
    plain.kernel = "spikingjelly"
    return fused, plain


@pytest.mark.parametrize("kernel", ["fused", "compiled"])
@pytest.mark.parametrize("learnable", [False, True])
def test_fused_lif_matches_spikingjelly_loop_exactly_in_float32(learnable, kernel):
    fused, plain = _pair(learnable)
    fused.kernel = kernel
    torch.manual_seed(0)
    x = (torch.randn(6, 8, 16, 5, 5) * 0.6).requires_grad_(True)
    x_plain = x.detach().clone().requires_grad_(True)
    spikes, spikes_plain = fused(x), plain(x_plain)
    weights = torch.randn_like(spikes)
    (spikes * weights).sum().backward()
    (spikes_plain * weights).sum().backward()
    assert 0 < spikes.mean() < 1
    assert torch.equal(spikes, spikes_plain)
    assert torch.equal(fused.v, plain.v)  # the state SimpleBaseNode leaves after the last step
    assert torch.equal(x.grad, x_plain.grad)
    if learnable:
        assert fused.decay_logit.grad == pytest.approx(plain.decay_logit.grad.item(), rel=1e-4, abs=1e-5)
        assert fused.threshold_raw.grad == pytest.approx(plain.threshold_raw.grad.item(), rel=1e-4, abs=1e-5)


def test_fused_lif_carries_state_and_its_gradient_across_calls():
    """HTDA runs each layer once per attention window, the second call from the first's state."""
    fused, plain = _pair(True)
    torch.manual_seed(2)
    x = (torch.randn(6, 8, 16, 5, 5) * 0.6).requires_grad_(True)
    x_plain = x.detach().clone().requires_grad_(True)
    spikes = torch.cat([fused(x[:2]), fused(x[2:])])
    spikes_plain = torch.cat([plain(x_plain[:2]), plain(x_plain[2:])])
    weights = torch.randn_like(spikes)
    (spikes * weights).sum().backward()
    (spikes_plain * weights).sum().backward()
    assert torch.equal(spikes, spikes_plain)
    assert torch.equal(x.grad, x_plain.grad)
    assert fused.decay_logit.grad == pytest.approx(plain.decay_logit.grad.item(), rel=1e-4, abs=1e-5)


def test_fused_lif_in_bf16_gives_the_same_spikes_and_close_gradients():
    fused, plain = _pair(True)
    torch.manual_seed(1)
    x = (torch.randn(6, 4, 8, 6, 6) * 0.6).bfloat16().requires_grad_(True)
    x_plain = x.detach().clone().requires_grad_(True)
    spikes, spikes_plain = fused(x), plain(x_plain)
    assert spikes.dtype == torch.bfloat16 and torch.equal(spikes, spikes_plain)
    spikes.float().sum().backward()
    spikes_plain.float().sum().backward()
    assert torch.allclose(x.grad.float(), x_plain.grad.float(), atol=0.05)


def test_other_surrogates_fall_back_to_the_spikingjelly_loop():
    from spikingjelly.activation_based import surrogate

    lif = PaperLIF(surrogate_function=surrogate.Sigmoid())
    assert not lif.can_fuse()
    assert PaperLIF().can_fuse()


def test_batchnorm_folding_keeps_logits_within_1e5(mnist_test):
    model = create_model("s-snn", "vgg32c", "mnist")
    torch.manual_seed(0)
    with torch.no_grad():  # non-trivial BN statistics and affine terms
        for norm in model.norms:
            norm.running_mean.uniform_(-0.2, 0.2)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.1, 0.1)
    model.eval()
    folded = fold_batchnorm(model)
    images = mnist_test.as_float(slice(0, 64))
    x = (images - model.mean) / model.std
    for conv, norm, folded_conv in zip(model.convs, model.norms, folded.convs):  # every layer's current
        with torch.no_grad():
            expected = norm(conv(x))
            assert torch.allclose(folded_conv(x), expected, atol=1e-5)
            x = torch.rand_like(expected[:, : conv.out_channels])
    with torch.no_grad():
        assert (folded(images) - model(images)).abs().max() <= 1e-5
    assert all(isinstance(norm, torch.nn.Identity) for norm in folded.norms)
    assert not any(isinstance(norm, torch.nn.Identity) for norm in model.norms)  # a copy


@pytest.mark.parametrize("name", ["s-snn-vgg32c-mnist", "htda-vgg32c-mnist"])
def test_optimised_attack_path_gives_identical_outcomes(name, mnist_test):
    """200 examples, 5-step PGD: the harness's path vs the plain path (SpikingJelly loop, encoder
    conv at every step, parameters requiring gradients); adversarial images and outcomes equal."""
    from htda_bench.zoo import load_model

    fast = for_evaluation(load_model(name), optimise=True)
    plain = set_fast_paths(load_model(name).eval(), False)
    assert not plain.encoder_once and all(lif.kernel == "spikingjelly" for lif in plain.lifs)
    index = torch.arange(200)
    images, labels = mnist_test.as_float(index), mnist_test.labels[index]
    outcomes = {}
    for label, model in (("fast", fast), ("plain", plain)):
        attack = PGD(model, eps=20 / 255, alpha=5 / 255, steps=5, seed=0)
        adversarial = torch.cat([attack(images[i:i + 100], labels[i:i + 100], index[i:i + 100])
                                 for i in (0, 100)])
        functional.reset_net(model)
        with torch.no_grad():
            outcomes[label] = (adversarial, model(adversarial).argmax(1) == labels)
    assert torch.equal(outcomes["fast"][1], outcomes["plain"][1])
    assert torch.equal(outcomes["fast"][0], outcomes["plain"][0])
    assert 0 < outcomes["fast"][1].sum() < 200  # the attack did something, not everything
