"""Evaluate models under a suite: clean and adversarial outcomes per example into the store.

Data flows one way: data -> model -> attack -> metrics -> store. Every per-example outcome is
written as soon as its batch is scored, keyed so that a killed run started again with the same
command skips what is stored and computes the rest; the final numbers equal an uninterrupted
run's because each example's random start depends only on (seed, example index).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .. import __version__
from ..attacks import build_attack
from ..data import Split
from ..distributed import World, current_world
from ..leaderboard import eps_label
from ..metrics.spikes import (SpikeRecorder, firing_rate_per_example, operation_counts, parameter_count,
                              record_firing)
from ..models.speed import for_evaluation
from ..store import OutcomeKey, ResultsStore
from ..suites import Suite
from ..utils import git_commit, package_versions

CLEAN = "clean"
MATRIX_EXAMPLES = 256  # clean examples for the layer x step firing-rate matrix (Fig. 5)
OPS_EXAMPLES = 16  # clean examples for operation counting (slow: a dispatch-mode forward)


@dataclass
class Target:
    """One model to evaluate, with the identity its results are stored under."""

    name: str
    model: torch.nn.Module
    weights_sha256: str


def condition_name(attack: str, eps: float) -> str:
    return CLEAN if attack == CLEAN else f"{attack}@eps{eps_label(eps)}"


def _progress(enabled: bool) -> Progress:
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
    return Progress(*columns, disable=not enabled, transient=False)


class SuiteRunner:
    """Runs one suite over a list of targets into a store.

    Under torchrun the examples still to do are split into rounds of ``world size x batch size``;
    rank r scores the r-th batch of each round (the very batches a single process would form),
    and rank 0, the only one holding the store, writes every rank's outcomes after each round.
    """

    def __init__(self, suite: Suite, split: Split, store: ResultsStore | None, show_progress: bool = True,
                 on_batch: Callable[[str, int], None] | None = None, world: World | None = None):
        self.suite = suite
        self.split = split
        self.store = store
        self.world = world or current_world()
        self.show_progress = show_progress and self.world.is_root
        self.on_batch = on_batch  # called after each stored batch (tests interrupt runs with it)
        count = min(suite.n_examples, len(split))
        self.indices = torch.arange(count)
        self.fingerprint = split.fingerprint

    def key(self, target: Target, seed: int, attack: str, eps: float) -> OutcomeKey:
        return OutcomeKey(suite=self.suite.name, protocol_version=self.suite.protocol_version, model=target.name,
                          weights_sha256=target.weights_sha256, dataset_fingerprint=self.fingerprint,
                          seed=seed, attack=attack, eps=float(eps))

    def _rounds(self, todo: list[int]):
        """Per round: this rank's batch (index, images, labels), or None when it has none."""
        size, ranks = self.suite.batch_size, self.world.size
        for start in range(0, len(todo), size * ranks):
            mine = todo[start + self.world.rank * size : start + (self.world.rank + 1) * size]
            if not mine:
                yield None
                continue
            index = torch.tensor(mine, dtype=torch.long)
            yield index, self.split.as_float(index), self.split.labels[index]

    def _score(self, model, recorder: SpikeRecorder | None, images: torch.Tensor, labels: torch.Tensor):
        if recorder is None:  # a model without spiking layers: no firing rate
            with torch.no_grad():
                return model(images).argmax(1) == labels, None
        recorder.clear()
        recorder.enabled = True
        with torch.no_grad():
            logits = model(images)
        counts, neurons = recorder.counts()
        recorder.enabled = False
        return (logits.argmax(1) == labels), firing_rate_per_example(counts, neurons)

    def run(self, target: Target) -> dict | None:
        """Evaluate one target; returns the run record stored (None on ranks other than 0)."""
        model = for_evaluation(target.model)  # eval mode, input gradients only, fast paths on
        run_id = uuid.uuid4().hex[:12]
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
        spiking = bool(list(model.spiking_layers()))
        with (SpikeRecorder(model) if spiking else contextlib.nullcontext()) as recorder, \
                _progress(self.show_progress) as progress:
            if recorder is not None:
                recorder.enabled = False
            self._run_condition(target, recorder, progress, CLEAN, 0.0)
            for attack_spec in self.suite.attacks:
                for eps in self.suite.eps:
                    self._run_condition(target, recorder, progress, attack_spec, eps)
        if not self.world.is_root:
            return None
        self._model_metrics(target)
        record = {
            "run_id": run_id, "suite": self.suite.name, "protocol_version": self.suite.protocol_version,
            "model": target.name, "started": started,
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"),
            "config": self.suite.to_dict(), "config_hash": self.suite.config_hash, "partial": self.suite.partial,
            "git_commit": git_commit(), "dataset_fingerprint": self.fingerprint,
            "dataset_variant": self.split.variant, "n_examples": len(self.indices),
            "seeds": list(self.suite.seeds), "weights_sha256": target.weights_sha256,
            "package_versions": package_versions(),
            "htda_bench_version": __version__,
            "firing_rates": self._firing_rates_by_condition(target),
        }
        self.store.add_run(record)
        return record

    def _run_condition(self, target: Target, recorder, progress, attack_spec, eps: float) -> None:
        attack_name = CLEAN if attack_spec == CLEAN else attack_spec.name
        # clean outcomes do not depend on the seed: compute once, store under every seed's key
        seeds = [None] if attack_name == CLEAN else list(self.suite.seeds)
        for seed in seeds:
            keys = [self.key(target, s, attack_name, eps) for s in (self.suite.seeds if seed is None else [seed])]
            todo = None
            if self.world.is_root:
                done = set.intersection(*(self.store.done_indices(key) for key in keys))
                todo = [int(i) for i in self.indices if int(i) not in done]
            if self.world.is_root and attack_name != CLEAN and self.suite.attack_clean_correct_only:
                todo = self._store_clean_failures(target, keys, todo)
            todo = self.world.broadcast(todo)
            label = condition_name(attack_name, eps) + ("" if seed is None else f" seed {seed}")
            task = progress.add_task(f"{target.name} {label}", total=len(self.indices),
                                     completed=len(self.indices) - len(todo), rate="")
            attack = None
            if attack_name != CLEAN and todo:
                attack = build_attack(attack_name, target.model, eps=eps, seed=seed,
                                      steps=attack_spec.steps, step_size=attack_spec.step_size)
                if hasattr(attack, "random_start"):
                    attack.random_start = attack_spec.random_start
            for batch in self._rounds(todo):
                began = time.perf_counter()
                result = None
                if batch is not None:
                    index, images, labels = batch
                    if attack is not None:
                        images = attack(images, labels, index)  # validity-checked inside
                    correct, firing = self._score(target.model, recorder, images, labels)
                    result = (index.tolist(), correct.tolist(), None if firing is None else firing.tolist())
                gathered = self.world.gather(result)
                if not self.world.is_root:
                    continue
                scored = [part for part in gathered if part is not None]
                for indices, correct, firing in scored:
                    for key in keys:
                        self.store.add_outcomes(key, indices, correct, firing_rates=firing)
                count = sum(len(part[0]) for part in scored)
                rate = count / (time.perf_counter() - began)
                progress.update(task, advance=count, rate=f"{rate:.1f} examples/s")
                if self.on_batch is not None:
                    self.on_batch(label, scored[-1][0][-1])
            if self.world.is_root:
                for key in keys:
                    self._firing_metric(target, key)

    def _store_clean_failures(self, target: Target, keys: list[OutcomeKey], todo: list[int]) -> list[int]:
        """Protocol option ``attack_clean_correct_only``: store the examples that are wrong on clean
        input as not robust (no firing rate: they were not attacked); return the rest to attack."""
        clean = self.store.outcomes_frame(**{**self._key_filter(self.key(target, self.suite.seeds[0], CLEAN, 0.0)),
                                              "attack": CLEAN})
        wrong = set(clean.loc[clean["correct"] == 0, "example_index"].astype(int))
        skipped = [index for index in todo if index in wrong]
        for key in keys:
            self.store.add_outcomes(key, skipped, [False] * len(skipped))
        return [index for index in todo if index not in wrong]

    @staticmethod
    def _key_filter(key: OutcomeKey) -> dict:
        fields = ("suite", "protocol_version", "model", "weights_sha256", "dataset_fingerprint", "seed")
        return {name: getattr(key, name) for name in fields}

    def _firing_metric(self, target: Target, key: OutcomeKey) -> None:
        """Mean per-example firing rate of this key's stored outcomes (resume-safe: read from the store),
        over the examples that were run (all of them, unless clean failures were skipped)."""
        frame = self.store.outcomes_frame(**self._key_filter(key), attack=key.attack, eps_key=key.eps_key)
        frame = frame[frame["example_index"] < len(self.indices)]
        if self.suite.attack_clean_correct_only:
            frame = frame[frame["firing_rate"].notna()]
        if len(frame) and frame["firing_rate"].notna().all():
            self.store.set_metric(key, condition=condition_name(key.attack, key.eps), metric="firing_rate",
                                  value=100.0 * float(frame["firing_rate"].mean()))

    def _firing_rates_by_condition(self, target: Target) -> dict[str, float]:
        """Mean over seeds of the % of extractor neurons firing, per condition (clean, each attack@eps)."""
        frame = self.store.metrics_frame(suite=self.suite.name, model=target.name, metric="firing_rate",
                                         weights_sha256=target.weights_sha256,
                                         dataset_fingerprint=self.fingerprint)
        frame = frame[frame["seed"].isin(self.suite.seeds)]
        return {condition: round(float(group["value"].mean()), 4) for condition, group in frame.groupby("condition")}

    def _model_metrics(self, target: Target) -> None:
        """Seed-independent metrics on clean inputs: firing matrix, MACs, parameters."""
        model = target.model
        first = self.split.as_float(slice(0, min(MATRIX_EXAMPLES, len(self.indices))))
        matrix = record_firing(model, first)["matrix"] if list(model.spiking_layers()) else None
        ops = operation_counts(model, first[:OPS_EXAMPLES])
        params = parameter_count(model) / 1e6
        for seed in self.suite.seeds:
            key = self.key(target, seed, CLEAN, 0.0)
            if matrix is not None:
                self.store.set_metric(key, condition=CLEAN, metric="firing_rate_matrix",
                                      value=100.0 * float(matrix.mean()), payload=(100.0 * matrix).tolist())
            for metric in ("macs_m", "synops_m", "dense_macs_m"):
                self.store.set_metric(key, condition=CLEAN, metric=metric, value=ops[metric])
            self.store.set_metric(key, condition=CLEAN, metric="params_m", value=params)
