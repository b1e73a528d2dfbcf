"""Data layer: datasets as in-memory uint8 tensors, with fingerprints that results record."""

from .augment import augment
from .cache import Split, tensor_fingerprint
from .datasets import DATASETS, DatasetSpec, get_spec, load_split, resolve_data_root

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "Split",
    "augment",
    "get_spec",
    "load_split",
    "resolve_data_root",
    "tensor_fingerprint",
]
