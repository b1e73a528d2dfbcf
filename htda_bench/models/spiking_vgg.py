"""The spiking VGG-xc of the paper: S-SNN (no attention) and HTDA (top-down attention loop).

Tensors inside run in SpikingJelly's multi-step layout [T, B, ...]: convolutions see T*B images at
once, and the LIF layers loop over T. Static images are fed directly: the encoding layer's
convolution of an image is the same at every step, so it is computed once per attention window and
broadcast over the window's steps (identical numbers, fewer FLOPs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional
from torch import nn

from .attention import AttentionGenerator
from .config import ModelConfig
from .lif import PaperLIF

POOL_AFTER = (1, 3, 5)  # 0-based conv indices followed by 2x2 max pooling (layers 2, 4, 6)
MIDDLE_TARGETS = (2, 4)  # conv inputs the "encoder+middle" option also multiplies by M


def _seq_apply(module: nn.Module, x_seq: torch.Tensor) -> torch.Tensor:
    """Apply a stateless module to [T, B, ...] by folding time into the batch."""
    steps, batch = x_seq.shape[:2]
    out = module(x_seq.flatten(0, 1))
    return out.view(steps, batch, *out.shape[1:])


class SpikingVGG(nn.Module):
    """Images in [0,1] ([B,C,H,W], or event frames [B,T,C,H,W]) -> logits [B, n_classes].

    Neuron state is reset at the start of every call, so the model is a pure function of its
    input. After a call, ``last_attention_maps`` holds the maps applied to each window (HTDA only,
    [B,1,H,W] each, in time order, the first being M0 = ones; ``computed_attention_maps`` omits
    M0); ``spiking_layers()`` lists the extractor's LIF layers in order, to be
    watched with SpikingJelly's ``monitor.OutputMonitor`` for per-layer, per-step spikes.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        width = config.width
        channels = [width, width, 2 * width, 2 * width, 4 * width, 4 * width]
        in_channels = [config.in_channels] + channels[:-1]
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False) for c_in, c_out in zip(in_channels, channels)
        )
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in channels)
        self.lifs = nn.ModuleList(PaperLIF(learnable=config.learnable_lif) for _ in channels)
        final_size = config.image_size // 8
        self.fc = nn.Linear(channels[-1] * final_size * final_size, config.classifier_hidden)
        self.fc_lif = PaperLIF(learnable=config.learnable_lif)
        self.readout = nn.Linear(config.classifier_hidden, config.n_classes)
        decoded_steps = config.time_steps - self._first_decoded_step()
        self.decoder = nn.Linear(decoded_steps * config.n_classes, config.n_classes)
        self.register_buffer("mean", torch.tensor(config.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(config.std).view(1, -1, 1, 1))
        self.register_buffer("temperature", torch.tensor(float(config.inference_temperature)))
        self.attention = None
        if config.attention:
            if config.attention_source == "output":
                self.attention = AttentionGenerator(channels[-1], 3, config.attention_upsampler)
            else:
                self.attention = AttentionGenerator(channels[1], 1, config.attention_upsampler)
        self.last_attention_maps: list[torch.Tensor] = []
        self._first_window_stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        # Speed switch (same numbers either way): False repeats a static image over the window's
        # steps before the encoder conv, as a plain SNN loop does (the reference for benchmarks).
        self.encoder_once = True

    @property
    def computed_attention_maps(self) -> list[torch.Tensor]:
        return self.last_attention_maps[1:]

    def spiking_layers(self) -> list[PaperLIF]:
        """The feature extractor's LIF layers, encoding layer first (what firing rates count)."""
        return list(self.lifs)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.dynamic_input:
            return x  # binary event frames are fed as they are
        return (x - self.mean) / self.std

    def _norm(self, index: int, x: torch.Tensor, first_window: bool) -> torch.Tensor:
        """BatchNorm of conv ``index``; with window_norm "first-window", masked windows in training
        reuse the first window's batch statistics (hand-written: torch's BatchNorm has no such mode).
        Under multi-rank training those reused statistics are this rank's own, not all ranks'."""
        norm = self.norms[index]
        if self.config.window_norm == "per-window" or not norm.training:
            return norm(x)
        if first_window:
            flat = x.float()
            self._first_window_stats[index] = (flat.mean((0, 2, 3)), flat.var((0, 2, 3), unbiased=False))
            return norm(x)
        mean, var = (stat.view(1, -1, 1, 1) for stat in self._first_window_stats[index])
        scale = norm.weight.view(1, -1, 1, 1) * torch.rsqrt(var + norm.eps)
        return ((x.float() - mean) * scale + norm.bias.view(1, -1, 1, 1)).to(x.dtype)

    def _extract(self, encoder_input: torch.Tensor, steps: int, mask: torch.Tensor | None,
                 first_window: bool):
        """Run the extractor for one window of ``steps`` steps; returns (output, first block) spikes.

        ``encoder_input`` is [B,C,H,W] for static images (broadcast over the window) or
        [steps,B,C,H,W] for event frames; ``mask`` is the attention map for this window, or None.
        """
        if mask is not None and self.config.mask_space == "pixels" and not self.config.dynamic_input:
            # (x * M - mean) / std, written on the already normalised input
            encoder_input = encoder_input * mask + (mask - 1) * (self.mean / self.std)
        elif mask is not None:
            encoder_input = encoder_input * mask
        if encoder_input.dim() == 4 and not self.encoder_once:
            encoder_input = encoder_input.unsqueeze(0).expand(steps, *encoder_input.shape)
        if encoder_input.dim() == 4:
            current = self._norm(0, self.convs[0](encoder_input), first_window)
            current = current.unsqueeze(0).expand(steps, *current.shape)
        else:
            current = _seq_apply(lambda x: self._norm(0, self.convs[0](x), first_window), encoder_input)
        spikes = self.lifs[0](current)
        first_block = None
        for index in range(1, len(self.convs)):
            if index in MIDDLE_TARGETS and mask is not None and self.config.attention_targets == "encoder+middle":
                spikes = spikes * F.adaptive_avg_pool2d(mask, spikes.shape[-2:]).unsqueeze(0)
            conv = self.convs[index]
            spikes = self.lifs[index](_seq_apply(lambda x: self._norm(index, conv(x), first_window), spikes))
            if index in POOL_AFTER:
                spikes = _seq_apply(lambda x: F.max_pool2d(x, 2), spikes)
            if index == 1:
                first_block = spikes
        return spikes, first_block

    def _attention_map(self, output: torch.Tensor, first_block: torch.Tensor) -> torch.Tensor:
        source = output if self.config.attention_source == "output" else first_block
        window = source[-self.config.attention_window :].mean(0)
        return self.attention(window, self.temperature)

    def _windows(self, steps: int) -> list[tuple[int, int]]:
        """Time windows sharing one attention map: static inputs get [0, T_f) then [T_f, K);
        event frames get a new map every T_f steps."""
        window = self.config.attention_window
        if self.attention is None:
            return [(0, steps)]
        if not self.config.dynamic_input:
            return [(0, window), (window, steps)]
        return [(start, min(start + window, steps)) for start in range(0, steps, window)]

    def _first_decoded_step(self) -> int:
        """The decoder reads the readouts from this step to the last (config decoder_steps)."""
        return self.config.attention_window if self.config.decoder_steps == "attended" else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(self)
        self.last_attention_maps = []
        self._first_window_stats = {}
        x = self._normalise(x)
        steps = self.config.time_steps
        if self.config.dynamic_input:
            if x.dim() != 5:
                raise ValueError(f"expected event frames [B,T,C,H,W], got shape {tuple(x.shape)}")
            x = x.transpose(0, 1)  # [T, B, C, H, W]
            steps = x.shape[0]
            if steps != self.config.time_steps:
                raise ValueError(f"expected {self.config.time_steps} time steps, got {steps}")
        outputs = []
        mask = None
        if self.attention is not None:  # M0: the first window sees the whole input
            shape = (x.shape[-4], 1, *x.shape[-2:])  # [B, 1, H, W]
            mask = x.new_ones(shape)
            self.last_attention_maps.append(mask)
        for start, stop in self._windows(steps):
            window_input = x[start:stop] if self.config.dynamic_input else x
            out, first_block = self._extract(window_input, stop - start, mask, first_window=start == 0)
            outputs.append(out)
            if self.attention is not None and stop < steps:
                mask = self._attention_map(out, first_block)
                self.last_attention_maps.append(mask)
        features = torch.cat(outputs, 0).flatten(2)  # [K, B, features]
        hidden = self.fc_lif(_seq_apply(self.fc, features))
        readouts = _seq_apply(self.readout, hidden)  # [K, B, n_classes], real-valued per step
        readouts = readouts[self._first_decoded_step() :]
        return self.decoder(readouts.transpose(0, 1).flatten(1))
