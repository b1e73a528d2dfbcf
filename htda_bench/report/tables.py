"""Tables 1-6 of the HTDA paper rebuilt from the results store, with the paper's value beside each.

Every reproduced cell comes from the store (or, without one, from the leaderboard CSVs derived
from it); a cell nothing has computed reads "not run" and its row names the missing model or
suite, so a published number can never pass for a reproduced one.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import ConfigError
from ..leaderboard import leaderboard_frame, read_leaderboard
from ..models.registry import ARCH_WIDTHS
from ..store import ResultsStore, eps_label
from ..suites import load_suite
from .paper import literature_rows, paper_note, paper_value, pgd_setting

NOT_RUN = "not run"
FAMILIES = {"s-snn": "S-SNN", "htda": "HTDA"}
DATASET_SUITES = {"cifar10": "pgd-cifar", "cifar100": "pgd-cifar100", "mnist": "pgd-mnist", "nmnist": "pgd-nmnist"}
VARIANT_DOC = {"torchvision": "original release read by torchvision",
               "cifar10-jpeg": "lossy JPEG mirror of CIFAR-10, not the original",
               "nmnist": "full N-MNIST recordings", "nmnist-small": "a subset of the N-MNIST recordings"}
ALL_TABLES = (1, 2, 3, 4, 5, 6)
ABLATIONS = ((False, False, "s-snn-vgg32c-{d}"), (False, True, "htda-vgg32c-{d}-noattn"),
             (True, False, "htda-vgg32c-{d}-fixedlif"), (True, True, "htda-vgg32c-{d}"))
TARGETS = (("encoder", "htda-vgg32c-{d}"), ("encoder+middle", "htda-vgg32c-{d}-middle"))


def _trio_names(name: str) -> list[str]:
    return [name, f"{name}_paper", f"{name}_diff"]


_EPS_COLUMNS = [c for i in (1, 2, 3) for c in [f"eps{i}"] + _trio_names(f"robust_eps{i}")]
_TAIL = ["n_examples", "seeds", "not_run_reason"]
TABLE_COLUMNS: dict[int, list[str]] = {
    1: ["dataset", "dataset_variant", "arch", "model", "zoo_model", *_trio_names("clean"), *_EPS_COLUMNS, *_TAIL],
    2: ["dataset", "dataset_variant", "arch", "model", "zoo_model", *_trio_names("macs_m"), "macs_change_pct",
        "macs_change_pct_paper", *_trio_names("params_m"), "params_change_pct", "params_change_pct_paper",
        "not_run_reason"],
    3: ["dataset", "dataset_variant", "arch", "model", "zoo_model", *_trio_names("clean"), *_EPS_COLUMNS,
        *_trio_names("params_m"), *_trio_names("macs_m"), *_TAIL],
    4: ["dataset", "dataset_variant", "attention", "learnable_lif", "zoo_model", *_trio_names("clean"), "eps",
        *_trio_names("robust"), *_trio_names("firing_rate"), *_TAIL],
    5: ["dataset", "dataset_variant", "attention_target", "zoo_model", *_trio_names("clean"), *_EPS_COLUMNS,
        *_trio_names("firing_rate"), *_TAIL],
    6: ["dataset", "dataset_variant", "method", "network", "time_steps", "zoo_model", "params_m", "params_m_paper",
        *_trio_names("accuracy"), "not_run_reason"],
}
TITLES = {1: "Clean and PGD robust accuracy (%), mean ± std over seeds",
          2: "Sparse MACs and parameters (millions), S-SNN vs HTDA",
          3: "N-MNIST: clean and PGD robust accuracy (%), parameters and MACs (millions)",
          4: "Ablation: attention x learnable LIF (VGG-32c)",
          5: "Attention targets: encoder vs encoder + middle layers (VGG-32c)",
          6: "Comparison with published SNNs (clean accuracy, %)"}


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(mean, std=math.nan, digits: int = 2) -> str:
    if _missing(mean):
        return NOT_RUN
    return f"{mean:.{digits}f}" if _missing(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _trio(record: dict, name: str, mean, std, paper, digits: int = 2) -> None:
    """Reproduced cell, paper cell ('' where the paper has none) and reproduced minus paper."""
    record[name] = _cell(mean, std, digits)
    record[f"{name}_paper"] = "" if paper is None else _cell(paper[0], paper[1], digits)
    record[f"{name}_diff"] = "" if paper is None or _missing(mean) else round(float(mean) - paper[0], digits)


class ResultsSource:
    """Leaderboard frames and run records per suite: from the results store when it has the suite,
    else from ``<leaderboards>/<suite>.csv``; ``origin`` says which, for the report index."""

    def __init__(self, store_path: str | os.PathLike | None, leaderboards_dir: str | os.PathLike | None):
        self.store_path = None if store_path is None else Path(store_path)
        self.leaderboards_dir = None if leaderboards_dir is None else Path(leaderboards_dir)
        exists = self.store_path is not None and self.store_path.is_file()
        self.store = ResultsStore(self.store_path) if exists else None
        self.origin: dict[str, str] = {}
        self._frames: dict[str, pd.DataFrame] = {}

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def protocol(self, suite: str) -> str:
        return load_suite(suite).protocol_version

    def eps(self, suite: str) -> tuple[float, ...]:
        return load_suite(suite).eps

    def frame(self, suite: str) -> pd.DataFrame:
        if suite not in self._frames:
            frame = pd.DataFrame()
            if self.store is not None:
                frame = leaderboard_frame(self.store, suite, self.protocol(suite))
                self.origin[suite] = f"results store {self.store_path}"
            if frame.empty and self.leaderboards_dir is not None:
                try:
                    frame = read_leaderboard(self.leaderboards_dir, suite)
                    frame = frame[frame["protocol_version"] == self.protocol(suite)].reset_index(drop=True)
                    self.origin[suite] = f"leaderboard {self.leaderboards_dir / (suite + '.csv')}"
                except ConfigError:
                    pass
            if frame.empty:
                self.origin[suite] = "not run"
            self._frames[suite] = frame
        return self._frames[suite]

    def row(self, suite: str, model: str) -> pd.Series | None:
        frame = self.frame(suite)
        rows = frame[frame["model"] == model] if not frame.empty else frame
        return None if rows.empty else rows.iloc[0]

    def variant(self, suite: str) -> str:
        frame = self.frame(suite)
        values = sorted({v for v in frame.get("dataset_variant", []) if isinstance(v, str) and v})
        return ", ".join(values) if values else ("unknown" if not frame.empty else NOT_RUN)

    def runs(self, suite: str) -> list[dict]:
        """The latest run record of every model in the suite's table (the run its row comes from)."""
        frame = self.frame(suite)
        records = []
        for model in frame.get("model", []):
            record = None
            if self.store is not None:
                runs = self.store.runs_frame(suite=suite, protocol_version=self.protocol(suite), model=model)
                if not runs.empty:
                    record = runs.sort_values(["finished", "started"], na_position="first").iloc[-1].to_dict()
            if record is None and self.leaderboards_dir is not None:
                path = self.leaderboards_dir / "runs" / suite / f"{model}.json"
                if path.is_file():
                    record = json.loads(path.read_text())
            if record is not None:
                records.append({key: record.get(key) for key in (
                    "suite", "protocol_version", "model", "run_id", "dataset_variant", "n_examples", "seeds",
                    "finished", "git_commit")})
        return records

    def metric_rows(self, suite: str, metric: str, condition: str = "clean") -> pd.DataFrame:
        """Per-seed metric rows for the weights and dataset each leaderboard row was built from."""
        frame = self.frame(suite)
        if self.store is None or frame.empty:
            return pd.DataFrame(columns=["model", "seed", "value", "payload"])
        rows = self.store.metrics_frame(suite=suite, protocol_version=self.protocol(suite), metric=metric,
                                        condition=condition)
        keep = pd.Series(False, index=rows.index)
        for row in frame.itertuples():
            keep |= ((rows["model"] == row.model) & rows["weights_sha256"].str.startswith(str(row.weights_sha256))
                     & rows["dataset_fingerprint"].str.startswith(str(row.dataset_fingerprint)))
        return rows[keep].reset_index(drop=True)


