"""Figures from models and results (matplotlib/seaborn, written as PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ..metrics.attention import attention_maps  # noqa: E402
from ..utils import atomic_path  # noqa: E402


def _shown(image: torch.Tensor):
    """[C,H,W] in [0,1] -> an array imshow understands (grey for one channel)."""
    if image.shape[0] == 1:
        return image[0].numpy(), "gray"
    if image.shape[0] == 2:  # event frames summed over time: polarity as red/green
        rgb = torch.stack([image[0], image[1], torch.zeros_like(image[0])])
        return rgb.permute(1, 2, 0).clamp(0, 1).numpy(), None
    return image.permute(1, 2, 0).numpy(), None


def attention_map_grid(model, images: torch.Tensor, path: str | Path, title: str = "") -> Path:
    """Input, attention map M, and input x M for each image (paper Fig. 2, one condition)."""
    maps = attention_maps(model, images)
    if images.dim() == 5:  # event frames: show the events over time
        images = images.float().mean(1)
    count = len(images)
    figure, axes = plt.subplots(3, count, figsize=(1.4 * count, 4.6), squeeze=False)
    for column in range(count):
        panels = [(images[column], "input"), (maps[column][None], "map M"),
                  (images[column] * maps[column][None], "input x M")]
        for row, (panel, label) in enumerate(panels):
            array, cmap = _shown(panel)
            axis = axes[row, column]
            axis.imshow(array, cmap=cmap or ("magma" if row == 1 else None), vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(label)
    figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    plt.close(figure)
    return path
