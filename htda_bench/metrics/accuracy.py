"""Clean accuracy of a model on an in-memory split."""

from __future__ import annotations

import torch


@torch.no_grad()
def predictions(model, images_uint8: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted labels for uint8 images (converted to [0,1] a batch at a time)."""
    out = []
    for start in range(0, len(images_uint8), batch_size):
        batch = images_uint8[start : start + batch_size].float().div_(255.0)
        out.append(model(batch).argmax(1))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def clean_accuracy(model, split, limit: int | None = None, batch_size: int = 500) -> float:
    """Accuracy in percent on the first ``limit`` examples of the split (all by default)."""
    count = len(split) if limit is None else min(limit, len(split))
    was_training = model.training
    model.eval()
    try:
        predicted = predictions(model, split.images[:count], batch_size)
    finally:
        model.train(was_training)
    return 100.0 * float((predicted == split.labels[:count]).float().mean())