@dataclass
class ReportTable:
    number: int
    title: str
    frame: pd.DataFrame
    suites: list[str] = field(default_factory=list)
    variants: dict[str, str] = field(default_factory=dict)  # dataset -> variant(s) used
    notes: list[str] = field(default_factory=list)


def _reason(source: ResultsSource, suite: str, model: str, row, missing_eps: list[str]) -> str:
    if source.frame(suite).empty:
        return f"suite {suite} not run (no results in the store or leaderboards)"
    if row is None:
        return f"model {model} not run in suite {suite}"
    if missing_eps:
        return f"model {model} not run at eps {', '.join(missing_eps)} in suite {suite}"
    return ""


def _accuracy_record(source: ResultsSource, suite: str, model: str, paper_key: tuple) -> dict:
    """clean, eps1..eps3 trios (paper_key: table, dataset, arch, paper model) plus provenance."""
    row = source.row(suite, model)
    table, dataset, arch, paper_model = paper_key
    record: dict = {"dataset": dataset, "dataset_variant": source.variant(suite), "zoo_model": model}
    get = (lambda column: row.get(column, math.nan)) if row is not None else (lambda column: math.nan)
    _trio(record, "clean", get("clean_acc_mean"), get("clean_acc_std"),
          paper_value(table, dataset, arch, paper_model, "clean", "accuracy_pct"))
    missing = []
    for index, eps in enumerate(source.eps(suite), start=1):
        label = eps_label(eps)
        record[f"eps{index}"] = f"{label}/255"
        mean = get(f"robust_acc_eps{label}_mean")
        if _missing(mean):
            missing.append(f"{label}/255")
        _trio(record, f"robust_eps{index}", mean, get(f"robust_acc_eps{label}_std"),
              paper_value(table, dataset, arch, paper_model, pgd_setting(eps), "accuracy_pct"))
    record["firing"] = (get("firing_rate_mean"), get("firing_rate_std"))
    record["metrics"] = {name: get(name) for name in ("params_m", "macs_m")}
    record["n_examples"] = "" if row is None else int(row["n_examples"])
    record["seeds"] = "" if row is None else str(row["seeds"])
    record["not_run_reason"] = _reason(source, suite, model, row, missing if row is not None else [])
    return record


