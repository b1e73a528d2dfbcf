"""Which change makes HTDA's attention map follow the object? (README, "Deviations from the paper")

Trains HTDA VGG-32c on MNIST for a short, equal budget per variant and records
``attention_stats`` on 1,000 test images plus clean accuracy. Usage:
    python experiments/attention_following.py VARIANT [--iterations 200] [--batch-size 100]
Results: experiments/results/attention_<variant>.json
"""

import argparse
import json
import sys
from pathlib import Path

from htda_bench.train import TrainConfig, train
from htda_bench.utils import write_json_atomic

VARIANTS = {
    "paper": dict(),
    "layer2-source": dict(model_options={"attention_source": "layer2"}),
    "layer2-source-ce-one": dict(model_options={"attention_source": "layer2"}, ce_weight="one"),
    "upsample-conv-ce-first": dict(model_options={"attention_upsampler": "upsample-conv"}, attention_loss_start=0.5),
    "ce-first": dict(attention_loss_start=0.5),
    "ce-one": dict(ce_weight="one"),
}

parser = argparse.ArgumentParser()
parser.add_argument("variant", choices=sorted(VARIANTS))
parser.add_argument("--iterations", type=int, default=200)
parser.add_argument("--batch-size", type=int, default=100)
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--data-root", default=None)
args = parser.parse_args()

epochs = args.iterations * args.batch_size / 60000
config = TrainConfig(family="htda", dataset="mnist", epochs=epochs, batch_size=args.batch_size,
                     eval_subset=1000, threads=args.threads, **VARIANTS[args.variant])
out = Path("runs/experiments") / args.variant
card = train(config, out, data_root=args.data_root, resume=True, show_progress=sys.stdout.isatty())
result = {"variant": args.variant, "iterations": card["iterations"], "batch_size": args.batch_size,
          "test_accuracy_first_1000": card["test_accuracy"], "attention_stats": card["attention_stats"],
          "train_config": card["train_config"], "wall_time_s": card["wall_time_s"], "hardware": card["hardware"],
          "git_commit": card["git_commit"]}
write_json_atomic(Path("experiments/results") / f"attention_{args.variant}.json", result)
print(json.dumps(result["attention_stats"]), result["test_accuracy_first_1000"])
