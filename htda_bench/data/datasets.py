"""Dataset specs and loaders: MNIST, CIFAR-10 (two layouts), CIFAR-100, N-MNIST.

Each split is read once into a uint8 tensor (decoded data cached on disk, see ``cache``); nothing
is decoded per sample per epoch.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import DataError
from . import nmnist
from .cache import Split, cached_tensors, source_fingerprint

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    in_channels: int
    n_classes: int
    image_size: int
    time_steps: int  # K the paper uses for this dataset
    dynamic: bool  # event frames [T, C, H, W] rather than static images
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layouts: str  # the expected layout, for error messages
    loader: Callable[[Path, str, bool], Split]


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """--data-root, else $HTDA_BENCH_DATA, else ~/.cache/htda-bench/data."""
    if data_root:
        return Path(data_root).expanduser()
    if os.environ.get("HTDA_BENCH_DATA"):
        return Path(os.environ["HTDA_BENCH_DATA"]).expanduser()
    return Path.home() / ".cache" / "htda-bench" / "data"


def _missing(spec_name: str, root: Path, layout: str, reason: str = "") -> DataError:
    extra = f" ({reason})" if reason else ""
    return DataError(
        f"{spec_name} not found under data root {root}{extra}: expected {layout}; "
        "set --data-root or HTDA_BENCH_DATA to the folder that holds it"
    )


def _torchvision_dataset(cls, root: Path, split: str, download: bool, name: str, layout: str):
    """Open a torchvision dataset, downloading where allowed; a clear error where impossible."""
    try:
        return cls(root=str(root), train=split == "train", download=False)
    except RuntimeError:
        if not download:
            raise _missing(name, root, layout) from None
    try:
        return cls(root=str(root), train=split == "train", download=True)
    except Exception as error:  # no network, unwritable root, ...
        reason = f"download failed: {type(error).__name__}"
        raise _missing(name, root, layout, reason) from None


def _load_mnist(root: Path, split: str, download: bool) -> Split:
    from torchvision.datasets import MNIST

    dataset = _torchvision_dataset(MNIST, root, split, download, "MNIST", MNIST_SPEC_LAYOUT)
    images = F.pad(dataset.data, (2, 2, 2, 2)).unsqueeze(1)  # 28x28 -> 32x32, 1 channel
    return Split("mnist", split, images.contiguous(), dataset.targets.to(torch.int64), "torchvision",
                 str(Path(dataset.raw_folder)))


def _load_cifar_torchvision(cls, name: str, root: Path, split: str, download: bool, layout: str) -> Split:
    # torchvision checks the md5 of every batch file against the official release before it
    # unpickles it, so only the published CIFAR files are ever unpickled.
    dataset = _torchvision_dataset(cls, root, split, download, name, layout)
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(dataset.targets, dtype=torch.int64)
    return Split(name.lower().replace("-", ""), split, images, labels, "torchvision",
                 str(root / dataset.base_folder))


def _interleave_classes(samples: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Order class-folder samples round-robin over classes: class 0's first file, class 1's first, ...

    The JPEG mirror keeps no global order (files are numbered within each class), and ImageFolder
    sorts by class, so "the first N test examples" would all be airplanes. Round-robin makes every
    prefix class-balanced, deterministically; it is not the original CIFAR-10 order.
    """
    rank_in_class: dict[int, int] = {}
    ranked = []
    for path, label in samples:  # ImageFolder sorts files within a class by name
        rank = rank_in_class.get(label, 0)
        rank_in_class[label] = rank + 1
        ranked.append((rank, label, path))
    return [(path, label) for _, label, path in sorted(ranked)]