def _archs(source: ResultsSource, suite: str, dataset: str) -> list[str]:
    """The paper's architectures plus any other base-named one the suite has results for."""
    found = [m.split("-")[-2] for m in source.frame(suite).get("model", []) if str(m).endswith(f"-{dataset}")]
    return list(dict.fromkeys([*ARCH_WIDTHS, *sorted(a for a in found if a.startswith("vgg"))]))


def _finish(number: int, records: list[dict], suites: list[str], source: ResultsSource,
            notes: list[str]) -> ReportTable:
    for record in records:  # every "not run" cell gets a footnote naming what is missing
        empty = [c for c in TABLE_COLUMNS[number] if record.get(c) == NOT_RUN]
        if empty and not record.get("not_run_reason"):
            record["not_run_reason"] = f"{record.get('zoo_model') or 'model'}: {', '.join(empty)} not computed"
    frame = pd.DataFrame(records).reindex(columns=TABLE_COLUMNS[number]).astype(object)
    frame = frame.where(frame.notna(), "")
    variants = {load_suite(s).dataset: source.variant(s) for s in suites}
    return ReportTable(number, TITLES[number], frame, suites, variants, notes)


def table1(source: ResultsSource) -> ReportTable:
    records, suites = [], []
    for dataset in ("cifar10", "cifar100", "mnist"):
        suite = DATASET_SUITES[dataset]
        suites.append(suite)
        for arch in _archs(source, suite, dataset):
            for family, label in FAMILIES.items():
                model = f"{family}-{arch}-{dataset}"
                record = _accuracy_record(source, suite, model, (1, dataset, arch, family))
                records.append({**record, "arch": arch, "model": label})
    notes = ["eps1..eps3 are the suite's eps: 1, 2, 3/255 (CIFAR) and 20, 40, 60/255 (MNIST)."]
    return _finish(1, records, suites, source, notes + paper_note(1))


