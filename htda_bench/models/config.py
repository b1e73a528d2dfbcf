"""Configuration of the spiking VGG models (S-SNN and HTDA share one class)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

ATTENTION_TARGETS = ("encoder", "encoder+middle")
# Where the attention generator A reads the extractor's spikes from:
#   "output"   the extractor output F (layer 6, 4x4), as in the paper;
#   "layer2"   the first pooled block (layer 2, 16x16), one of the candidate fixes.
ATTENTION_SOURCES = ("output", "layer2")
# How A reaches the input's resolution: the paper's transposed convolutions, or
# nearest-neighbour upsampling followed by a 3x3 convolution (no checkerboard pattern).
ATTENTION_UPSAMPLERS = ("deconv", "upsample-conv")
# Which BatchNorm statistics the attention windows after the first (the masked ones) use:
#   "per-window"    each window its own batch statistics in training (one set of running statistics
#                   in eval); BN then rescales a masked input back to unit variance, so a map's overall
#                   level costs the classifier nothing, and eval differs from training;
#   "first-window"  the first (unmasked) window's statistics, batch in training and running in eval:
#                   a map that dims the input dims the spikes, and training matches eval.
WINDOW_NORMS = ("per-window", "first-window")
# Which time steps the decoder (the linear layer over the per-step readouts) reads:
#   "all"       every step, as in the paper: the first window saw the whole, unmasked input, so the
#               classifier can learn to ignore the masked window, and L_M then drives M to zero;
#   "attended"  only the steps after the first window (those that saw a computed map), so the
#               classification has to pass through the map (HTDA only).
DECODER_STEPS = ("all", "attended")
# What M multiplies at the encoder:
#   "normalised"  the normalised image (x - mean) / std: M = 0 turns a pixel into the dataset's mean
#                 colour, so M matters most on very dark and very bright pixels alike;
#   "pixels"      the image in [0, 1] before normalisation: M = 0 turns a pixel black, so M matters
#                 where the input is bright and keeping a dark background costs nothing.
# The two are the same map on event frames (fed without normalisation).
MASK_SPACES = ("normalised", "pixels")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored in every checkpoint and model card."""

    family: str = "s-snn"  # "s-snn" or "htda"
    width: int = 32  # x of VGG-xc
    dataset: str = "mnist"
    in_channels: int = 1
    n_classes: int = 10
    image_size: int = 32
    time_steps: int = 6  # K
    dynamic_input: bool = False  # event frames [B, T, C, H, W] instead of static images
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    attention: bool = False
    learnable_lif: bool = False
    attention_targets: str = "encoder"
    attention_window: int = 2  # T_f
    attention_source: str = "output"
    attention_upsampler: str = "deconv"
    window_norm: str = "per-window"
    decoder_steps: str = "all"
    mask_space: str = "normalised"
    inference_temperature: float = 6.0
    classifier_hidden: int = 256
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.family not in ("s-snn", "htda"):
            raise ValueError(f"unknown family {self.family!r}: use 's-snn' or 'htda'")
        if self.attention_targets not in ATTENTION_TARGETS:
            raise ValueError(f"attention_targets must be one of {ATTENTION_TARGETS}")
        if self.attention_source not in ATTENTION_SOURCES:
            raise ValueError(f"attention_source must be one of {ATTENTION_SOURCES}")
        if self.attention_upsampler not in ATTENTION_UPSAMPLERS:
            raise ValueError(f"attention_upsampler must be one of {ATTENTION_UPSAMPLERS}")
        if self.window_norm not in WINDOW_NORMS:
            raise ValueError(f"window_norm must be one of {WINDOW_NORMS}")
        if self.decoder_steps not in DECODER_STEPS:
            raise ValueError(f"decoder_steps must be one of {DECODER_STEPS}")
        if self.mask_space not in MASK_SPACES:
            raise ValueError(f"mask_space must be one of {MASK_SPACES}")
        if self.decoder_steps == "attended" and not self.attention:
            raise ValueError("decoder_steps 'attended' needs attention: use 'all' for a model without it")
        if self.attention and self.time_steps <= self.attention_window:
            raise ValueError("time_steps must exceed the attention window")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise ValueError("mean and std need one value per input channel")

    @property
    def arch(self) -> str:
        return f"vgg{self.width}c"

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        data = dict(data)
        data["mean"] = tuple(data.get("mean", (0.0,)))
        data["std"] = tuple(data.get("std", (1.0,)))
        return cls(**data)

    def hash(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
