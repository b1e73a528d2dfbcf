"""SQLite results store: one row per example outcome, so interrupted runs resume and stores merge.

Every per-example result is keyed by everything that decides it (suite, protocol, model weights,
dataset bytes, seed, attack, eps, example), so rows written twice, by a resumed run or by merging
overlapping stores, collapse into one. WAL mode and a busy timeout let several processes write.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import ConfigError
from .utils import atomic_path

DEFAULT_STORE_PATH = Path("results/htda-bench.sqlite")
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 60_000

MODEL_KEY_FIELDS = ("suite", "protocol_version", "model", "weights_sha256", "dataset_fingerprint", "seed")
OUTCOME_KEY_FIELDS = MODEL_KEY_FIELDS + ("attack", "eps")
# firing_rate: the example's extractor firing rate (fraction) on the scored input; NULL if unknown
OUTCOME_COLUMNS = MODEL_KEY_FIELDS + ("attack", "eps", "eps_key", "example_index", "correct", "firing_rate")
METRIC_COLUMNS = MODEL_KEY_FIELDS + ("condition", "metric", "value", "payload")
RUN_COLUMNS = ("run_id", "suite", "protocol_version", "model", "weights_sha256", "started", "finished",
               "config_json", "config_hash", "git_commit", "dataset_fingerprint", "dataset_variant",
               "n_examples", "seeds", "extra_json")

_MODEL_KEY_SQL = ("suite TEXT NOT NULL, protocol_version TEXT NOT NULL, model TEXT NOT NULL, "
                  "weights_sha256 TEXT NOT NULL, dataset_fingerprint TEXT NOT NULL, seed INTEGER NOT NULL")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS outcomes (
    {_MODEL_KEY_SQL}, attack TEXT NOT NULL, eps REAL NOT NULL, eps_key TEXT NOT NULL,
    example_index INTEGER NOT NULL, correct INTEGER NOT NULL CHECK (correct IN (0, 1)), firing_rate REAL,
    PRIMARY KEY ({", ".join(MODEL_KEY_FIELDS)}, attack, eps_key, example_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS model_metrics (
    {_MODEL_KEY_SQL}, condition TEXT NOT NULL, metric TEXT NOT NULL, value REAL, payload TEXT,
    PRIMARY KEY ({", ".join(MODEL_KEY_FIELDS)}, condition, metric)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, suite TEXT, protocol_version TEXT, model TEXT, weights_sha256 TEXT,
    started TEXT, finished TEXT, config_json TEXT, config_hash TEXT, git_commit TEXT,
    dataset_fingerprint TEXT, dataset_variant TEXT, n_examples INTEGER, seeds TEXT, extra_json TEXT
);
"""


def eps_label(eps: float) -> str:
    """eps in 1/255 units with at most 4 decimals ('20', '1', '0.5'): a stable text key for a float."""
    text = f"{float(eps) * 255:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


@dataclass(frozen=True)
class OutcomeKey:
    """Everything that decides one example's outcome except the example itself."""

    suite: str
    protocol_version: str
    model: str
    weights_sha256: str
    dataset_fingerprint: str
    seed: int
    attack: str
    eps: float

    def __post_init__(self) -> None:
        for name in ("suite", "protocol_version", "model", "weights_sha256", "dataset_fingerprint", "attack"):
            object.__setattr__(self, name, str(getattr(self, name)))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "eps", float(self.eps))

    @property
    def eps_key(self) -> str:
        return eps_label(self.eps)


def _fields(key, names: Sequence[str]) -> dict:
    """Pull ``names`` out of a mapping or dataclass, failing loudly on a missing one."""
    source = dataclasses.asdict(key) if dataclasses.is_dataclass(key) else dict(key)
    missing = [name for name in names if name not in source]
    if missing:
        raise ValueError(f"result key lacks {', '.join(missing)}")
    return {name: source[name] for name in names}


def as_outcome_key(key) -> OutcomeKey:
    return key if isinstance(key, OutcomeKey) else OutcomeKey(**_fields(key, OUTCOME_KEY_FIELDS))


def _model_key_values(key) -> tuple:
    values = _fields(key, MODEL_KEY_FIELDS)
    return tuple(int(v) if name == "seed" else str(v) for name, v in values.items())


def _decode_column(frame: pd.DataFrame, column: str) -> None:
    """Parse a JSON text column in place; pandas turns SQL NULL into None or NaN."""
    values = [json.loads(text) if isinstance(text, str) else None for text in frame[column]]
    frame[column] = pd.Series(values, index=frame.index, dtype=object)


def _json_default(value):
    if hasattr(value, "tolist"):  # numpy arrays and torch tensors
        return value.tolist()
    return str(value)