def _change(value, base):
    if _missing(value) or _missing(base) or base == 0:
        return NOT_RUN
    return round(100.0 * (value - base) / base, 1)


def table2(source: ResultsSource) -> ReportTable:
    records, suites = [], []
    for dataset in ("cifar10", "cifar100", "mnist"):
        suite = DATASET_SUITES[dataset]
        if dataset != "cifar10" and source.frame(suite).empty:
            continue  # the paper's Table 2 is CIFAR-10; other datasets only where we have results
        suites.append(suite)
        for arch in _archs(source, suite, dataset):
            values, papers = {}, {}
            for family, label in FAMILIES.items():
                model = f"{family}-{arch}-{dataset}"
                row = source.row(suite, model)
                record = {"dataset": dataset, "dataset_variant": source.variant(suite), "arch": arch,
                          "model": label, "zoo_model": model,
                          "not_run_reason": _reason(source, suite, model, row, [])}
                for metric, digits in (("macs_m", 2), ("params_m", 3)):
                    value = math.nan if row is None else row.get(metric, math.nan)
                    paper = paper_value(2, dataset, arch, family, "clean" if metric == "macs_m" else "", metric)
                    _trio(record, metric, value, math.nan, paper, digits)
                    values[family, metric], papers[family, metric] = value, paper
                    if family == "htda":
                        short = metric.split("_")[0]
                        record[f"{short}_change_pct"] = _change(value, values["s-snn", metric])
                        base = papers["s-snn", metric]
                        record[f"{short}_change_pct_paper"] = "" if paper is None or base is None else \
                            _change(paper[0], base[0])
                records.append(record)
    notes = ["*_change_pct: HTDA relative to S-SNN of the same arch and dataset, in % (empty on S-SNN rows).",
             "MACs are sparse (only neurons that fired cause synaptic work), attention ANN included."]
    return _finish(2, records, suites, source, notes)


def table3(source: ResultsSource) -> ReportTable:
    suite, records = DATASET_SUITES["nmnist"], []
    for arch in ("vgg32c", "vgg64c"):
        for family, label in FAMILIES.items():
            model = f"{family}-{arch}-nmnist"
            record = _accuracy_record(source, suite, model, (3, "nmnist", arch, family))
            record.update(arch=arch, model=label)
            for metric, digits in (("params_m", 3), ("macs_m", 2)):
                paper = paper_value(3, "nmnist", arch, family, "clean" if metric == "macs_m" else "", metric)
                _trio(record, metric, record["metrics"][metric], math.nan, paper, digits)
            records.append(record)
    return _finish(3, records, [suite], source, paper_note(3))


def _firing_trio(record: dict, paper) -> None:
    mean, std = record["firing"]
    _trio(record, "firing_rate", mean, std, paper)


def table4(source: ResultsSource) -> ReportTable:
    records, suites = [], []
    for dataset in ("cifar10", "mnist"):
        suite = DATASET_SUITES[dataset]
        suites.append(suite)
        second = source.eps(suite)[1]
        for attention, learnable, pattern in ABLATIONS:
            model = pattern.format(d=dataset)
            paper_model = f"attention={'yes' if attention else 'no'},learnable={'yes' if learnable else 'no'}"
            record = _accuracy_record(source, suite, model, (4, dataset, "vgg32c", paper_model))
            record.update(attention="yes" if attention else "no", learnable_lif="yes" if learnable else "no",
                          eps=record["eps2"])
            for part in ("", "_paper", "_diff"):
                record[f"robust{part}"] = record[f"robust_eps2{part}"]
            if source.row(suite, model) is not None:  # only the 2nd eps matters here
                record["not_run_reason"] = "" if record["robust"] != NOT_RUN else \
                    f"model {model} not run at eps {eps_label(second)}/255 in suite {suite}"
            _firing_trio(record, paper_value(4, dataset, "vgg32c", paper_model, "clean", "firing_rate_pct"))
            records.append(record)
    notes = ["Robustness is PGD at each suite's 2nd eps: 2/255 on CIFAR-10, 40/255 on MNIST.",
             "The paper's Table 4 is CIFAR-10 only: MNIST rows have no paper value.",
             "firing_rate: % of feature-extractor neurons firing on clean inputs, mean ± std over seeds."]
    return _finish(4, records, suites, source, notes + paper_note(4))


