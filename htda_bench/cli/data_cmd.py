"""``htda-bench data``: see which datasets are present, their shapes and fingerprints."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from ..data import DATASETS, load_split, resolve_data_root
from ..errors import DataError


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="inspect datasets under the data root")
    commands = parser.add_subparsers(dest="data_command", required=True)
    info = commands.add_parser("info", help="load each dataset once (decoding and caching it) and describe it")
    info.add_argument("datasets", nargs="*", help=f"any of {', '.join(DATASETS)} (default: all)")
    info.add_argument("--data-root", help="dataset folder (default $HTDA_BENCH_DATA)")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(handler=run_info)


def describe(name: str, data_root) -> dict:
    row = {"dataset": name}
    for split_name in ("train", "test"):
        try:
            split = load_split(name, split_name, data_root, download=False)
        except DataError as error:
            row[split_name] = {"status": "missing", "error": str(error)}
            continue
        row[split_name] = {"status": "ok", "examples": len(split), "shape": list(split.images.shape[1:]),
                           "variant": split.variant, "fingerprint": split.fingerprint, "source": split.source}
    return row


def run_info(args) -> int:
    names = args.datasets or list(DATASETS)
    for name in names:
        if name not in DATASETS:
            raise DataError(f"unknown dataset {name!r}: choose from {', '.join(DATASETS)}")
    rows = [describe(name, args.data_root) for name in names]
    if args.json:
        print(json.dumps({"data_root": str(resolve_data_root(args.data_root)), "datasets": rows}, indent=2))
        return 0
    table = Table(title=f"datasets under {resolve_data_root(args.data_root)}")
    for column in ("dataset", "split", "examples", "shape", "variant", "fingerprint"):
        table.add_column(column)
    for row in rows:
        for split_name in ("train", "test"):
            info = row[split_name]
            if info["status"] == "ok":
                table.add_row(row["dataset"], split_name, str(info["examples"]), "x".join(map(str, info["shape"])),
                              info["variant"], info["fingerprint"][:16])
            else:
                table.add_row(row["dataset"], split_name, "-", "-", "[red]missing[/red]", "")
    Console().print(table)
    return 0
