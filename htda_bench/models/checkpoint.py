"""Model weights as safetensors, with the model config in the file's metadata.

Nothing here unpickles: a checkpoint is tensors plus a JSON string, so a file from anyone can be
opened safely. The sha256 check against a model card happens in the zoo before this is called.
"""

from __future__ import annotations

import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError
from ..utils import atomic_path
from .config import ModelConfig
from .spiking_vgg import SpikingVGG

CONFIG_KEY = "htda_bench_model_config"


def save_weights(model: SpikingVGG, path: str | os.PathLike, dtype: torch.dtype | None = None,
                 extra_metadata: dict[str, str] | None = None) -> None:
    """Write the model's state dict (optionally cast floating tensors to ``dtype``) atomically."""
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[name] = tensor.contiguous()
    metadata = {CONFIG_KEY: json.dumps(model.config.to_dict(), sort_keys=True)}
    metadata.update(extra_metadata or {})
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except FileNotFoundError:
        raise CheckpointError(f"weights file {path} does not exist") from None
    except Exception as error:  # safetensors raises its own error type for a bad header
        raise CheckpointError(f"{path} is not a readable safetensors file ({error})") from None
    return tensors, metadata


def load_weights(path: str | os.PathLike) -> SpikingVGG:
    """Rebuild a model from a safetensors checkpoint written by ``save_weights``; eval mode."""
    tensors, metadata = read_weights(path)
    if CONFIG_KEY not in metadata:
        raise CheckpointError(f"{path} carries no htda-bench model config in its metadata")
    config = ModelConfig.from_dict(json.loads(metadata[CONFIG_KEY]))
    model = SpikingVGG(config)
    reference = model.state_dict()
    tensors = {name: tensor.to(reference[name].dtype) if name in reference else tensor
               for name, tensor in tensors.items()}
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise CheckpointError(f"{path} does not fit its model config: {first_line}") from None
    return model.eval()
