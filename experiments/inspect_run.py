"""Look at an HTDA training run mid-way: its attention maps (Fig. 2 picture) and attention_stats.

Reads the run's training state (``<run>/state.pt``, written every 50 iterations) and the recipe it
was started from, so a collapsing map can be seen without waiting for the card. Example:

    python experiments/inspect_run.py runs/htda-cifar10 zoo/recipes/htda-vgg32c-cifar10.yaml \
        --images 200 --figure runs/htda-cifar10/maps.png

Runs at one thread by default: it is meant to be run beside a training, briefly.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from htda_bench.data import load_split
from htda_bench.errors import HtdaBenchError
from htda_bench.metrics.accuracy import clean_accuracy
from htda_bench.metrics.attention import attention_maps, attention_stats
from htda_bench.models import create_model
from htda_bench.report.attention_figures import CONDITIONS, attention_figure, perturbed_inputs
from htda_bench.train.config import TrainConfig

parser = argparse.ArgumentParser()
parser.add_argument("run", type=Path, help="training output folder holding state.pt")
parser.add_argument("recipe", help="the recipe the run was started from")
parser.add_argument("--images", type=int, default=200, help="first N test images for the statistics")
parser.add_argument("--figure", type=Path, help="write the Fig. 2 picture of the first 8 test images here")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--data-root", default=None)
args = parser.parse_args()

torch.set_num_threads(args.threads)
if not (args.run / "state.pt").is_file():
    parser.error(f"{args.run} holds no state.pt: pass the --out folder of an htda-bench train run")
try:
    config = TrainConfig.from_recipe(args.recipe)
except HtdaBenchError as error:
    parser.error(str(error))
state = torch.load(args.run / "state.pt", weights_only=True)  # written by our own trainer
if state["config_hash"] != config.hash():
    parser.error(f"{args.run} was not trained from {args.recipe} (config hash differs)")
model = create_model(config.family, config.arch, config.dataset, **config.model_options)
model.load_state_dict(state["model"])
model.eval()
test = load_split(config.dataset, "test", args.data_root)
images = test.as_float(slice(0, args.images))
accuracy = clean_accuracy(model, test, args.images)
stats = attention_stats(model, images)
# Where the map goes on translated + rotated images: on the black padding the transform adds
# (every channel exactly 0) or on the image. A map keyed to dark pixels, not to the object, puts
# its mass on the padding.
moved = perturbed_inputs(images, seed=0)[CONDITIONS[1]]
padding = (moved == 0).all(1)
moved_maps = attention_maps(model, moved)
stats["moved_mean_on_padding"] = moved_maps[padding].mean().item()
stats["moved_mean_on_image"] = moved_maps[~padding].mean().item()
print(json.dumps({"iteration": state["iteration"], "test_accuracy_first_n": round(accuracy, 1),
                  "n_images": args.images, **{key: round(value, 4) for key, value in stats.items()},
                  "history": state["history"]}, indent=1))
if args.figure:
    attention_figure(model, test.as_float(slice(0, 8)), args.figure,
                     title=f"{args.run.name}, iteration {state['iteration']}", labels=test.labels[:8].tolist())
    print(f"wrote {args.figure}")
