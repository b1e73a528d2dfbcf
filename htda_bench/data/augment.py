"""Batched training augmentation on uint8 tensors, drawn from an explicit generator.

Written by hand: torchvision's v2 ``RandomCrop``/``RandomHorizontalFlip`` draw one crop per call
(so one per batch when given a batch) from the global RNG. Per-sample crops from a seeded
generator keep training fast and make a resumed run repeat the uninterrupted one exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

AUGMENTATIONS = {
    "cifar10": ("crop", "flip"),
    "cifar100": ("crop", "flip"),
    "mnist": ("crop",),
    "nmnist": (),
}


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and take a random crop of the original size, per sample."""
    batch, _, height, width = images.shape
    padded = F.pad(images, (padding,) * 4)
    top = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    rows = (top[:, None] + torch.arange(height))[:, None, :, None]  # [B,1,H,1]
    cols = (left[:, None] + torch.arange(width))[:, None, None, :]  # [B,1,1,W]
    batch_index = torch.arange(batch)[:, None, None, None]
    channel_index = torch.arange(images.shape[1])[None, :, None, None]
    return padded[batch_index, channel_index, rows, cols]


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    out = images.clone()
    out[flip] = images[flip].flip(-1)
    return out


def augment(images: torch.Tensor, dataset: str, generator: torch.Generator) -> torch.Tensor:
    """Apply the dataset's training augmentation (crop pad 4, and flip for CIFAR)."""
    steps = AUGMENTATIONS.get(dataset, ())
    if "crop" in steps:
        images = random_crop(images, 4, generator)
    if "flip" in steps:
        images = random_flip(images, generator)
    return images
