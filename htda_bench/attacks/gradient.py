"""White-box L-inf gradient attacks: PGD and FGSM, the math of torchattacks' versions.

They differ from torchattacks only where reproducibility needs it: PGD's random start comes from
per-example seeded generators, and the loss is summed over the batch (same gradient sign).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .base import SeededAttack, register_attack

PGD_DEFAULT_STEPS = 10
PGD_STEP_FACTOR = 2.5  # default step size 2.5 * eps / steps (Madry et al.): the walk can cross the ball


@register_attack("pgd")
class PGD(SeededAttack):
    """L-inf PGD (Madry et al. 2018): uniform random start in the eps-ball, ``steps`` signed
    gradient steps of size ``alpha`` on the cross-entropy, projection to the ball and [0, 1]."""

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        alpha: float = 2 / 255,
        steps: int = 10,
        seed: int = 0,
        random_start: bool = True,
    ):
        super().__init__("PGD", model, eps, seed)
        self.alpha = float(alpha)
        self.steps = int(steps)
        self.random_start = random_start

    @classmethod
    def from_options(cls, model, eps, seed, steps=None, step_size=None) -> "PGD":
        steps = PGD_DEFAULT_STEPS if steps is None else steps
        alpha = PGD_STEP_FACTOR * eps / steps if step_size is None else step_size
        return cls(model, eps=eps, alpha=alpha, steps=steps, seed=seed)

    def forward(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        if self.eps == 0:
            return images  # the ball is one point: no noise, no step
        adv_images = self.random_init(images, indices) if self.random_start else images.clone()
        for _ in range(self.steps):
            grad = self.input_gradient(adv_images, labels)
            adv_images = adv_images.detach() + self.alpha * grad.sign()
            delta = torch.clamp(adv_images - images, min=-self.eps, max=self.eps)
            adv_images = torch.clamp(images + delta, min=0, max=1).detach()
        return adv_images


@register_attack("fgsm")
class FGSM(SeededAttack):
    """FGSM (Goodfellow et al. 2015): one signed gradient step of size eps from the clean input.

    Deterministic; ``seed`` is kept only so every attack has the same interface.
    """

    def __init__(self, model: nn.Module, eps: float = 8 / 255, seed: int = 0):
        super().__init__("FGSM", model, eps, seed)

    @classmethod
    def from_options(cls, model, eps, seed, steps=None, step_size=None) -> "FGSM":
        if steps not in (None, 1) or step_size is not None:
            raise ConfigError(
                f"fgsm takes one step of size eps; got steps={steps}, step_size={step_size} (leave them unset)"
            )
        return cls(model, eps=eps, seed=seed)

    def forward(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        if self.eps == 0:
            return images
        grad = self.input_gradient(images, labels)
        return torch.clamp(images + self.eps * grad.sign(), min=0, max=1).detach()
