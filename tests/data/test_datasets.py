"""Loaders return the documented shapes, dtypes and label order; a missing dataset is a clear error."""

import pickle
import hashlib

import numpy as np
import pytest
import torch

from htda_bench.data import augment, load_split, resolve_data_root
from htda_bench.data.nmnist import decode_events, events_to_frames
from htda_bench.errors import DataError


def test_mnist_is_padded_to_32_with_one_channel(mnist_test):
    assert mnist_test.images.shape == (10000, 1, 32, 32)
    assert mnist_test.images.dtype == torch.uint8 and mnist_test.labels.dtype == torch.int64
    assert mnist_test.images[:, :, :2].max() == 0  # the 2-pixel padding is empty
    # original order: the first MNIST test labels are 7, 2, 1, 0, 4
    assert mnist_test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert len(mnist_test.fingerprint) == 64


def test_cifar10_jpeg_mirror(data_root):
    split = load_split("cifar10", "test", data_root, download=False)
    assert split.images.shape == (10000, 3, 32, 32) and split.images.dtype == torch.uint8
    assert split.variant == "cifar10-jpeg"
    assert torch.bincount(split.labels).tolist() == [1000] * 10
    # class-interleaved order: every prefix is balanced (first-N subsets are not all airplanes)
    assert split.labels[:20].tolist() == list(range(10)) * 2
    assert torch.bincount(split.labels[:500], minlength=10).tolist() == [50] * 10
    again = load_split("cifar10", "test", data_root, download=False)  # from the decoded cache
    assert again.fingerprint == split.fingerprint


def test_nmnist_frames(data_root):
    split = load_split("nmnist", "test", data_root, download=False)
    assert split.images.shape == (100, 10, 2, 32, 32)
    assert split.images.dtype == torch.uint8 and set(split.images.unique().tolist()) == {0, 255}
    assert split.variant == "nmnist-small"
    frames = split.as_float()
    assert set(frames.unique().tolist()) == {0.0, 1.0}  # binary frames in [0, 1], as the protocol says
    assert frames.mean() > 0.001  # events present


def test_atis_decoding_of_handmade_events():
    def event(x, y, p, t):
        return bytes([x, y, (p << 7) | ((t >> 16) & 127), (t >> 8) & 255, t & 255])

    raw = event(1, 1, 1, 0) + event(5, 7, 0, 12_000) + event(33, 33, 1, 60_000)
    events = decode_events(raw)
    assert events["x"].tolist() == [1, 5, 33] and events["p"].tolist() == [1, 0, 1]
    frames = events_to_frames(events)
    assert frames.shape == (10, 2, 32, 32)
    assert frames[0, 1, 0, 0] == 255  # (1,1) -> (0,0) after the 1-pixel centre crop
    assert frames[2, 0, 6, 4] == 255  # 12 ms -> bin 2, y=7 -> 6, x=5 -> 4
    assert (frames > 0).sum() == 2  # the 60 ms event is past the 10 x 5 ms window


def _write_cifar100(root, n=20):
    """A small file in torchvision's CIFAR-100 format; returns its md5s."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    md5 = {}
    for name in ("train", "test"):
        data = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                "fine_labels": list(range(n)), "coarse_labels": [0] * n}
        path = folder / name
        path.write_bytes(pickle.dumps(data))
        md5[name] = hashlib.md5(path.read_bytes()).hexdigest()
    meta = folder / "meta"
    meta.write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))
    md5["meta"] = hashlib.md5(meta.read_bytes()).hexdigest()
    return md5


def test_cifar100_torchvision_layout(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR100

    md5 = _write_cifar100(tmp_path)
    # torchvision only unpickles files whose md5 matches the official release; point it at ours
    monkeypatch.setattr(CIFAR100, "train_list", [["train", md5["train"]]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", md5["test"]]])
    monkeypatch.setattr(CIFAR100, "meta", {"filename": "meta", "key": "fine_label_names", "md5": md5["meta"]})
    split = load_split("cifar100", "test", tmp_path, download=False)
    assert split.images.shape == (20, 3, 32, 32) and split.images.dtype == torch.uint8
    assert split.labels.tolist() == list(range(20))


def test_cifar100_with_tampered_file_is_refused(tmp_path):
    _write_cifar100(tmp_path)  # md5s differ from the official release
    with pytest.raises(DataError, match="CIFAR-100 not found"):
        load_split("cifar100", "test", tmp_path, download=False)


@pytest.mark.parametrize("name,layout", [("mnist", "MNIST/raw"), ("cifar10", "cifar10-jpeg"),
                                         ("nmnist", "NMNIST")])
def test_missing_dataset_gives_one_line_error_naming_the_layout(tmp_path, name, layout):
    with pytest.raises(DataError) as error:
        load_split(name, "test", tmp_path / "empty", download=False)
    message = str(error.value)
    assert "\n" not in message and layout in message and "HTDA_BENCH_DATA" in message


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HTDA_BENCH_DATA", str(tmp_path))
    assert resolve_data_root("/explicit") == resolve_data_root("/explicit")
    assert str(resolve_data_root("/explicit")) == "/explicit"
    assert resolve_data_root(None) == tmp_path
    monkeypatch.delenv("HTDA_BENCH_DATA")
    assert resolve_data_root(None).parts[-2:] == ("htda-bench", "data")


def test_augmentation_is_seeded_and_keeps_shapes(mnist_test):
    images = mnist_test.images[:32]
    first = augment(images, "mnist", torch.Generator().manual_seed(1))
    second = augment(images, "mnist", torch.Generator().manual_seed(1))
    assert torch.equal(first, second) and first.shape == images.shape and first.dtype == torch.uint8
    assert not torch.equal(first, images)
    assert torch.equal(augment(images, "nmnist", torch.Generator()), images)
    flipped = augment(torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).repeat(64, 3, 1, 1), "cifar10",
                      torch.Generator().manual_seed(0))
    assert flipped.shape == (64, 3, 4, 4)
