"""APGD-CE, APGD-DLR and Square (AutoAttack's components, via torchattacks, seeded per batch) as registered attacks."""

from __future__ import annotations

import contextlib
import io

import torch
import torchattacks
from torch import nn

from ..errors import ConfigError
from .base import SeededAttack, example_seed, register_attack

APGD_DEFAULT_STEPS = 100
SQUARE_DEFAULT_QUERIES = 1000

# salts keep the per-batch streams of different attacks apart
_SALT_APGD_CE, _SALT_APGD_DLR, _SALT_SQUARE = 101, 102, 103


class _FramesAsChannels(nn.Module):
    """Show torchattacks' 4-D attacks event frames [B,T,C,H,W] as [B,T*C,H,W] (same numbers)."""

    def __init__(self, model: nn.Module, shape: torch.Size):
        super().__init__()
        self.model = model
        self.shape = tuple(shape)

    def forward(self, x):
        return self.model(x.reshape(x.shape[0], *self.shape))


def _as_four_d(model: nn.Module, images: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    if images.dim() == 4:
        return model, images
    if images.dim() < 4:
        raise ConfigError(f"APGD and Square need images [B,C,H,W] or frames [B,T,C,H,W], got {tuple(images.shape)}")
    flat = images.reshape(images.shape[0], -1, *images.shape[-2:])
    return _FramesAsChannels(model, images.shape[1:]), flat


class _TorchattacksBatchAttack(SeededAttack):
    """Runs a torchattacks attack seeded per batch from (seed, first index, salt), RNG state forked."""

    salt = 0
    # the iteration (APGD) or query (Square) budget when a suite sets no steps, and its argument name
    default_budget, budget_argument = 0, "steps"
    no_step_size = ""  # why a suite may not set step_size for this attack

    def __init__(self, name, model, eps, seed, budget):
        super().__init__(name, model, eps, seed)
        self.budget = int(budget)

    @classmethod
    def from_options(cls, model, eps, seed, steps=None, step_size=None):
        if step_size is not None:
            raise ConfigError(f"{cls.no_step_size}; leave step_size unset (got {step_size})")
        return cls(model, eps=eps, seed=seed, **{cls.budget_argument: cls.default_budget if steps is None else steps})

    def _inner(self, model: nn.Module, seed: int):
        raise NotImplementedError

    def batch_seed(self, indices: torch.Tensor) -> int:
        return example_seed(self.seed, int(indices.reshape(-1)[0]), self.salt)

    def forward(self, images, labels, indices):
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        if self.eps == 0 or len(images) == 0:
            return images
        net, flat = _as_four_d(self.model, images)
        seed = self.batch_seed(indices)
        with contextlib.redirect_stdout(io.StringIO()):  # torchattacks prints when a model has no parameters
            inner = self._inner(net, seed)
        inner.set_device(self.device)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)  # torchattacks seeds itself with the same value; explicit for clarity
            adversarial = inner(flat, labels)
        return adversarial.reshape(images.shape).detach()


class APGDAttack(_TorchattacksBatchAttack):
    """torchattacks ``APGD`` (L-inf, one restart, rho 0.75, no EOT), ``loss`` 'ce' or 'dlr'.

    Outcomes depend on the batch an example is in (APGD's random start is drawn for the batch).
    """

    loss = "ce"
    default_budget, budget_argument = APGD_DEFAULT_STEPS, "steps"
    no_step_size = "APGD adapts its own step size"

    def __init__(self, model, eps=8 / 255, steps=APGD_DEFAULT_STEPS, seed=0):
        super().__init__(f"APGD-{self.loss.upper()}", model, eps, seed, steps)

    @property
    def steps(self) -> int:
        return self.budget

    def _inner(self, model, seed):
        return torchattacks.APGD(model, norm="Linf", eps=self.eps, steps=self.steps, n_restarts=1, seed=seed,
                                 loss=self.loss, eot_iter=1, rho=0.75, verbose=False)


@register_attack("apgd-ce")
class APGDCE(APGDAttack):
    loss = "ce"
    salt = _SALT_APGD_CE


@register_attack("apgd-dlr")
class APGDDLR(APGDAttack):
    """APGD on the difference-of-logits-ratio loss (needs at least 3 classes)."""

    loss = "dlr"
    salt = _SALT_APGD_DLR


@register_attack("square")
class SquareAttack(_TorchattacksBatchAttack):
    """torchattacks ``Square`` (gradient-free random search, L-inf, margin loss, p_init 0.8, one
    restart). ``steps`` is the query budget per example (default 1000; one more query scores the
    start). Outcomes depend on the batch an example is in (square positions are drawn per batch)."""

    salt = _SALT_SQUARE
    default_budget, budget_argument = SQUARE_DEFAULT_QUERIES, "n_queries"
    no_step_size = "square takes no step size (its 'steps' is the query budget)"

    def __init__(self, model, eps=8 / 255, n_queries=SQUARE_DEFAULT_QUERIES, seed=0, p_init=0.8):
        super().__init__("Square", model, eps, seed, n_queries)
        self.p_init = float(p_init)

    @property
    def n_queries(self) -> int:
        return self.budget

    def _inner(self, model, seed):
        return torchattacks.Square(model, norm="Linf", eps=self.eps, n_queries=self.n_queries, n_restarts=1,
                                   p_init=self.p_init, loss="margin", resc_schedule=True, seed=seed,
                                   verbose=False)


__all__ = ["APGDAttack", "APGDCE", "APGDDLR", "SquareAttack"]