class ResultsStore:
    """A results database file; safe to open from several processes at once."""

    def __init__(self, path: str | os.PathLike = DEFAULT_STORE_PATH):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: every write below opens its own BEGIN IMMEDIATE transaction, which takes
        # the write lock up front so the busy timeout applies instead of failing on lock upgrade.
        self._connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            if self._connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                self._connection.execute("PRAGMA journal_mode = WAL")
            self._connection.execute("PRAGMA synchronous = NORMAL")
            version = self._connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConfigError(f"results store {self.path} was written by a newer htda-bench "
                                  f"(schema {version}); upgrade htda-bench to read it")
            if version < SCHEMA_VERSION:  # only a new file needs the write lock when opened
                with self._transaction() as connection:
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        connection.execute(statement)
                    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as error:
            self._connection.close()
            raise ConfigError(f"cannot use {self.path} as an htda-bench results store: {error}") from error

    # -- plumbing -------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back if the block raises."""
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield self._connection
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _frame(self, table: str, columns: Sequence[str], filters: Mapping,
               order: Sequence[str]) -> pd.DataFrame:
        unknown = set(filters) - set(columns)
        if unknown:
            raise ValueError(f"cannot filter {table} by {', '.join(sorted(unknown))}")
        used = {name: value for name, value in filters.items() if value is not None}
        where = " AND ".join(f"{name} = ?" for name in used) or "1"
        query = f"SELECT {', '.join(columns)} FROM {table} WHERE {where} ORDER BY {', '.join(order)}"
        return pd.read_sql_query(query, self._connection, params=list(used.values()))

    # -- outcomes -------------------------------------------------------------------------------
    def add_outcomes(self, key, indices: Sequence[int], correct: Sequence,
                     firing_rates: Sequence[float] | None = None) -> int:
        """Store per-example outcomes (and optionally firing rates) in one transaction; rows already
        present are kept as they are (first write wins). Returns how many rows were new."""
        key = as_outcome_key(key)
        indices, correct = list(indices), list(correct)
        rates = [None] * len(indices) if firing_rates is None else [float(rate) for rate in firing_rates]
        if not len(indices) == len(correct) == len(rates):
            raise ValueError(f"{len(indices)} example indices but {len(correct)} outcomes, {len(rates)} rates")
        prefix = _model_key_values(key) + (key.attack, key.eps, key.eps_key)
        rows = [prefix + (int(index), int(bool(ok)), rate) for index, ok, rate in zip(indices, correct, rates)]
        with self._transaction() as connection:
            before = connection.total_changes
            connection.executemany(
                f"INSERT OR IGNORE INTO outcomes ({', '.join(OUTCOME_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(OUTCOME_COLUMNS))})", rows)
            return connection.total_changes - before

    def done_indices(self, key, indices: Sequence[int] | None = None) -> set[int]:
        """Example indices already stored for ``key`` (restricted to ``indices`` if given)."""
        key = as_outcome_key(key)
        where = " AND ".join(f"{name} = ?" for name in MODEL_KEY_FIELDS + ("attack", "eps_key"))
        cursor = self._connection.execute(f"SELECT example_index FROM outcomes WHERE {where}",
                                          _model_key_values(key) + (key.attack, key.eps_key))
        done = {row[0] for row in cursor}
        return done if indices is None else done & {int(index) for index in indices}

    def outcomes_frame(self, **filters) -> pd.DataFrame:
        """All outcome rows, optionally filtered by equality on any column (None = no filter)."""
        order = MODEL_KEY_FIELDS + ("attack", "eps", "example_index")
        return self._frame("outcomes", OUTCOME_COLUMNS, filters, order)

    def outcome_counts(self, suite: str, protocol_version: str) -> pd.DataFrame:
        """Per (model, weights, dataset, seed, attack, eps) example and correct counts, aggregated
        in SQL so a leaderboard never loads millions of rows."""
        columns = MODEL_KEY_FIELDS[2:] + ("attack", "eps_key")
        query = (f"SELECT {', '.join(columns)}, MIN(eps) AS eps, COUNT(*) AS n, SUM(correct) AS n_correct "
                 f"FROM outcomes WHERE suite = ? AND protocol_version = ? GROUP BY {', '.join(columns)}")
        return pd.read_sql_query(query, self._connection, params=[suite, str(protocol_version)])

    # -- metrics --------------------------------------------------------------------------------
    def set_metric(self, key, *, condition: str, metric: str, value: float | None, payload=None) -> None:
        """Store one model-level metric; ``key`` needs the model-key fields (attack/eps are ignored).
        ``payload`` holds arrays (JSON); writing the same metric again replaces it."""
        row = _model_key_values(key) + (
            str(condition), str(metric), None if value is None else float(value),
            None if payload is None else json.dumps(payload, default=_json_default))
        with self._transaction() as connection:
            connection.execute(f"INSERT OR REPLACE INTO model_metrics ({', '.join(METRIC_COLUMNS)}) "
                               f"VALUES ({', '.join('?' * len(METRIC_COLUMNS))})", row)

    def metrics_frame(self, **filters) -> pd.DataFrame:
        """Metric rows with ``payload`` decoded from JSON (None where absent)."""
        frame = self._frame("model_metrics", METRIC_COLUMNS, filters, METRIC_COLUMNS[:8])
        _decode_column(frame, "payload")
        return frame

    # -- runs -----------------------------------------------------------------------------------
    def add_run(self, record: Mapping) -> None:
        """Store a run record (replacing one with the same run_id). ``config`` (a dict) goes to
        config_json, ``seeds`` is kept as JSON, and keys without a column go to extra_json."""
        record = dict(record)
        if not record.get("run_id"):
            raise ValueError("run record lacks run_id")
        if "config" in record:
            record["config_json"] = json.dumps(record.pop("config"), sort_keys=True, default=_json_default)
        if record.get("seeds") is not None and not isinstance(record["seeds"], str):
            record["seeds"] = json.dumps([int(seed) for seed in record["seeds"]])
        extra = {name: value for name, value in record.items() if name not in RUN_COLUMNS}
        record["extra_json"] = json.dumps(extra, sort_keys=True, default=_json_default) if extra else None
        row = tuple(record.get(name) for name in RUN_COLUMNS)
        with self._transaction() as connection:
            connection.execute(f"INSERT OR REPLACE INTO runs ({', '.join(RUN_COLUMNS)}) "
                               f"VALUES ({', '.join('?' * len(RUN_COLUMNS))})", row)

    def runs_frame(self, suite: str | None = None, **filters) -> pd.DataFrame:
        """Run records with ``seeds`` decoded into lists."""
        frame = self._frame("runs", RUN_COLUMNS, {"suite": suite, **filters}, ("started", "run_id"))
        _decode_column(frame, "seeds")
        return frame

    # -- merging --------------------------------------------------------------------------------
    def merge_from(self, other_path: str | os.PathLike) -> dict[str, int]:
        """Copy every row of another store into this one: outcomes already present are kept,
        metrics and runs are replaced. Returns the rows added or replaced per table."""
        other_path = Path(other_path)
        if not other_path.is_file():
            raise ConfigError(f"results store {other_path} does not exist")
        added, attached = {}, False
        try:
            self._connection.execute("ATTACH DATABASE ? AS source", (str(other_path),))
            attached = True
            tables = {row[0] for row in self._connection.execute(
                "SELECT name FROM source.sqlite_master WHERE type = 'table'")}
            if "outcomes" not in tables:
                raise sqlite3.DatabaseError("it has no outcomes table")
            plan = (("outcomes", "INSERT OR IGNORE", OUTCOME_COLUMNS),
                    ("model_metrics", "INSERT OR REPLACE", METRIC_COLUMNS),
                    ("runs", "INSERT OR REPLACE", RUN_COLUMNS))
            with self._transaction() as connection:
                for table, verb, columns in plan:
                    if table not in tables:
                        continue
                    before = connection.total_changes
                    names = ", ".join(columns)
                    connection.execute(
                        f"{verb} INTO main.{table} ({names}) SELECT {names} FROM source.{table}")
                    added[table] = connection.total_changes - before
        except sqlite3.DatabaseError as error:
            raise ConfigError(f"cannot merge {other_path}: not a usable results store ({error})") from error
        finally:
            if attached:
                self._connection.execute("DETACH DATABASE source")
        return added


def merge_stores(inputs: Sequence[str | os.PathLike], output: str | os.PathLike) -> Path:
    """Write a new store holding the union of ``inputs``; the output appears only once complete."""
    output = Path(output)
    missing = [str(path) for path in inputs if not Path(path).is_file()]
    if missing:
        raise ConfigError(f"cannot merge: results store {', '.join(missing)} does not exist")
    if not inputs:
        raise ConfigError("cannot merge: give at least one results store")
    if Path(f"{output}-wal").exists():
        raise ConfigError(f"{output} is open in another process; close it or choose another --output")
    with atomic_path(output) as temporary:
        store = ResultsStore(temporary)
        try:
            for path in inputs:
                store.merge_from(path)
            # One self-contained file: fold the WAL back in before the rename.
            store._connection.execute("PRAGMA journal_mode = DELETE")
        finally:
            store.close()
    return output
