"""The model contract, for every registered family (a loop like timm's model tests)."""

import pytest
import torch

from htda_bench.errors import ConfigError
from htda_bench.metrics.attention import attention_stats
from htda_bench.models import create_model, list_families
from htda_bench.models.lif import PaperLIF

torch.manual_seed(0)


def small_model(family, dataset="mnist", **options):
    """VGG-32c at its real size, BatchNorm statistics calibrated on random inputs so that spikes
    reach every layer (a fresh BatchNorm's unit running variance silences an untrained SNN)."""
    torch.manual_seed(0)
    model = create_model(family, "vgg32c", dataset, **options)
    shape = (16, 10, 2, 32, 32) if model.config.dynamic_input else (16, model.config.in_channels, 32, 32)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average
    with torch.no_grad():
        for _ in range(3):
            model.train()(torch.rand(shape).round() if model.config.dynamic_input else torch.rand(shape))
    return model.eval()


@pytest.mark.parametrize("family", list_families())
def test_every_family_meets_the_model_contract(family):
    model = small_model(family)
    x = torch.rand(4, 1, 32, 32, requires_grad=True)
    first = model(x)
    second = model(x)
    assert first.shape == (4, 10) and torch.isfinite(first).all()
    assert torch.equal(first, second), "state must be reset at every call"
    first.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, "gradient must reach the input pixels"


def test_event_frame_models_take_five_dimensional_input():
    model = small_model("htda", "nmnist")
    frames = (torch.rand(2, 10, 2, 32, 32) > 0.9).float()
    logits = model(frames)
    assert logits.shape == (2, 10)
    # a new map every T_f = 2 steps from the previous window: M0 plus 4 computed maps
    assert len(model.last_attention_maps) == 5


def test_s_snn_lif_parameters_get_no_gradient_htda_ones_do():
    for family, learnable in (("s-snn", False), ("htda", True)):
        model = small_model(family).train()
        model(torch.rand(4, 1, 32, 32)).sum().backward()
        lifs = [m for m in model.modules() if isinstance(m, PaperLIF)]
        assert len(lifs) == 7  # six extractor layers and the classifier's hidden layer
        for lif in lifs:
            if learnable:
                assert lif.decay_logit.grad is not None and lif.threshold_raw.grad is not None
                assert lif.threshold_raw.grad.abs() > 0
            else:
                assert not lif.decay_logit.requires_grad and not lif.threshold_raw.requires_grad


def test_attention_starts_with_ones_then_a_map_in_unit_interval_of_input_size():
    model = small_model("htda")
    model(torch.rand(3, 1, 32, 32))
    assert len(model.last_attention_maps) == 2
    m0, m = model.last_attention_maps
    assert torch.equal(m0, torch.ones(3, 1, 32, 32))
    assert m.shape == (3, 1, 32, 32)
    # sigmoid(Te * LN) lies in (0, 1); float32 rounds its far tails to exactly 0 or 1
    assert (m >= 0).all() and (m <= 1).all()
    assert ((m > 0.01) & (m < 0.99)).any()


def test_attention_on_encoder_and_middle_layers_changes_the_output():
    x = torch.rand(2, 1, 32, 32)
    encoder_only = small_model("htda")
    middle = small_model("htda-middle")
    middle.load_state_dict(encoder_only.state_dict())
    assert not torch.equal(encoder_only(x), middle(x))


def test_gradient_of_htda_goes_through_the_feedback_loop():
    """Detaching the attention path changes the input gradient."""
    model = small_model("htda")
    x = torch.rand(2, 1, 32, 32)
    full_input = x.clone().requires_grad_(True)
    model(full_input).sum().backward()

    original = model._attention_map
    model._attention_map = lambda *args: original(*args).detach()
    detached_input = x.clone().requires_grad_(True)
    model(detached_input).sum().backward()
    model._attention_map = original
    assert not torch.allclose(full_input.grad, detached_input.grad)


class ConstantAttention(torch.nn.Module):
    """An attention generator that ignores its input (the failure the stats must catch)."""

    def __init__(self, pattern):
        super().__init__()
        self.pattern = pattern

    def forward(self, features, temperature):
        return self.pattern.expand(features.shape[0], 1, 32, 32)


def test_attention_stats_tells_input_independent_from_input_dependent(mnist_test):
    images = mnist_test.as_float(slice(0, 64))
    model = small_model("htda")
    grid = torch.zeros(1, 1, 32, 32)
    grid[..., ::4, ::4] = 1.0
    model.attention = ConstantAttention(grid * 0.9 + 0.05)
    fixed = attention_stats(model, images)
    assert fixed["pixel_std"] < 1e-6

    class FollowsInput(torch.nn.Module):  # a map that is the digit itself
        def forward(self, features, temperature):
            return images[: features.shape[0]].clamp(0.05, 0.95)

    model.attention = FollowsInput()
    following = attention_stats(model, images, batch_size=64)
    assert following["pixel_std"] > 0.05
    assert following["object_background_ratio"] > 2 * fixed["object_background_ratio"]


