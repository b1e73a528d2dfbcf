"""HTDA's attention generator A and the weakly-supervised attention loss L_M (paper Eqs. 3-4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AttentionGenerator(nn.Module):
    """The small ANN that turns time-averaged spikes into a map M = sigmoid(Te * LN(A(F))).

    The paper's A is three transposed convolutions (kernel 4, stride 2, padding 1, ReLU between)
    from the 4x4 extractor output up to the input size. ``n_upsamplings`` is 3 for that source and
    1 when A reads the 16x16 first block instead. LayerNorm has no per-pixel affine parameters, so
    the map cannot learn a fixed per-pixel bias pattern through it.
    """

    def __init__(self, in_channels: int, n_upsamplings: int, upsampler: str = "deconv"):
        super().__init__()
        channels = [in_channels]
        for _ in range(n_upsamplings - 1):
            channels.append(max(channels[-1] // 2, 1))
        channels.append(1)
        layers: list[nn.Module] = []
        for index, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            if upsampler == "deconv":
                layers.append(nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1))
            else:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
                layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
            if index < n_upsamplings - 1:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
        """features: [B, C, h, w] time-averaged spikes -> map M in (0, 1), [B, 1, H, W]."""
        logits = self.body(features)
        normalised = F.layer_norm(logits, logits.shape[-3:])
        return torch.sigmoid(temperature * normalised)


def laplacian_l1(maps: torch.Tensor) -> torch.Tensor:
    """Per-map L1 norm of the discrete Laplacian (replicate padding): 0 for a constant map."""
    kernel = maps.new_tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    padded = F.pad(maps, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kernel).abs().flatten(1).sum(1)


def attention_map_loss(
    maps: torch.Tensor, gamma: float = 0.51, beta: float = 0.40
) -> dict[str, torch.Tensor]:
    """L_M of the paper, averaged over maps: (1/P)[gamma*|M|_1 - beta*|M - mean M|^2 + (1-gamma-beta)*|Lap M|_1].

    Returns the total and each (already weighted) term, so training can log what moves.
    """
    flat = maps.flatten(1)
    pixels = flat.shape[1]
    sparsity = flat.abs().sum(1) / pixels
    variance = (flat - flat.mean(1, keepdim=True)).pow(2).sum(1) / pixels
    smoothness = laplacian_l1(maps) / pixels
    terms = {
        "sparsity": gamma * sparsity.mean(),
        "binarity": -beta * variance.mean(),
        "smoothness": (1.0 - gamma - beta) * smoothness.mean(),
    }
    terms["total"] = terms["sparsity"] + terms["binarity"] + terms["smoothness"]
    return terms
