"""Evaluation-time speed-ups that leave every reported number unchanged, and the switch for them.

The harness calls ``for_evaluation`` on each model it attacks. Each speed-up is measured in
``benchmarks/bench_eval.py`` (docs/PERFORMANCE.md):
- the fused multi-step LIF kernel (``fused_lif.py``), run through ``torch.compile``: bit-identical
  spikes and, in float32, bit-identical input gradients (tests/models/test_speed.py);
- the encoder's convolution of a static image computed once per attention window, not per step;
- no parameter gradients: attacks need the input gradient only.
``fold_batchnorm`` is measured too but off by default: the folded convolution rounds differently
(currents agree within 1e-6), and a membrane potential that lands exactly on the threshold then
flips a spike, so HTDA's logits can change (0.07 on the first 200 MNIST test images).
Models that are not ``SpikingVGG`` (user submissions) pass through with parameter gradients off.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .lif import PaperLIF
from .spiking_vgg import SpikingVGG


def set_fast_paths(model: nn.Module, enabled: bool, kernel: str = "fused") -> nn.Module:
    """Switch the fused LIF kernel (``kernel``: "fused" or "compiled") and the once-per-window
    encoder on, or both off (SpikingJelly's step loop, encoder conv per step), in place."""
    for module in model.modules():
        if isinstance(module, PaperLIF):
            module.kernel = kernel if enabled else "spikingjelly"
        if isinstance(module, SpikingVGG):
            module.encoder_once = enabled
    return model


@torch.no_grad()
def fold_batchnorm(model: SpikingVGG) -> SpikingVGG:
    """A copy of ``model`` in eval mode whose convolutions absorb their BatchNorm (eval statistics).

    conv(x) then BN  =  (W * g/sqrt(var+eps)) x + (beta - mean * g/sqrt(var+eps))
    """
    folded = copy.deepcopy(model).eval()
    for index, (conv, norm) in enumerate(zip(folded.convs, folded.norms)):
        if isinstance(norm, nn.Identity):
            continue
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                          bias=True).to(conv.weight)
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
        fused.bias.copy_((bias - norm.running_mean) * scale + norm.bias)
        folded.convs[index] = fused
        folded.norms[index] = nn.Identity()
    return folded


def for_evaluation(model: nn.Module, optimise: bool = True, fold_bn: bool = False,
                   kernel: str = "compiled") -> nn.Module:
    """The model the harness attacks: eval mode, no parameter gradients, and (``optimise``) the
    speed-ups above; ``optimise=False`` gives the plain path the benchmarks and tests compare to."""
    model = model.eval()
    if isinstance(model, SpikingVGG) and fold_bn:
        model = fold_batchnorm(model)
    if isinstance(model, SpikingVGG):
        set_fast_paths(model, optimise, kernel)
    return model.requires_grad_(False)
