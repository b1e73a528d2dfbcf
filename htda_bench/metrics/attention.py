"""Does HTDA's attention follow the input? A measured property, not an assumption.

An attention generator can satisfy the sparsity/binarity/smoothness loss with one fixed pattern
for every image; ``attention_stats`` tells such a map from one that follows the object.
"""

from __future__ import annotations

import torch

OBJECT_THRESHOLD = 0.3  # an input pixel (mean over channels) above this counts as object (MNIST)


@torch.no_grad()
def attention_maps(model, images: torch.Tensor, batch_size: int = 200) -> torch.Tensor:
    """The first computed attention map for each image, [N, H, W] (HTDA models only)."""
    if getattr(model, "attention", None) is None:
        raise ValueError("this model has no attention generator")
    maps = []
    for start in range(0, len(images), batch_size):
        model(images[start : start + batch_size])
        maps.append(model.computed_attention_maps[0][:, 0])
    return torch.cat(maps)


@torch.no_grad()
def attention_stats(model, images: torch.Tensor, batch_size: int = 200) -> dict[str, float]:
    """Per-pixel std of M across images, and mean M on the object over mean M on the background.

    images: [N,C,H,W] in [0,1] (or event frames [N,T,C,H,W], whose object mask is any event).
    ``pixel_std`` near 0 means the same map for every image; ``object_background_ratio`` near 1
    means the map does not single out the object.
    """
    maps = attention_maps(model, images, batch_size)
    intensity = images.float().mean(dim=(1, 2) if images.dim() == 5 else 1)
    obj = intensity > (0.0 if images.dim() == 5 else OBJECT_THRESHOLD)
    on_object = maps[obj].mean()
    on_background = maps[~obj].mean()
    return {
        "pixel_std": float(maps.std(dim=0).mean()),
        "mean_on_object": float(on_object),
        "mean_on_background": float(on_background),
        "object_background_ratio": float(on_object / on_background.clamp_min(1e-8)),
        "mean": float(maps.mean()),
        "fraction_near_binary": float(((maps < 0.1) | (maps > 0.9)).float().mean()),
        "n_images": len(images),
    }
