"""Adversarial attacks (torchattacks-based, per-example seeded, validity-checked) and their registry.

Importing the package registers the built-in attacks ("pgd", "fgsm"); add one with
``@register_attack("name")`` on a ``SeededAttack`` subclass that implements ``from_options``.
"""

from .base import (
    ATTACKS,
    AttackValidityError,
    SeededAttack,
    build_attack,
    check_adversarial,
    example_seed,
    parse_eps,
    register_attack,
    uniform_noise,
)
from .gradient import FGSM, PGD
from . import adaptive  # noqa: F401  (registers the adaptive attacks: PGD-50, surrogate PGD, BPDA, transfer)
from . import autoattack  # noqa: F401  (registers APGD-CE, APGD-DLR and Square)

__all__ = [
    "ATTACKS", "AttackValidityError", "FGSM", "PGD", "SeededAttack", "build_attack",
    "check_adversarial", "example_seed", "parse_eps", "register_attack", "uniform_noise",
]
