"""Spiking VGG models (S-SNN, HTDA and ablations) on SpikingJelly neurons."""

from .attention import AttentionGenerator, attention_map_loss
from .config import ModelConfig
from .lif import PaperLIF
from .registry import ARCH_WIDTHS, create_model, list_families, model_config, register_model
from .spiking_vgg import SpikingVGG

__all__ = [
    "ARCH_WIDTHS", "AttentionGenerator", "ModelConfig", "PaperLIF", "SpikingVGG",
    "attention_map_loss", "create_model", "list_families", "model_config", "register_model",
]
