"""``htda-bench train``: train one model from flags or a recipe, resumable."""

from __future__ import annotations

import json

from rich.console import Console

from ..distributed import init_from_environment
from ..errors import ConfigError
from ..models import ARCH_WIDTHS, list_families
from ..train import TrainConfig, train


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train an S-SNN or HTDA model",
                                   description="Train one model; writes model.safetensors, card.json and "
                                               "a resumable state.pt into --out.")
    parser.add_argument("--recipe", help="YAML recipe (zoo/recipes/*.yaml); flags below override it")
    parser.add_argument("--model", dest="family", choices=list_families(), help="model family")
    parser.add_argument("--arch", choices=sorted(ARCH_WIDTHS))
    parser.add_argument("--dataset", choices=["mnist", "cifar10", "cifar100", "nmnist"])
    parser.add_argument("--epochs", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--precision", choices=["bf16", "fp32"])
    parser.add_argument("--train-subset", type=int, help="use only the first N training examples")
    parser.add_argument("--eval-subset", type=int, help="measure test accuracy on the first N examples")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--data-root", help="dataset folder (default $HTDA_BENCH_DATA)")
    parser.add_argument("--out", required=True, help="output folder for this run")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--checkpoint-every", type=int, default=50, help="iterations between state saves")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args) -> int:
    overrides = dict(family=args.family, arch=args.arch, dataset=args.dataset, epochs=args.epochs,
                     batch_size=args.batch_size, lr=args.lr, seed=args.seed, precision=args.precision,
                     train_subset=args.train_subset, eval_subset=args.eval_subset, threads=args.threads)
    if args.checkpoint_every <= 0:
        raise ConfigError("--checkpoint-every must be a positive number of iterations")
    if args.recipe:
        config = TrainConfig.from_recipe(args.recipe, **overrides)
    else:
        config = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    world = init_from_environment()  # torchrun: DistributedDataParallel over the ranks
    console = Console()
    card = train(config, args.out, data_root=args.data_root, resume=args.resume,
                 show_progress=not args.quiet, checkpoint_every=args.checkpoint_every)
    if not world.is_root:
        return 0
    summary = {k: card.get(k) for k in ("name", "test_accuracy", "test_examples", "wall_time_s", "weights_sha256")}
    if "attention_stats" in card:
        summary["attention_stats"] = card["attention_stats"]
    console.print_json(json.dumps(summary))
    return 0
