"""Seeded, self-checking attacks on torchattacks' ``Attack``, plus the attack registry.

Random starts come from one ``torch.Generator`` per example, seeded from (seed, dataset index),
never from the global RNG: an adversarial example then does not depend on the batch size, on how
examples are split across processes, or on where a run was resumed. Every returned batch passes
``check_adversarial``, so a buggy attack fails loudly instead of reporting a wrong robust accuracy.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Callable

import torch
from torch import nn
from torchattacks.attack import Attack  # not re-exported as torchattacks.Attack in 3.5.1

from ..errors import ConfigError, HtdaBenchError


class AttackValidityError(HtdaBenchError):
    """An attack returned (or was given) a batch outside the threat model."""


def example_seed(seed: int, index: int, salt: int = 0) -> int:
    """A 63-bit generator seed from (seed, example index, salt); a hash keeps nearby seeds apart."""
    digest = hashlib.blake2b(struct.pack("<qqq", int(seed), int(index), int(salt)), digest_size=8)
    return int.from_bytes(digest.digest(), "little") & (2**63 - 1)


def uniform_noise(
    shape_per_example: tuple[int, ...] | torch.Size,
    indices: torch.Tensor,
    seed: int,
    eps: float,
    salt: int = 0,
) -> torch.Tensor:
    """Uniform(-eps, eps) noise [B, *shape_per_example] on the CPU, one generator per example.

    Drawn on the CPU so the numbers are also the same on every device; move it with ``.to``.
    """
    rows = []
    for index in indices.reshape(-1).tolist():
        generator = torch.Generator().manual_seed(example_seed(seed, index, salt))
        rows.append(torch.empty(tuple(shape_per_example)).uniform_(-eps, eps, generator=generator))
    if not rows:
        return torch.empty((0, *shape_per_example))
    return torch.stack(rows)


def check_adversarial(clean: torch.Tensor, adversarial: torch.Tensor, eps: float, tol: float = 1e-6) -> None:
    """Raise ``AttackValidityError`` unless ``adversarial`` is finite, in [0, 1] and within eps of clean."""
    if adversarial.shape != clean.shape:
        raise AttackValidityError(
            f"adversarial batch has shape {tuple(adversarial.shape)}, clean batch {tuple(clean.shape)}"
        )
    if adversarial.numel() == 0:
        return
    if not torch.isfinite(adversarial).all():
        raise AttackValidityError("adversarial batch holds non-finite values (nan or inf)")
    low, high = float(adversarial.min()), float(adversarial.max())
    if low < 0.0 or high > 1.0:
        raise AttackValidityError(f"adversarial batch is outside [0, 1]: min {low:.6g}, max {high:.6g}")
    distance = float((adversarial.double() - clean.to(adversarial.device).double()).abs().max())
    if distance > eps + tol:
        raise AttackValidityError(
            f"adversarial batch L-inf distance {distance:.6g} exceeds eps {eps:.6g} (tolerance {tol:g})"
        )


def _check_clean(images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> None:
    """Shape and range checks on the inputs: normalisation belongs inside the model."""
    batch = images.shape[0] if images.dim() else -1
    if images.dim() < 2 or labels.shape != (batch,) or indices.shape != (batch,):
        raise ValueError(
            f"expected images [B,...], labels [B], indices [B]; got {tuple(images.shape)}, "
            f"{tuple(labels.shape)}, {tuple(indices.shape)}"
        )
    if indices.dtype != torch.long:
        raise ValueError(f"indices must be a LongTensor of dataset example indices, got {indices.dtype}")
    if images.numel() and (not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1):
        raise AttackValidityError(
            f"clean images must be finite and in [0, 1] (min {float(images.min()):.6g}, "
            f"max {float(images.max()):.6g}): normalisation belongs inside the model"
        )


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


class SeededAttack(Attack):
    """torchattacks ``Attack`` with per-example seeded randomness and a validity check on output.

    Call it as ``attack(images, labels, indices)``: ``indices`` (LongTensor [B]) are the dataset
    indices of the examples and key their random streams. ``__call__`` puts the model in eval mode
    (torchattacks' default), restores its mode afterwards (also on error), and runs
    ``check_adversarial`` on every batch before returning it. Subclasses implement ``forward``.
    """

    def __init__(self, name: str, model: nn.Module, eps: float, seed: int):
        super().__init__(name, model)
        if not 0.0 <= float(eps) <= 1.0:
            raise ConfigError(f"eps {eps} is outside [0, 1]; images are in [0, 1]")
        self.eps = float(eps)
        self.seed = int(seed)
        if self.device is None:  # model without parameters: torchattacks could not tell
            self.device = _model_device(model)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        _check_clean(images, labels, indices)
        given_training = self.model.training
        try:
            adversarial = super().__call__(images, labels, indices)
        finally:
            self.model.train(given_training)  # torchattacks restores the mode only on success
        check_adversarial(images, adversarial, self.eps)
        return adversarial

    def forward(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def random_init(self, images: torch.Tensor, indices: torch.Tensor, salt: int = 0) -> torch.Tensor:
        """Uniform random start in the eps-ball around ``images``, clamped to [0, 1]."""
        noise = uniform_noise(images.shape[1:], indices, self.seed, self.eps, salt)
        return torch.clamp(images + noise.to(images), min=0, max=1).detach()

    def input_gradient(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """d(cross-entropy)/d(images), w.r.t. the input only (no parameter ``.grad`` is written).

        The loss is summed, not averaged, so each example's gradient does not scale with the batch
        size; its sign (all PGD/FGSM use) is the same as with torchattacks' mean.
        """
        with torch.enable_grad():  # callers often evaluate under no_grad
            images = images.detach().requires_grad_(True)
            loss = nn.functional.cross_entropy(self.get_logits(images), labels, reduction="sum")
            if not loss.requires_grad:  # the model cuts its output off from the input: no gradient
                return torch.zeros_like(images)
            gradient = torch.autograd.grad(loss, images, allow_unused=True)[0]
            return torch.zeros_like(images) if gradient is None else gradient

    @classmethod
    def from_options(
        cls, model: nn.Module, eps: float, seed: int, steps: int | None, step_size: float | None
    ) -> "SeededAttack":
        """Build from the generic options of ``build_attack``; each attack fills its defaults."""
        raise NotImplementedError


ATTACKS: dict[str, type[SeededAttack]] = {}


def register_attack(name: str) -> Callable[[type[SeededAttack]], type[SeededAttack]]:
    """Class decorator: make an attack buildable by ``build_attack(name, ...)``."""

    def decorate(cls: type[SeededAttack]) -> type[SeededAttack]:
        if name in ATTACKS:
            raise ValueError(f"attack {name!r} registered twice")
        ATTACKS[name] = cls
        return cls

    return decorate


def build_attack(
    name: str,
    model: nn.Module,
    eps: float,
    seed: int,
    steps: int | None = None,
    step_size: float | None = None,
) -> SeededAttack:
    """The registered attack ``name`` on ``model``; ``steps``/``step_size`` None take its defaults."""
    key = name.strip().lower()
    if key not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; known attacks: {', '.join(sorted(ATTACKS))}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ConfigError(f"attack steps must be a whole number >= 1, got {steps!r}")
    if step_size is not None and not (math.isfinite(step_size) and step_size > 0):
        raise ConfigError(f"attack step size must be a positive number, got {step_size!r}")
    return ATTACKS[key].from_options(model, eps, seed, steps, step_size)


def parse_eps(text: str) -> float:
    """Parse an L-inf budget such as "8/255", "0.03" or "0" into a float in [0, 1]."""
    accepted = 'accepted: a number or a fraction in [0, 1], e.g. "8/255", "0.03", "0"'
    try:
        parts = str(text).strip().split("/")
        if len(parts) > 2:
            raise ValueError
        value = float(parts[0]) / float(parts[1]) if len(parts) == 2 else float(parts[0])
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"eps {text!r} is not a number or a fraction; {accepted}") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ConfigError(f"eps {text!r} = {value:g} is outside [0, 1]; {accepted}")
    return value + 0.0  # -0 -> 0
