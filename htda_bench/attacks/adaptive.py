"""Adaptive attacks for the reliable suites: is a robust accuracy real or an artefact of the attack?

A 10-step PGD through the model's own surrogate gradients can overstate robustness (gradient
masking). The attacks here attack the same threat model (L-inf, eps, inputs in [0, 1]) in ways
that do not rely on those gradients being informative:

* ``pgd50``: the paper's PGD run five times longer (has the attack converged?);
* ``pgd-rect<width>``, ``pgd-sigmoid<alpha>``, ``pgd-atan<alpha>``: the paper's PGD with every
  spiking neuron's surrogate gradient swapped *at attack time* (``swapped_surrogate``); the forward
  pass, hence every scored prediction, is unchanged;
* ``apgd-ce``, ``apgd-dlr``: torchattacks' APGD (Croce & Hein 2020) with the cross-entropy and the
  DLR loss, 100 steps by default (two of AutoAttack's components; this is *not* AutoAttack);
* ``square``: torchattacks' gradient-free Square attack, ``steps`` = query budget (default 1000)
  (APGD and Square are defined in ``htda_bench.attacks.autoattack``);
* ``bpda``: for HTDA, the paper's PGD with the attention sigmoid's backward at temperature 1
  (straight-through, BPDA-style; ``straight_through_attention``); forward unchanged;
* ``transfer``: the paper's PGD crafted on a *source* model (``transfer_source``), applied to the
  attacked model.

Randomness. PGD variants and ``transfer`` draw their random start per example (seed, index), like
``pgd``, so their outcomes do not depend on batching. APGD and Square draw from torch's global RNG
for the whole batch; they are seeded per batch from (seed, first index of the batch, attack) and
run inside ``torch.random.fork_rng``, so a run is reproducible and leaves the global RNG alone, but
**their outcomes depend on batch composition** (batch size and order), unlike PGD's.

Names: every attack is registered under the name its results are stored under, so a suite lists
several variants as distinct ``AttackSpec`` names. The default grid is registered at import;
``ensure_registered(name)`` registers any other ``pgd-<rect|sigmoid|atan><number>``.
"""

from __future__ import annotations

import contextlib
import re
import types
import weakref
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import surrogate
from torch import nn

from ..errors import ConfigError
from .base import ATTACKS, SeededAttack, register_attack
from .gradient import PGD, PGD_DEFAULT_STEPS, PGD_STEP_FACTOR

BPDA_BACKWARD_TEMPERATURE = 1.0


# -- surrogate swap --------------------------------------------------------------------------------
SURROGATE_KINDS: dict[str, Callable[[float], surrogate.SurrogateFunctionBase]] = {
    # rect<w>: rectangular window of width w (SpikingJelly's Rect(alpha) has width 1/alpha)
    "rect": lambda width: surrogate.Rect(alpha=1.0 / width),
    "sigmoid": lambda alpha: surrogate.Sigmoid(alpha=alpha),
    "atan": lambda alpha: surrogate.ATan(alpha=alpha),
}
# the default grid (the paper's own surrogate is rect1, i.e. plain ``pgd``)
DEFAULT_SURROGATES: tuple[tuple[str, float], ...] = (
    ("rect", 0.5), ("rect", 2.0), ("rect", 4.0),
    ("sigmoid", 1.0), ("sigmoid", 4.0), ("sigmoid", 16.0),
    ("atan", 1.0), ("atan", 2.0), ("atan", 8.0),
)
_SURROGATE_NAME = re.compile(r"^pgd-(?P<kind>rect|sigmoid|atan)(?P<value>[0-9]+(?:\.[0-9]+)?)$")


def surrogate_factory(kind: str, value: float) -> Callable[[], surrogate.SurrogateFunctionBase]:
    """A zero-argument factory of a fresh surrogate: ``rect`` takes a window width, the others alpha."""
    if kind not in SURROGATE_KINDS:
        raise ConfigError(f"unknown surrogate {kind!r}: choose one of {', '.join(SURROGATE_KINDS)}")
    value = float(value)
    if not value > 0:
        raise ConfigError(f"surrogate {kind} needs a positive parameter, got {value}")
    return lambda: SURROGATE_KINDS[kind](value)


def surrogate_attack_name(kind: str, value: float) -> str:
    """``pgd-rect0.5``, ``pgd-sigmoid4``, ... (integers without decimals)."""
    return f"pgd-{kind}{float(value):g}"


