"""Which change makes HTDA's attention map follow the object? (README, "Deviations from the paper")

Trains HTDA VGG-32c on MNIST (or CIFAR-10) for a short, equal budget per variant and records
``attention_stats`` on 1,000 test images plus clean accuracy, and draws the maps of eight test images.
Usage:
    python experiments/attention_following.py VARIANT [--dataset cifar10] [--iterations 200] [--batch-size 100]
Results: experiments/results/attention_<variant>.json (MNIST) or attention_<dataset>_<variant>.json,
figures under runs/experiments/.
"""

import argparse
import json
import sys
from pathlib import Path

from htda_bench.data import load_split
from htda_bench.models.checkpoint import load_weights
from htda_bench.report.attention_figures import attention_figure
from htda_bench.train import TrainConfig, train
from htda_bench.utils import write_json_atomic

VARIANTS = {
    "paper": dict(),
    "layer2-source": dict(model_options={"attention_source": "layer2"}),
    "layer2-source-ce-one": dict(model_options={"attention_source": "layer2"}, ce_weight="one"),
    "upsample-conv-ce-first": dict(model_options={"attention_upsampler": "upsample-conv"}, attention_loss_start=0.5),
    "ce-first": dict(attention_loss_start=0.5),
    "ce-one": dict(ce_weight="one"),
    # masked windows normalised with the unmasked window's BatchNorm statistics (model config window_norm)
    "layer2-source-ce-one-first-window": dict(model_options={"attention_source": "layer2", "window_norm": "first-window"},
                                              ce_weight="one"),
}
# CIFAR-10 probes use the CPU recipe's optimiser settings (zoo/recipes/htda-vgg32c-cifar10.yaml)
DATASET_SETTINGS = {"mnist": dict(), "cifar10": dict(warmup_fraction=0.03, grad_clip=1.0)}
TRAIN_SIZES = {"mnist": 60000, "cifar10": 50000}

parser = argparse.ArgumentParser()
parser.add_argument("variant", choices=sorted(VARIANTS))
parser.add_argument("--dataset", choices=sorted(DATASET_SETTINGS), default="mnist")
parser.add_argument("--iterations", type=int, default=200)
parser.add_argument("--batch-size", type=int, default=100)
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--data-root", default=None)
args = parser.parse_args()

epochs = args.iterations * args.batch_size / TRAIN_SIZES[args.dataset]
config = TrainConfig(family="htda", dataset=args.dataset, epochs=epochs, batch_size=args.batch_size,
                     eval_subset=1000, threads=args.threads, **VARIANTS[args.variant],
                     **DATASET_SETTINGS[args.dataset])
name = args.variant if args.dataset == "mnist" else f"{args.dataset}_{args.variant}"
out = Path("runs/experiments") / name
card = train(config, out, data_root=args.data_root, resume=True, show_progress=sys.stdout.isatty())
result = {"variant": args.variant, "iterations": card["iterations"], "batch_size": args.batch_size,
          "test_accuracy_first_1000": card["test_accuracy"], "attention_stats": card["attention_stats"],
          "train_config": card["train_config"], "wall_time_s": card["wall_time_s"], "hardware": card["hardware"],
          "git_commit": card["git_commit"]}
write_json_atomic(Path("experiments/results") / f"attention_{name}.json", result)
model = load_weights(out / "model.safetensors")
test = load_split(args.dataset, "test", args.data_root)
attention_figure(model, test.as_float(slice(0, 8)), out / "maps.png", title=name)
print(json.dumps(result["attention_stats"]), result["test_accuracy_first_1000"])
