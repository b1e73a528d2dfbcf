"""Reliable suites: a ``Suite`` plus its YAML ``reliability:`` section (large-eps check, black box, thresholds)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from ..attacks import ATTACKS, parse_eps
from ..attacks.adaptive import ensure_registered
from ..errors import ConfigError
from ..suites import AttackSpec, Suite, parse_suite
from .checks import Thresholds

RELIABILITY_CONDITION = "reliability"  # model_metrics condition of the stored measurements
LARGE_EPS_SUFFIX = ".large-eps"
DEFAULT_LARGE_EPS = 0.5
DEFAULT_LARGE_EPS_ATTACKS = (AttackSpec("pgd", steps=20),)  # step size 2.5 * eps / steps
DEFAULT_BLACK_BOX = ("square", "transfer")
DETERMINISM_EXAMPLES = 16
SURROGATE_ATTACK = re.compile(r"^pgd-(rect|sigmoid|atan)[0-9.]+$")


@dataclass(frozen=True)
class ReliableSuite:
    """A ``Suite`` plus what the reliability checks need (the YAML's ``reliability:`` section)."""

    suite: Suite
    large_eps: float = DEFAULT_LARGE_EPS
    large_eps_attacks: tuple[AttackSpec, ...] = DEFAULT_LARGE_EPS_ATTACKS
    reference_attack: str = "pgd"  # the paper's attack
    converged_attack: str = "pgd50"  # the same attack run longer
    black_box_attacks: tuple[str, ...] = DEFAULT_BLACK_BOX
    thresholds: Thresholds = field(default_factory=Thresholds)
    determinism_examples: int = DETERMINISM_EXAMPLES

    @property
    def name(self) -> str:
        return self.suite.name

    @property
    def large_eps_suite(self) -> Suite:
        return dataclasses.replace(self.suite, name=self.suite.name + LARGE_EPS_SUFFIX, attacks=self.large_eps_attacks,
                                   eps=(self.large_eps,),
                                   description=f"large-eps sanity check of {self.suite.name}")

    def to_dict(self) -> dict:
        return {"suite": self.suite.to_dict(), "config_hash": self.suite.config_hash, "large_eps": self.large_eps,
                "large_eps_attacks": [dataclasses.asdict(spec) for spec in self.large_eps_attacks],
                "reference_attack": self.reference_attack, "converged_attack": self.converged_attack,
                "black_box_attacks": list(self.black_box_attacks), "thresholds": self.thresholds.to_dict(),
                "determinism_examples": self.determinism_examples}

    def with_overrides(self, attacks: list[str] | None = None, large_eps: float | None = None,
                       **overrides) -> "ReliableSuite":
        """Suite overrides (n_examples, seeds, eps, models, batch_size; None ignored), ``attacks``
        (keep only these names of the suite's attacks) and ``large_eps``."""
        suite = self.suite
        if attacks is not None:
            known = {spec.name for spec in suite.attacks}
            unknown = [name for name in attacks if name not in known]
            if unknown:
                raise ConfigError(f"suite {suite.name} has no attack {', '.join(unknown)}; it has {', '.join(sorted(known))}")
            suite = dataclasses.replace(suite, attacks=tuple(spec for spec in suite.attacks if spec.name in attacks))
        suite = suite.with_overrides(**overrides)
        changed = dataclasses.replace(self, suite=suite)
        if large_eps is not None:
            changed = dataclasses.replace(changed, large_eps=float(large_eps))
        _validate(changed)
        return changed


def _attack_specs(items, where: str) -> tuple[AttackSpec, ...]:
    try:
        return tuple(AttackSpec(name=str(item["name"]), steps=item.get("steps"),
                                step_size=parse_eps(str(item["step_size"])) if item.get("step_size") is not None else None,
                                random_start=bool(item.get("random_start", True)))
                     for item in items)
    except (KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"{where}: invalid attack list ({type(error).__name__} {error})") from None


def _validate(reliable: ReliableSuite) -> None:
    suite = reliable.suite
    names = [spec.name for spec in suite.attacks]
    if len(set(names)) != len(names):
        raise ConfigError(f"suite {suite.name}: attack names must be distinct (they key the stored results): {names}")
    for name in names + [spec.name for spec in reliable.large_eps_attacks]:
        if not ensure_registered(name):
            raise ConfigError(f"suite {suite.name}: unknown attack {name!r}; known: {', '.join(sorted(ATTACKS))}")
    if not 0.0 < reliable.large_eps <= 1.0:
        raise ConfigError(f"suite {suite.name}: large_eps {reliable.large_eps} must be in (0, 1]")
    if reliable.determinism_examples < 1:
        raise ConfigError(f"suite {suite.name}: determinism_examples must be at least 1")


def parse_reliable_suite(data: dict, source: str) -> ReliableSuite:
    suite = parse_suite(data, source)
    section = data.get("reliability") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"suite file {source}: 'reliability' must be a mapping")
    known = {"large_eps", "large_eps_attacks", "reference_attack", "converged_attack", "black_box_attacks",
             "thresholds", "determinism_examples"}
    unknown = set(section) - known
    if unknown:
        raise ConfigError(f"suite file {source}: unknown reliability keys {sorted(unknown)}; known: {sorted(known)}")
    options = {}
    if "large_eps" in section:
        options["large_eps"] = parse_eps(str(section["large_eps"]))
    if "large_eps_attacks" in section:
        options["large_eps_attacks"] = _attack_specs(section["large_eps_attacks"], source)
    for key in ("reference_attack", "converged_attack"):
        if key in section:
            options[key] = str(section[key])
    if "black_box_attacks" in section:
        options["black_box_attacks"] = tuple(str(name) for name in section["black_box_attacks"])
    if "determinism_examples" in section:
        options["determinism_examples"] = int(section["determinism_examples"])
    options["thresholds"] = Thresholds.from_dict(section.get("thresholds"))
    reliable = ReliableSuite(suite=suite, **options)
    _validate(reliable)
    return reliable


def reliable_suite_names() -> list[str]:
    folder = resources.files("htda_bench.suites")
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir()
                  if entry.name.endswith(".yaml") and "reliability" in (yaml.safe_load(entry.read_text()) or {}))


def load_reliable_suite(name: str | Path, **overrides) -> ReliableSuite:
    """A shipped reliable suite by name (``reliable-mnist``) or a YAML file path, with overrides."""
    path = Path(str(name))
    if str(name).endswith((".yaml", ".yml")) and path.is_file():
        text, source = path.read_text(), str(path)
    else:
        entry = resources.files("htda_bench.suites") / f"{name}.yaml"
        if not entry.is_file():
            raise ConfigError(f"unknown reliable suite {name!r}: choose one of {', '.join(reliable_suite_names())}")
        text, source = entry.read_text(), f"{name}.yaml"
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or "reliability" not in data:
        raise ConfigError(f"suite {name} is not a reliable suite (no 'reliability' section); "
                          f"choose one of {', '.join(reliable_suite_names())}")
    reliable = parse_reliable_suite(data, source)
    return reliable.with_overrides(**overrides) if overrides else reliable



__all__ = [
    "DEFAULT_BLACK_BOX", "DEFAULT_LARGE_EPS", "DEFAULT_LARGE_EPS_ATTACKS", "DETERMINISM_EXAMPLES", "LARGE_EPS_SUFFIX",
    "RELIABILITY_CONDITION", "ReliableSuite", "SURROGATE_ATTACK", "load_reliable_suite", "parse_reliable_suite",
    "reliable_suite_names",
]