def _load_cifar10(root: Path, split: str, download: bool) -> Split:
    from torchvision.datasets import CIFAR10, ImageFolder
    from torchvision.io import ImageReadMode, decode_image

    if (root / "cifar-10-batches-py").is_dir():
        return _load_cifar_torchvision(CIFAR10, "CIFAR-10", root, split, download, CIFAR10_LAYOUT)
    folder = root / "cifar10-jpeg" / split
    if folder.is_dir():
        samples = _interleave_classes(ImageFolder(str(folder)).samples)
        files = [Path(path) for path, _ in samples]

        def build() -> dict[str, torch.Tensor]:
            with warnings.catch_warnings():  # torchvision 0.29 flags its decoders as deprecated
                warnings.simplefilter("ignore", DeprecationWarning)
                images = torch.stack([decode_image(str(path), mode=ImageReadMode.RGB) for path in files])
            labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
            return {"images": images, "labels": labels}

        key = "cifar10-jpeg-v2-" + split + "-" + source_fingerprint(files, folder)[:24]
        tensors = cached_tensors(key, build)
        return Split("cifar10", split, tensors["images"], tensors["labels"], "cifar10-jpeg", str(folder))
    return _load_cifar_torchvision(CIFAR10, "CIFAR-10", root, split, download, CIFAR10_LAYOUT)


def _load_cifar100(root: Path, split: str, download: bool) -> Split:
    from torchvision.datasets import CIFAR100

    return _load_cifar_torchvision(CIFAR100, "CIFAR-100", root, split, download, CIFAR100_LAYOUT)


def _load_nmnist(root: Path, split: str, download: bool) -> Split:
    for folder_name, variant in (("NMNIST", "nmnist"), ("NMNIST-small", "nmnist-small")):
        folder = root / folder_name / split.capitalize()
        files = nmnist.recording_files(folder) if folder.is_dir() else []
        if files:
            break
    else:
        raise _missing("N-MNIST", root, NMNIST_LAYOUT, "torchvision cannot download it")

    def build() -> dict[str, torch.Tensor]:
        images, labels = nmnist.load_frames(files)
        return {"images": images, "labels": labels}

    # "v2": frames hold 0/255 (v1 held 0/1, which as_float turned into 0 and 1/255)
    key = f"{variant}-v2-{split}-" + source_fingerprint([path for path, _ in files], folder)[:24]
    tensors = cached_tensors(key, build)
    return Split("nmnist", split, tensors["images"], tensors["labels"], variant, str(folder))


MNIST_SPEC_LAYOUT = "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"
CIFAR10_LAYOUT = "cifar-10-batches-py/ (torchvision) or cifar10-jpeg/{train,test}/<class>/*.jpg"
CIFAR100_LAYOUT = "cifar-100-python/{train,test,meta} (torchvision)"
NMNIST_LAYOUT = "NMNIST/{Train,Test}/<digit>/*.bin or NMNIST-small/{Train,Test}/<digit>/*.bin"

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("mnist", 1, 10, 32, 6, False, (0.1307,), (0.3081,), MNIST_SPEC_LAYOUT, _load_mnist),
    "cifar10": DatasetSpec("cifar10", 3, 10, 32, 6, False, (0.4914, 0.4822, 0.4465),
                           (0.2470, 0.2435, 0.2616), CIFAR10_LAYOUT, _load_cifar10),
    "cifar100": DatasetSpec("cifar100", 3, 100, 32, 6, False, (0.5071, 0.4865, 0.4409),
                            (0.2673, 0.2564, 0.2762), CIFAR100_LAYOUT, _load_cifar100),
    "nmnist": DatasetSpec("nmnist", 2, 10, 32, 10, True, (0.0, 0.0), (1.0, 1.0), NMNIST_LAYOUT, _load_nmnist),
}


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def load_split(name: str, split: str = "test", data_root: str | os.PathLike | None = None,
               download: bool = True) -> Split:
    """Load one split of a dataset into memory as uint8 tensors."""
    spec = get_spec(name)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: use 'train' or 'test'")
    root = resolve_data_root(data_root)
    return spec.loader(root, split, download)
