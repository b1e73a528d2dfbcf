"""Reliability flags: automatic checks that a robust accuracy is not an artefact of a weak attack.

Each check returns a ``Flag`` (name, measured value, threshold, pass/fail, what it means). A flag
never removes a model's row; it says how far to trust it. The checks are pure functions of numbers
(accuracies in %, per-example outcomes) plus two measurements on the model itself
(``zero_gradient_share`` and ``determinism_gap``), so they can be tested and re-derived from the
results store.

| flag | value | fails when |
| --- | --- | --- |
| ``monotone_eps`` | largest rise (points) of any accuracy curve as eps grows, clean accuracy as eps 0 | value > threshold (1 point) |
| ``large_eps_chance`` | accuracy (worst case over the large-eps attacks) at eps 0.5 | value > chance + margin (5 points) |
| ``black_box_gap`` | largest lead (points) of a black-box attack over the best white-box one, any eps | value > 0.5 |
| ``pgd_converged`` | largest excess (points) of 10-step over 50-step PGD accuracy, any eps | value > 1 |
| ``zero_gradient`` | % of examples whose clean input gradient is exactly zero | value > 5 |
| ``deterministic`` | largest absolute logit difference between repeated calls | value > 0 |
| ``worst_case_consistent`` | largest gap (points) between the reported worst case and one recomputed per example, or above any single attack | value > 0 |
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from ..errors import ConfigError

FLAG_NAMES = ("monotone_eps", "large_eps_chance", "black_box_gap", "pgd_converged", "zero_gradient",
              "deterministic", "worst_case_consistent")
_EXACT = 1e-9  # tolerance for "exactly equal" comparisons of accuracies computed two ways


@dataclass(frozen=True)
class Thresholds:
    """Thresholds of the flags; a suite YAML may override any of them under ``reliability.thresholds``."""

    monotone_rise: float = 1.0  # points an accuracy may rise from one eps to the next (clean = eps 0)
    chance_margin: float = 5.0  # points above chance allowed at the large eps
    black_box_gap: float = 0.5  # points a black-box attack may beat every white-box attack by
    pgd_convergence: float = 1.0  # points 10-step PGD accuracy may exceed 50-step PGD accuracy by
    zero_gradient: float = 5.0  # % of examples with an exactly zero input gradient
    determinism: float = 0.0  # largest absolute logit difference between repeated calls
    worst_case: float = 0.0  # points between the reported and the recomputed worst case

    @classmethod
    def from_dict(cls, data: Mapping | None) -> "Thresholds":
        data = dict(data or {})
        known = {field.name for field in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown reliability thresholds {sorted(unknown)}; known: {sorted(known)}")
        try:
            values = {key: float(value) for key, value in data.items()}
        except (TypeError, ValueError):
            raise ConfigError(f"reliability thresholds must be numbers, got {data}") from None
        if any(not math.isfinite(value) or value < 0 for value in values.values()):
            raise ConfigError(f"reliability thresholds must be finite and >= 0, got {values}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Flag:
    """One check's outcome. ``passed`` is None when the check could not be computed (e.g. the suite
    has no black-box attack); such a flag is reported as 'n/a' and is not a failure."""

    name: str
    value: float | None
    threshold: float | None
    passed: bool | None
    description: str
    detail: str = ""

    @property
    def status(self) -> str:
        return "n/a" if self.passed is None else ("pass" if self.passed else "fail")

    def to_dict(self) -> dict:
        value = None if self.value is None else (float(self.value) if math.isfinite(self.value) else str(self.value))
        return {"name": self.name, "value": value, "threshold": self.threshold, "pass": self.passed,
                "status": self.status, "description": self.description, "detail": self.detail}


def _not_available(name: str, threshold: float | None, description: str, why: str) -> Flag:
    return Flag(name, None, threshold, None, description, why)


def _round(value: float) -> float:
    return round(float(value), 6)


# -- the checks -------------------------------------------------------------------------------------
def check_monotone(clean_acc: float, curves: Mapping[str, Mapping[float, float]], threshold: float) -> Flag:
    """No accuracy may rise as eps grows: for every curve (each attack and the worst case) over
    (0: clean accuracy, eps_1 < eps_2 < ...), the largest step up must stay within ``threshold``."""
    description = "accuracy does not increase as eps increases (clean accuracy counts as eps 0)"
    worst_rise, where = -math.inf, ""
    for name, curve in curves.items():
        points = [(0.0, clean_acc)] + sorted((float(eps), float(acc)) for eps, acc in curve.items()
                                            if not math.isnan(acc))
        for (eps_a, acc_a), (eps_b, acc_b) in zip(points, points[1:]):
            if acc_b - acc_a > worst_rise:
                worst_rise, where = acc_b - acc_a, f"{name}: {acc_a:.2f}% at eps {eps_a * 255:g}/255 -> " \
                                                   f"{acc_b:.2f}% at eps {eps_b * 255:g}/255"
    if worst_rise == -math.inf:
        return _not_available("monotone_eps", threshold, description, "no attacked accuracy")
    value = max(0.0, worst_rise)
    return Flag("monotone_eps", _round(value), threshold, value <= threshold + _EXACT, description,
                f"largest rise: {where}" if worst_rise > 0 else "no accuracy rises with eps")


def check_large_eps(accuracy: float | None, chance: float, margin: float, eps: float) -> Flag:
    """At a large eps (0.5: half the pixel range) a working attack drives accuracy to chance."""
    threshold = _round(chance + margin)
    description = (f"at eps {eps:g} accuracy is at most chance ({chance:.2f}%) + {margin:g} points; "
                   "higher means the attack cannot follow the model's gradients")
    if accuracy is None or math.isnan(accuracy):
        return _not_available("large_eps_chance", threshold, description, "no large-eps result")
    return Flag("large_eps_chance", _round(accuracy), threshold, accuracy <= threshold + _EXACT, description,
                f"accuracy {accuracy:.2f}% at eps {eps:g}")


def check_black_box(curves: Mapping[str, Mapping[float, float]], black_box: Sequence[str],
                    threshold: float) -> Flag:
    """A black-box attack must not beat the best white-box attack by more than ``threshold`` points at
    any eps: if it does, the white-box gradients are uninformative (gradient masking)."""
    description = f"black-box attacks ({', '.join(black_box)}) do not beat the white-box ones by more " \
                  f"than {threshold:g} points at any eps"
    white = [name for name in curves if name not in black_box]
    black = [name for name in curves if name in black_box]
    if not white or not black:
        return _not_available("black_box_gap", threshold, description,
                              "needs at least one black-box and one white-box attack")
    worst, where = -math.inf, ""
    for eps in sorted({eps for name in curves for eps in curves[name]}):
        white_acc = [curves[name][eps] for name in white if eps in curves[name]]
        if not white_acc:
            continue
        best_white = min(white_acc)
        for name in black:
            if eps in curves[name] and best_white - curves[name][eps] > worst:
                worst = best_white - curves[name][eps]
                where = f"{name} {curves[name][eps]:.2f}% vs best white-box {best_white:.2f}% at eps {eps * 255:g}/255"
    if worst == -math.inf:
        return _not_available("black_box_gap", threshold, description, "no common eps")
    value = max(0.0, worst)
    return Flag("black_box_gap", _round(value), threshold, value <= threshold + _EXACT, description, where)


def check_pgd_converged(curves: Mapping[str, Mapping[float, float]], short: str, long: str,
                        threshold: float) -> Flag:
    """The paper's PGD has converged if 50 steps do not lower accuracy by more than ``threshold``."""
    description = f"{long} accuracy is not more than {threshold:g} points below {short} (the attack has converged)"
    if short not in curves or long not in curves:
        return _not_available("pgd_converged", threshold, description, f"needs attacks {short} and {long}")
    gaps = {eps: curves[short][eps] - curves[long][eps] for eps in curves[short] if eps in curves[long]}
    if not gaps:
        return _not_available("pgd_converged", threshold, description, "no common eps")
    eps, gap = max(gaps.items(), key=lambda item: item[1])
    value = max(0.0, gap)
    return Flag("pgd_converged", _round(value), threshold, value <= threshold + _EXACT, description,
                f"{short} {curves[short][eps]:.2f}% vs {long} {curves[long][eps]:.2f}% at eps {eps * 255:g}/255")