def table5(source: ResultsSource) -> ReportTable:
    records, suites = [], []
    for dataset in ("cifar10", "mnist"):
        suite = DATASET_SUITES[dataset]
        suites.append(suite)
        for target, pattern in TARGETS:
            paper_model = f"htda attention target={target}"
            record = _accuracy_record(source, suite, pattern.format(d=dataset), (5, dataset, "vgg32c", paper_model))
            record["attention_target"] = target
            _firing_trio(record, paper_value(5, dataset, "vgg32c", paper_model, "clean", "firing_rate_pct"))
            records.append(record)
    notes = ["The paper's Table 5 is CIFAR-10 only: MNIST rows have no paper value."]
    return _finish(5, records, suites, source, notes)


def _time_steps(model: str, dataset: str) -> int:
    from ..data.datasets import get_spec
    from ..zoo import get_card

    try:
        return int(get_card(model)["model_config"]["time_steps"])
    except Exception:  # not in the zoo, or an older card: the dataset's K
        return get_spec(dataset).time_steps


def table6(source: ResultsSource) -> ReportTable:
    records, suites = [], []
    for dataset in ("cifar10", "cifar100", "mnist"):
        suite = DATASET_SUITES[dataset]
        suites.append(suite)
        variant = source.variant(suite)
        for row in literature_rows(dataset).itertuples():
            records.append({"dataset": dataset, "dataset_variant": "", "method": row.method, "network": row.network,
                            "time_steps": "" if row.time_steps is None else row.time_steps, "zoo_model": "",
                            "params_m": NOT_RUN,
                            "params_m_paper": "" if _missing(row.params_m) else f"{row.params_m:g}",
                            "accuracy": NOT_RUN, "accuracy_paper": _cell(row.accuracy, row.accuracy_std),
                            "accuracy_diff": "",
                            "not_run_reason": "published result (paper Table 6), not reproduced by htda-bench"})
        frame = source.frame(suite)
        for family, label in FAMILIES.items():
            names = [f"{family}-{arch}-{dataset}" for arch in ARCH_WIDTHS]
            mine = frame[frame["model"].isin(names)] if not frame.empty else frame
            record = {"dataset": dataset, "dataset_variant": variant, "method": f"{label} (htda-bench, best zoo model)"}
            if mine.empty:
                record.update(network="", time_steps="", zoo_model="", params_m=NOT_RUN, params_m_paper="",
                              accuracy=NOT_RUN, accuracy_paper="", accuracy_diff="",
                              not_run_reason=f"no {family} model of {dataset} has results in suite {suite}")
            else:
                best = mine.sort_values("clean_acc_mean", ascending=False, kind="stable").iloc[0]
                arch = best["arch"]
                paper = paper_value(1, dataset, arch, family, "clean", "accuracy_pct")
                network = f"VGG-{arch[3:]}"
                published = literature_rows(dataset)
                published = published[(published["method"] == f"{label} (paper)") & (published["network"] == network)]
                params = paper_value(2, dataset, arch, family, "", "params_m")
                params = params[0] if params else (published["params_m"].iloc[0] if len(published) else "")
                record.update(network=network, time_steps=_time_steps(best["model"], dataset), zoo_model=best["model"],
                              params_m=_cell(best["params_m"], digits=3), params_m_paper=params, not_run_reason="")
                _trio(record, "accuracy", best["clean_acc_mean"], best["clean_acc_std"], paper)
            records.append(record)
    notes = ["Our rows' paper column is the paper's Table 1 value for the same arch, family and dataset.",
             "Literature rows are the paper's Table 6, shown only in the paper columns."]
    return _finish(6, records, suites, source, notes)


BUILDERS = {1: table1, 2: table2, 3: table3, 4: table4, 5: table5, 6: table6}


def build_table(number: int, source: ResultsSource) -> ReportTable:
    if number not in BUILDERS:
        raise ConfigError(f"unknown table {number}: choose from {', '.join(map(str, ALL_TABLES))}")
    return BUILDERS[number](source)
