"""Fig. 2 of the HTDA paper: does the attention map follow the object when the input moves or gets
noisy? Input, map M and input x M for clean, randomly translated/rotated and noisy images.

The figure takes a model and images (any HTDA-style model with ``attention``), so it can be drawn
for an untrained model in tests; the perturbations use a fixed seed, so reruns draw the same figure.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib import cm, colors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from ..metrics.attention import attention_maps  # noqa: E402
from .figures import _shown  # noqa: E402
from .plots import DPI, _save  # noqa: E402

CONDITIONS = ("clean", "translated + rotated", "Gaussian noise")
PANELS = ("input", "map M", "input x M")
CELL = 1.25  # inches per image panel
MARGIN = (1.4, 0.9)  # inches: row labels + colour bar (width), title (height)
AFFINE = dict(degrees=25, translate=(0.15, 0.15))
NOISE_STD = 0.25


def figure_size(n_images: int) -> tuple[float, float]:
    """Inches of the figure for ``n_images`` columns (nine rows: three conditions x three panels)."""
    return CELL * n_images + MARGIN[0], CELL * len(CONDITIONS) * len(PANELS) + MARGIN[1]


def perturbed_inputs(images: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """The three input conditions: clean; each image randomly translated and rotated
    (torchvision v2 RandomAffine, one draw per image); Gaussian noise (std 0.25) clamped to [0, 1].
    Draws come from ``seed`` and leave the global random state untouched."""
    images = images.float()
    affine = v2.RandomAffine(**AFFINE)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        moved = torch.stack([affine(image) for image in images])
        noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)) * NOISE_STD
    return {CONDITIONS[0]: images, CONDITIONS[1]: moved, CONDITIONS[2]: (images + noise).clamp(0, 1)}


def attention_figure(model, images: torch.Tensor, path: str | Path, title: str = "", seed: int = 0,
                     labels: list | None = None) -> Path:
    """Draw Fig. 2 for one model: rows are (condition, panel), columns are images.

    images: [N,C,H,W] in [0, 1] (event frames [N,T,C,H,W] are shown summed over time).
    """
    if getattr(model, "attention", None) is None:
        raise ValueError("the model has no attention generator (not an HTDA model with attention)")
    model.eval()
    conditions = perturbed_inputs(images, seed)
    count = len(images)
    figure, axes = plt.subplots(len(CONDITIONS) * len(PANELS), count, figsize=figure_size(count), squeeze=False,
                                layout="constrained")
    norm = colors.Normalize(0, 1)
    for block, (condition, inputs) in enumerate(conditions.items()):
        maps = attention_maps(model, inputs)
        shown = inputs.mean(1) if inputs.dim() == 5 else inputs
        for column in range(count):
            panels = (shown[column], maps[column][None], shown[column] * maps[column][None])
            for offset, (panel, name) in enumerate(zip(panels, PANELS)):
                array, cmap = _shown(panel)
                axis = axes[block * len(PANELS) + offset, column]
                axis.imshow(np.asarray(array), cmap="magma" if offset == 1 else cmap, norm=norm)
                axis.set_xticks([])
                axis.set_yticks([])
                if column == 0:
                    axis.set_ylabel(f"{condition}\n{name}", fontsize=8)
                if block == 0 and offset == 0:
                    axis.set_title(f"image {column}" + ("" if labels is None else f" (label {labels[column]})"),
                                   fontsize=8)
    bar = figure.colorbar(cm.ScalarMappable(norm=norm, cmap="magma"), ax=axes, shrink=0.4, location="right")
    bar.set_label("attention map value M")
    figure.suptitle(title or "Fig. 2: attention maps (clean, translated + rotated, noisy inputs)")
    return _save(figure, path)


def expected_pixels(n_images: int) -> tuple[int, int]:
    """(width, height) in pixels of the PNG ``attention_figure`` writes for ``n_images`` images."""
    width, height = figure_size(n_images)
    return round(width * DPI), round(height * DPI)