def test_zoo_names_put_the_variant_last():
    from htda_bench.models.registry import zoo_name

    assert zoo_name("htda", "vgg32c", "mnist") == "htda-vgg32c-mnist"
    assert zoo_name("s-snn", "vgg64c", "cifar10") == "s-snn-vgg64c-cifar10"
    assert zoo_name("htda-fixedlif", "vgg32c", "mnist") == "htda-vgg32c-mnist-fixedlif"
    names = {zoo_name(family, "vgg32c", "mnist") for family in list_families()}
    assert len(names) == len(list_families())  # one zoo name per family


def _running_stats_from_first_window(model):
    for index, norm in enumerate(model.norms):
        mean, var = model._first_window_stats[index]
        norm.running_mean.copy_(mean)
        norm.running_var.copy_(var)


def test_first_window_norm_makes_training_match_eval():
    """With window_norm "first-window", a training-mode pass equals an eval-mode pass once the running
    statistics are the first window's batch statistics: the masked window uses no statistics of its
    own (per-window statistics gave 5 points between the two on the first CIFAR-10 HTDA run)."""
    x = torch.rand(16, 1, 32, 32)
    model = small_model("htda", window_norm="first-window")
    with torch.no_grad():
        training_logits = model.train()(x)
        training_map = model.computed_attention_maps[0]
        _running_stats_from_first_window(model)
        assert torch.equal(model.eval()(x), training_logits)
        assert torch.equal(model.computed_attention_maps[0], training_map)


def test_first_window_norm_lets_a_dimming_map_reduce_spikes():
    """A map that halves the input everywhere leaves BatchNorm'd currents unchanged with per-window
    statistics but halves their spread (per channel) with first-window ones."""
    x = torch.rand(16, 1, 32, 32)
    currents = {}
    for window_norm in ("per-window", "first-window"):
        model = small_model("htda", window_norm=window_norm).train()
        model._first_window_stats = {}
        conv = model.convs[0]
        with torch.no_grad():
            full = model._norm(0, conv(model._normalise(x)), first_window=True)
            dimmed = model._norm(0, conv(model._normalise(x) * 0.5), first_window=False)
        currents[window_norm] = (full.std((0, 2, 3)).mean().item(), dimmed.std((0, 2, 3)).mean().item())
    assert abs(currents["per-window"][1] - currents["per-window"][0]) < 0.01 * currents["per-window"][0]
    assert currents["first-window"][1] == pytest.approx(0.5 * currents["first-window"][0], rel=0.01)


def test_attended_decoder_ignores_the_unmasked_window():
    """With decoder_steps "attended" the logits depend on the readouts of the masked steps only, so
    the classification has to pass through the map; with "all" (the paper) the unmasked first window
    enters the logits too."""
    x = torch.rand(4, 1, 32, 32)
    for decoder_steps in ("all", "attended"):
        model = small_model("htda", decoder_steps=decoder_steps)
        window = model.config.attention_window
        expected_inputs = (model.config.time_steps - (window if decoder_steps == "attended" else 0)) * 10
        assert model.decoder.in_features == expected_inputs
        with torch.no_grad():
            clean = model(x)
            # readouts are [K*B, classes] (time folded into the batch): shift the first window's
            handle = model.readout.register_forward_hook(
                lambda module, inputs, output: torch.cat([output[: window * 4] + 100.0, output[window * 4 :]]))
            shifted = model(x)
            handle.remove()
        assert torch.equal(clean, shifted) == (decoder_steps == "attended")


def test_attended_decoder_needs_attention():
    with pytest.raises(ConfigError, match="needs attention"):
        create_model("s-snn", "vgg32c", "mnist", decoder_steps="attended")


def test_pixel_space_mask_equals_masking_the_raw_image():
    """mask_space "pixels": the encoder sees normalise(x * M), so a map of zeros gives a black image
    and a map of ones the image itself; "normalised" multiplies normalise(x) instead."""
    x = torch.rand(2, 3, 32, 32)
    mask = torch.rand(2, 1, 32, 32)
    seen = {}
    for space in ("normalised", "pixels"):
        model = create_model("htda", "vgg32c", "cifar10", mask_space=space).eval()
        captured = []
        handle = model.convs[0].register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
        with torch.no_grad():
            model._extract(model._normalise(x), 4, mask, first_window=False)
        handle.remove()
        seen[space] = captured[0]
    torch.testing.assert_close(seen["pixels"], model._normalise(x * mask))
    torch.testing.assert_close(seen["normalised"], model._normalise(x) * mask)
    assert not torch.allclose(seen["pixels"], seen["normalised"])
