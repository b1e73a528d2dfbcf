"""In-memory uint8 splits, decoded once and cached on disk under a key of the source's content.

The cache lives outside the data root (which may be read-only), in ``$HTDA_BENCH_CACHE`` or
``~/.cache/htda-bench/decoded``. Files are safetensors written by us, renamed into place
atomically; a corrupt or foreign cache file is ignored and rebuilt, never unpickled.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
from safetensors.torch import load_file, save_file

from ..utils import atomic_path

CACHE_FORMAT_VERSION = "1"


@dataclass
class Split:
    """One split of a dataset as tensors: images uint8 [N,C,H,W] (or [N,T,C,H,W]), labels int64 [N]."""

    dataset: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    variant: str  # e.g. "torchvision", "cifar10-jpeg", "nmnist-small"
    source: str  # where it was read from

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def fingerprint(self) -> str:
        return tensor_fingerprint(self.images, self.labels)

    def as_float(self, indices: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Images in [0,1] as float32, for the given indices (all by default)."""
        images = self.images if indices is None else self.images[indices]
        return images.float().div_(255.0)


def tensor_fingerprint(images: torch.Tensor, labels: torch.Tensor) -> str:
    """sha256 of the uint8 images and int64 labels (shape included): what results record."""
    digest = hashlib.sha256()
    digest.update(str(tuple(images.shape)).encode())
    digest.update(images.contiguous().numpy().tobytes())
    digest.update(labels.to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


def source_fingerprint(files: Iterable[Path], root: Path) -> str:
    """sha256 over the relative names and bytes of the source files."""
    digest = hashlib.sha256(CACHE_FORMAT_VERSION.encode())
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("HTDA_BENCH_CACHE", Path.home() / ".cache" / "htda-bench" / "decoded"))


def cached_tensors(
    key: str, build: Callable[[], dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """Return the tensors stored under ``key``, building and storing them on a miss."""
    path = cache_dir() / f"{key}.safetensors"
    if path.exists():
        try:
            return load_file(path)
        except Exception:  # safetensors raises its own error type for corrupt files
            pass  # unreadable: rebuild below
    tensors = {name: tensor.contiguous() for name, tensor in build().items()}
    try:
        with atomic_path(path) as temporary:
            save_file(tensors, str(temporary))
    except OSError:
        pass  # an unwritable cache only costs time
    return tensors