def check_zero_gradient(share: float | None, threshold: float) -> Flag:
    description = f"share (%) of examples whose input gradient of the loss is exactly zero; flagged above {threshold:g}%"
    if share is None or math.isnan(share):
        return _not_available("zero_gradient", threshold, description, "not measured")
    return Flag("zero_gradient", _round(share), threshold, share <= threshold + _EXACT, description,
                f"{share:.2f}% of clean examples have a zero input gradient")


def check_deterministic(gap: float | None, threshold: float) -> Flag:
    description = "the model returns the same logits when called again on the same input"
    if gap is None:
        return _not_available("deterministic", threshold, description, "not measured")
    passed = math.isfinite(gap) and gap <= threshold
    return Flag("deterministic", gap if math.isfinite(gap) else math.inf, threshold, passed, description,
                f"largest |logit difference| between repeated calls: {gap:.3g}")


def worst_case_accuracy(outcomes: pd.DataFrame, attacks: Sequence[str]) -> dict[float, float]:
    """Per eps: mean over seeds of the % of examples correct under *every* attack, recomputed from
    per-example rows (columns seed, eps, attack, example_index, correct) by a group-by minimum."""
    rows = outcomes[outcomes["attack"].isin(list(attacks))]
    if rows.empty:
        return {}
    per_example = rows.groupby(["eps", "seed", "example_index"])["correct"].min()
    per_seed = per_example.groupby(level=["eps", "seed"]).mean() * 100.0
    return {float(eps): float(group.mean()) for eps, group in per_seed.groupby(level="eps")}


