"""Model registry in the style of timm: ``@register_model`` on a builder, ``create_model`` by name.

A builder takes (dataset spec, width, **options) and returns a ``ModelConfig``; names are model
families ("s-snn", "htda", and ablation variants). Adding a family is one small function.
"""

from __future__ import annotations

from typing import Callable

from ..data.datasets import DatasetSpec, get_spec
from ..errors import ConfigError
from .config import ModelConfig
from .spiking_vgg import SpikingVGG

ARCH_WIDTHS = {"vgg32c": 32, "vgg64c": 64, "vgg128c": 128}
_BUILDERS: dict[str, Callable[..., ModelConfig]] = {}


def register_model(name: str):
    def decorate(builder: Callable[..., ModelConfig]) -> Callable[..., ModelConfig]:
        if name in _BUILDERS:
            raise ValueError(f"model family {name!r} registered twice")
        _BUILDERS[name] = builder
        return builder

    return decorate


def list_families() -> list[str]:
    return sorted(_BUILDERS)


def _base(spec: DatasetSpec, width: int, family: str) -> dict:
    return dict(
        family=family, width=width, dataset=spec.name, in_channels=spec.in_channels,
        n_classes=spec.n_classes, image_size=spec.image_size, time_steps=spec.time_steps,
        dynamic_input=spec.dynamic, mean=spec.mean, std=spec.std,
    )


@register_model("s-snn")
def s_snn(spec: DatasetSpec, width: int, **options) -> ModelConfig:
    """The plain spiking baseline: fixed LIF (lambda 0.2, V_th 0.5), no attention."""
    return ModelConfig(**_base(spec, width, "s-snn"), **options)


@register_model("htda")
def htda(spec: DatasetSpec, width: int, **options) -> ModelConfig:
    """HTDA: top-down attention on the encoder plus learnable LIF parameters."""
    settings = dict(attention=True, learnable_lif=True)
    settings.update(options)
    return ModelConfig(**_base(spec, width, "htda"), **settings)


@register_model("htda-fixedlif")
def htda_fixed_lif(spec: DatasetSpec, width: int, **options) -> ModelConfig:
    """Table 4 ablation: attention without learnable LIF."""
    return htda(spec, width, **{**options, "learnable_lif": False})


@register_model("htda-noattn")
def htda_no_attention(spec: DatasetSpec, width: int, **options) -> ModelConfig:
    """Table 4 ablation: learnable LIF without attention."""
    return htda(spec, width, **{**options, "attention": False})


@register_model("htda-middle")
def htda_middle(spec: DatasetSpec, width: int, **options) -> ModelConfig:
    """Table 5 variant: attention on the encoder and the middle layers."""
    return htda(spec, width, **{**options, "attention_targets": "encoder+middle"})


def zoo_name(family: str, arch: str, dataset: str) -> str:
    """The zoo name ``<family>-<arch>-<dataset>[-<variant>]``: ``htda-fixedlif`` on MNIST VGG-32c
    is ``htda-vgg32c-mnist-fixedlif``, so that every HTDA variant sorts beside its parent."""
    if family.startswith("htda-"):
        return f"htda-{arch}-{dataset}-{family[len('htda-'):]}"
    return f"{family}-{arch}-{dataset}"


def model_config(family: str, arch: str, dataset: str, **options) -> ModelConfig:
    if family not in _BUILDERS:
        raise ConfigError(f"unknown model family {family!r}: choose one of {', '.join(list_families())}")
    if arch not in ARCH_WIDTHS:
        raise ConfigError(f"unknown arch {arch!r}: choose one of {', '.join(ARCH_WIDTHS)}")
    try:
        return _BUILDERS[family](get_spec(dataset), ARCH_WIDTHS[arch], **options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid model options for {family}: {error}") from None


def create_model(family: str, arch: str, dataset: str, **options) -> SpikingVGG:
    """Build an untrained model, e.g. ``create_model("htda", "vgg32c", "mnist")``."""
    return SpikingVGG(model_config(family, arch, dataset, **options))
