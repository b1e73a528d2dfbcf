"""Training (``htda-bench train``): resumable SGD runs that end in weights plus a model card."""

from .config import TrainConfig
from .engine import train

__all__ = ["TrainConfig", "train"]