def spiking_neurons(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules holding a SpikingJelly surrogate in ``surrogate_function``: ``PaperLIF``, every
    ``BaseNode``/``SimpleBaseNode`` subclass, and any other neuron following that convention."""
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module.__dict__.get("_modules", {}).get("surrogate_function"),
                          surrogate.SurrogateFunctionBase)]


@contextlib.contextmanager
def swapped_surrogate(model: nn.Module,
                      surrogate_factory: Callable[[], surrogate.SurrogateFunctionBase]) -> Iterator[list[str]]:
    """Replace ``surrogate_function`` on every spiking neuron of ``model`` by ``surrogate_factory()``
    (one fresh instance per neuron) and restore the originals on exit, also on error.

    Every SpikingJelly surrogate in spiking mode computes the same Heaviside step forward, so the
    model's outputs are bit-identical under the swap; only the backward pass changes. A neuron whose
    surrogate is not in spiking mode (it then computes a smooth forward) is left alone. Yields the
    names of the swapped modules (empty for a model without SpikingJelly-style neurons).
    """
    swapped: list[tuple[nn.Module, nn.Module, str]] = []
    try:
        for name, module in spiking_neurons(model):
            original = module.surrogate_function
            if not getattr(original, "spiking", True):
                continue
            replacement = surrogate_factory()
            if not isinstance(replacement, surrogate.SurrogateFunctionBase):
                raise ConfigError(f"surrogate factory returned {type(replacement).__name__}, "
                                  "not a SpikingJelly SurrogateFunctionBase")
            replacement.set_spiking_mode(True)
            module.surrogate_function = replacement
            swapped.append((module, original, name))
        yield [name for _, _, name in swapped]
    finally:
        for module, original, _ in reversed(swapped):
            module.surrogate_function = original


# -- straight-through attention (BPDA) --------------------------------------------------------------
class _SharpForwardSoftBackward(torch.autograd.Function):
    """Forward: sigmoid(T * z), exactly as the attention generator computes it. Backward: the slope
    of sigmoid(T_b * z), i.e. T_b * s * (1 - s) with s = sigmoid(T_b * z)."""

    @staticmethod
    def forward(ctx, z, temperature, backward_temperature: float):
        ctx.save_for_backward(z)
        ctx.backward_temperature = float(backward_temperature)
        return torch.sigmoid(temperature * z)

    @staticmethod
    def backward(ctx, grad_output):
        (z,) = ctx.saved_tensors
        slope = ctx.backward_temperature
        soft = torch.sigmoid(slope * z)
        return grad_output * slope * soft * (1.0 - soft), None, None


def attention_generators(model: nn.Module) -> list[nn.Module]:
    from ..models.attention import AttentionGenerator

    return [module for module in model.modules() if isinstance(module, AttentionGenerator)]


def has_attention(model: nn.Module) -> bool:
    return bool(attention_generators(model))


@contextlib.contextmanager
def straight_through_attention(model: nn.Module,
                               backward_temperature: float = BPDA_BACKWARD_TEMPERATURE) -> Iterator[int]:
    """Patch every HTDA ``AttentionGenerator`` of ``model`` so its map M = sigmoid(T * LN(A(F))) is
    computed as before (bit-identical forward) while its backward uses the slope of
    sigmoid(backward_temperature * LN(A(F))) (temperature 1 by default instead of the inference
    temperature 6, whose sharp sigmoid can flatten gradients). Restored on exit. Yields how many
    generators were patched (0 for a model without attention)."""
    generators = attention_generators(model)
    saved = []

    def forward(self, features, temperature):
        logits = self.body(features)
        normalised = F.layer_norm(logits, logits.shape[-3:])
        return _SharpForwardSoftBackward.apply(normalised, temperature, backward_temperature)

    try:
        for generator in generators:
            saved.append((generator, generator.__dict__.get("forward")))
            generator.forward = types.MethodType(forward, generator)  # instance attribute shadows the class's
        yield len(generators)
    finally:
        for generator, previous in reversed(saved):
            if previous is None:
                del generator.__dict__["forward"]
            else:
                generator.forward = previous


# -- PGD variants -----------------------------------------------------------------------------------
class _ContextPGD(PGD):
    """The paper's PGD (same random start, steps, step size) run inside ``attack_context()``."""

    label = "PGD"

    def __init__(self, model, eps=8 / 255, alpha=2 / 255, steps=10, seed=0, random_start=True):
        super().__init__(model, eps=eps, alpha=alpha, steps=steps, seed=seed, random_start=random_start)
        self.attack = self.label

    def attack_context(self):
        return contextlib.nullcontext()

    def forward(self, images, labels, indices):
        with self.attack_context():
            return super().forward(images, labels, indices)


@register_attack("pgd50")
class PGD50(_ContextPGD):
    """The paper's PGD with 50 steps (same step size when the suite gives one): a convergence check."""

    label = "PGD-50"
    default_steps = 50

    @classmethod
    def from_options(cls, model, eps, seed, steps=None, step_size=None):
        steps = cls.default_steps if steps is None else steps
        alpha = PGD_STEP_FACTOR * eps / steps if step_size is None else step_size
        return cls(model, eps=eps, alpha=alpha, steps=steps, seed=seed)


class SurrogatePGD(_ContextPGD):
    """PGD whose gradients flow through a different surrogate than the model's own (forward unchanged)."""

    surrogate_kind = "rect"
    surrogate_value = 1.0

    def attack_context(self):
        return swapped_surrogate(self.model, surrogate_factory(self.surrogate_kind, self.surrogate_value))


@register_attack("bpda")
class BPDA(_ContextPGD):
    """The paper's PGD on HTDA with the attention sigmoid's backward at temperature 1 (straight-through)."""

    label = "PGD-BPDA"

    @classmethod
    def from_options(cls, model, eps, seed, steps=None, step_size=None):
        if not has_attention(model):
            raise ConfigError("attack bpda needs a model with an HTDA attention generator (model.attention); "
                              "`htda-bench reliable` skips it for other models")
        return super().from_options(model, eps, seed, steps, step_size)

    def attack_context(self):
        return straight_through_attention(self.model, BPDA_BACKWARD_TEMPERATURE)


def ensure_registered(name: str) -> bool:
    """Register ``name`` if it is a parameterised variant (``pgd-rect0.25``, ``pgd-atan3``, ...) not
    yet registered. Returns whether ``name`` is now a known attack."""
    key = name.strip().lower()
    if key in ATTACKS:
        return True
    match = _SURROGATE_NAME.match(key)
    if not match:
        return False
    kind, value = match["kind"], float(match["value"])
    surrogate_factory(kind, value)  # validates
    cls = type(f"SurrogatePGD_{kind}_{match['value'].replace('.', '_')}", (SurrogatePGD,),
               {"surrogate_kind": kind, "surrogate_value": value, "label": f"PGD-{kind}{value:g}",
                "__doc__": f"The paper's PGD with the {kind}({value:g}) surrogate swapped in at attack time."})
    register_attack(key)(cls)
    return True


for _kind, _value in DEFAULT_SURROGATES:
    ensure_registered(surrogate_attack_name(_kind, _value))


# -- transfer ---------------------------------------------------------------------------------------
_TRANSFER_SOURCES: "weakref.WeakKeyDictionary[nn.Module, nn.Module]" = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def transfer_source(target: nn.Module, source: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``build_attack("transfer", target, ...)`` crafts on ``source``.

    (``build_attack`` only receives the attacked model, so the source is looked up here.)
    """
    previous = _TRANSFER_SOURCES.get(target)
    _TRANSFER_SOURCES[target] = source
    try:
        yield source
    finally:
        if previous is None:
            _TRANSFER_SOURCES.pop(target, None)
        else:
            _TRANSFER_SOURCES[target] = previous


def registered_transfer_source(target: nn.Module) -> nn.Module | None:
    return _TRANSFER_SOURCES.get(target)


@register_attack("transfer")
class TransferAttack(SeededAttack):
    """The paper's PGD crafted on a source model (same seed, hence the same random starts as ``pgd``),
    then applied to the attacked model. Black-box for the attacked model: it never sees its gradients."""

    def __init__(self, model, source: nn.Module, eps=8 / 255, alpha=2 / 255, steps=PGD_DEFAULT_STEPS, seed=0,
                 random_start: bool = True):
        super().__init__("Transfer", model, eps, seed)
        self.source = source
        self.crafter = PGD(source, eps=eps, alpha=alpha, steps=steps, seed=seed, random_start=random_start)

    @property
    def random_start(self) -> bool:
        return self.crafter.random_start

    @random_start.setter
    def random_start(self, value: bool) -> None:
        if hasattr(self, "crafter"):
            self.crafter.random_start = value

    @classmethod
    def from_options(cls, model, eps, seed, steps=None, step_size=None):
        source = registered_transfer_source(model)
        if source is None:
            raise ConfigError("attack transfer needs a source model: run reliable suites with `htda-bench reliable` "
                              "(or inside htda_bench.attacks.adaptive.transfer_source(target_model, source_model))")
        steps = PGD_DEFAULT_STEPS if steps is None else steps
        alpha = PGD_STEP_FACTOR * eps / steps if step_size is None else step_size
        return cls(model, source, eps=eps, alpha=alpha, steps=steps, seed=seed)

    def forward(self, images, labels, indices):
        images = images.clone().detach().to(self.device)
        if self.eps == 0:
            return images
        source_device = self.crafter.device
        adversarial = self.crafter(images.to(source_device), labels.to(source_device), indices)
        return adversarial.to(self.device).detach()


__all__ = [
    "BPDA", "DEFAULT_SURROGATES", "PGD50", "SURROGATE_KINDS", "SurrogatePGD", "TransferAttack",
    "attention_generators", "ensure_registered", "has_attention", "registered_transfer_source", "spiking_neurons",
    "straight_through_attention", "surrogate_attack_name", "surrogate_factory", "swapped_surrogate",
    "transfer_source",
]
