"""A minimal spiking network for MNIST that follows the htda-bench model contract.

Contract (what ``htda-bench submit`` checks):
  * an ``nn.Module`` taking images in [0, 1], shape [B, 1, 32, 32], returning logits [B, 10];
  * normalisation happens inside the model;
  * neuron state is reset at every forward call (two calls on the same input give the same logits);
  * gradients reach the input (surrogate gradients), so gradient attacks can run.

The static image is repeated over T = 4 time steps and fed to multi-step SpikingJelly layers
(tensors [T, B, ...]); the linear readout is averaged over time.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class MySNN(nn.Module):
    def __init__(self, time_steps: int = 4, n_classes: int = 10):
        super().__init__()
        self.time_steps = time_steps  # reported in the leaderboard entry
        self.features = nn.Sequential(
            layer.Conv2d(1, 8, 3, padding=1, bias=False), layer.BatchNorm2d(8),
            neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True),
            layer.MaxPool2d(2),  # 16 x 16
            layer.Conv2d(8, 16, 3, padding=1, bias=False), layer.BatchNorm2d(16),
            neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True),
            layer.MaxPool2d(2),  # 8 x 8
            layer.Flatten(),
        )
        self.readout = layer.Linear(16 * 8 * 8, n_classes)
        functional.set_step_mode(self, "m")  # every layer takes [T, B, ...]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        functional.reset_net(self)  # fresh membrane potentials for every call
        x = (images - MNIST_MEAN) / MNIST_STD
        x = x.unsqueeze(0).repeat(self.time_steps, 1, 1, 1, 1)  # [T, B, 1, 32, 32]
        return self.readout(self.features(x)).mean(0)  # [B, 10] logits


def build_model() -> nn.Module:
    """The factory ``htda-bench submit --factory build_model`` calls (no arguments)."""
    return MySNN()
