"""``htda-bench zoo list|show|verify``: the checkpoints that ship with htda-bench."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from ..data import load_split
from ..errors import HtdaBenchError
from ..metrics.accuracy import clean_accuracy
from ..zoo import get_card, list_cards, load_model, publish

LIST_COLUMNS = ("name", "family", "arch", "dataset", "dataset_variant", "test_accuracy", "epochs", "recipe")


def register(subparsers) -> None:
    parser = subparsers.add_parser("zoo", help="list, show and verify zoo checkpoints")
    commands = parser.add_subparsers(dest="zoo_command", required=True)
    listing = commands.add_parser("list", help="list zoo models")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=list_zoo)
    show = commands.add_parser("show", help="print one model card")
    show.add_argument("name")
    show.set_defaults(handler=show_card)
    verify = commands.add_parser("verify", help="re-hash every checkpoint (and re-measure accuracy)")
    verify.add_argument("names", nargs="*", help="models to verify (default: all)")
    verify.add_argument("--accuracy", type=int, metavar="N",
                        help="also re-measure clean accuracy on the first N test examples")
    verify.add_argument("--tolerance", type=float, default=2.0,
                        help="allowed accuracy difference to the card, in points (default 2.0)")
    verify.add_argument("--data-root", help="dataset folder (default $HTDA_BENCH_DATA)")
    verify.set_defaults(handler=verify_zoo)
    add = commands.add_parser("add", help="publish a finished training run (htda-bench train --out DIR) to the zoo")
    add.add_argument("run_dir")
    add.add_argument("--name", help="zoo name (default: the run's <family>-<arch>-<dataset>)")
    add.add_argument("--float32", action="store_true", help="keep float32 weights even if float16 is as accurate")
    add.add_argument("--data-root", help="dataset folder (default $HTDA_BENCH_DATA)")
    add.set_defaults(handler=add_to_zoo)


def list_zoo(args) -> int:
    cards = list_cards()
    if args.json:
        print(json.dumps([{key: card.get(key) for key in LIST_COLUMNS + ("weights_sha256",)} for card in cards],
                         indent=2))
        return 0
    table = Table(title="htda-bench zoo")
    for column in LIST_COLUMNS:
        table.add_column(column.replace("_", " "))
    for card in cards:
        table.add_row(*(str(card.get(column, "")) for column in LIST_COLUMNS))
    Console().print(table)
    return 0


def show_card(args) -> int:
    Console().print_json(json.dumps(get_card(args.name)))
    return 0


def verify_zoo(args) -> int:
    names = args.names or [card["name"] for card in list_cards()]
    table = Table(title="zoo verify")
    for column in ("model", "sha256", "card accuracy", "measured", "result"):
        table.add_column(column)
    failures = 0
    for name in names:
        try:
            model = load_model(name)  # checks the sha256
            card = model.zoo_card
            measured = ""
            result = "ok"
            if args.accuracy:
                split = load_split(card["dataset"], "test", args.data_root)
                accuracy = clean_accuracy(model, split, limit=args.accuracy)
                measured = f"{accuracy:.2f} on {min(args.accuracy, len(split))}"
                if abs(accuracy - card["test_accuracy"]) > args.tolerance:
                    result = f"[red]accuracy off by more than {args.tolerance} points[/red]"
                    failures += 1
            table.add_row(name, "ok", f"{card['test_accuracy']:.2f}", measured, result)
        except HtdaBenchError as error:
            failures += 1
            table.add_row(name, "[red]fail[/red]", "", "", f"[red]{error}[/red]")
    Console().print(table)
    return 1 if failures else 0


def add_to_zoo(args) -> int:
    card = publish(args.run_dir, name=args.name, data_root=args.data_root, allow_float16=not args.float32)
    Console().print(f"added {card['name']}: test accuracy {card['test_accuracy']:.2f}% on {card['test_examples']} "
                    f"examples, {card['weights_dtype']} weights, sha256 {card['weights_sha256'][:16]}")
    return 0