def check_worst_case(reported: Mapping[float, float], outcomes: pd.DataFrame, attacks: Sequence[str],
                     per_attack: Mapping[str, Mapping[float, float]], threshold: float) -> Flag:
    """The reported robust accuracy equals the per-example worst case recomputed from the stored
    outcomes, and is never above any single attack's accuracy."""
    description = "reported robust accuracy = per-example worst case over the attacks, never above any attack"
    recomputed = worst_case_accuracy(outcomes, attacks)
    if not reported or not recomputed:
        return _not_available("worst_case_consistent", threshold, description, "no outcomes")
    value, detail = 0.0, "consistent"
    for eps in sorted(set(reported) | set(recomputed)):
        if eps not in reported or eps not in recomputed:
            return Flag("worst_case_consistent", math.inf, threshold, False, description,
                        f"eps {eps * 255:g}/255 is missing from the {'report' if eps not in reported else 'store'}")
        gap = abs(reported[eps] - recomputed[eps])
        above = max([reported[eps] - curve[eps] for curve in per_attack.values() if eps in curve] + [0.0])
        if max(gap, above) > value:
            value = max(gap, above)
            detail = (f"eps {eps * 255:g}/255: reported {reported[eps]:.4f}%, recomputed {recomputed[eps]:.4f}%, "
                      f"{above:.4f} points above the strongest single attack")
    return Flag("worst_case_consistent", _round(value), threshold, value <= threshold + _EXACT, description, detail)


# -- measurements on the model ----------------------------------------------------------------------
def zero_gradient_share(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                        batch_size: int = 200) -> tuple[float, int]:
    """(% of examples whose d cross-entropy / d input is exactly zero everywhere, how many examples).

    A model whose output does not depend on its input through autograd at all (e.g. ``x.detach()``
    first) counts as zero gradient for every example rather than raising.
    """
    device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
    zero = 0
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device).detach().requires_grad_(True)
            target = labels[start:start + batch_size].to(device)
            with torch.enable_grad():
                loss = nn.functional.cross_entropy(model(batch), target, reduction="sum")
                if not loss.requires_grad:
                    zero += len(batch)
                    continue
                (grad,) = torch.autograd.grad(loss, batch, allow_unused=True)
            if grad is None:
                zero += len(batch)
            else:
                zero += int((grad.flatten(1).abs().amax(1) == 0).sum())
    finally:
        model.train(was_training)
    return (100.0 * zero / len(images) if len(images) else math.nan), len(images)


@torch.no_grad()
def determinism_gap(model: nn.Module, images: torch.Tensor, repeats: int = 3) -> float:
    """Largest absolute logit difference between ``repeats`` calls on the same batch, with a call on
    a different batch (the same images reversed and inverted) in between each: state leaking from
    one call to the next shows too. 0.0 means bit-identical; inf means NaNs or a shape change."""
    device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        images = images.to(device)
        other = 1.0 - images.flip(0)
        first = model(images)
        gap = 0.0
        for _ in range(max(1, repeats - 1)):
            model(other)
            again = model(images)
            if again.shape != first.shape or not torch.equal(torch.isnan(again), torch.isnan(first)):
                return math.inf
            if again.numel():
                difference = (again.double() - first.double()).abs().nan_to_num(nan=0.0)
                gap = max(gap, float(difference.max()))
    finally:
        model.train(was_training)
    return gap


def compute_flags(*, clean_acc: float, per_attack: Mapping[str, Mapping[float, float]],
                  worst_case: Mapping[float, float], outcomes: pd.DataFrame, large_eps_acc: float | None,
                  large_eps: float, chance: float, black_box: Sequence[str], reference_attack: str,
                  converged_attack: str, zero_grad: float | None, determinism: float | None,
                  thresholds: Thresholds) -> list[Flag]:
    """All seven flags, in ``FLAG_NAMES`` order."""
    curves = dict(per_attack)
    curves["worst case"] = dict(worst_case)
    flags = [
        check_monotone(clean_acc, curves, thresholds.monotone_rise),
        check_large_eps(large_eps_acc, chance, thresholds.chance_margin, large_eps),
        check_black_box(per_attack, black_box, thresholds.black_box_gap),
        check_pgd_converged(per_attack, reference_attack, converged_attack, thresholds.pgd_convergence),
        check_zero_gradient(zero_grad, thresholds.zero_gradient),
        check_deterministic(determinism, thresholds.determinism),
        check_worst_case(worst_case, outcomes, list(per_attack), per_attack, thresholds.worst_case),
    ]
    assert [flag.name for flag in flags] == list(FLAG_NAMES)
    return flags


__all__ = [
    "FLAG_NAMES", "Flag", "Thresholds", "check_black_box", "check_deterministic", "check_large_eps",
    "check_monotone", "check_pgd_converged", "check_worst_case", "check_zero_gradient", "compute_flags",
    "determinism_gap", "worst_case_accuracy", "zero_gradient_share",
]
