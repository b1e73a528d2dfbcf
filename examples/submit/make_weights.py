"""Train the example SNN briefly on MNIST and write ``my_snn.safetensors`` next to this file.

    python examples/submit/make_weights.py            # seconds on a laptop CPU
    python examples/submit/make_weights.py --out w.safetensors --examples 2000 --epochs 1

Uses the first 2000 training images for one epoch: enough for a reproducible, clearly-better-than-
chance model to try ``htda-bench submit`` with, not a strong one. Data: ``$HTDA_BENCH_DATA`` or
``--data-root`` (``htda-bench data`` explains the layout).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from htda_bench.data import load_split

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from my_snn import build_model  # noqa: E402


def train(examples: int = 2000, epochs: int = 1, batch_size: int = 25, lr: float = 3e-3, seed: int = 0,
          data_root=None) -> nn.Module:
    torch.manual_seed(seed)
    split = load_split("mnist", "train", data_root)
    images, labels = split.as_float(slice(0, examples)), split.labels[:examples]
    model = build_model().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        order = torch.randperm(len(labels))
        for start in range(0, len(labels), batch_size):
            index = order[start : start + batch_size]
            loss = nn.functional.cross_entropy(model(images[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}/{epochs}: last batch loss {loss.item():.3f}")
    return model.eval()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(HERE / "my_snn.safetensors"))
    parser.add_argument("--examples", type=int, default=2000, help="first N training images (default 2000)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--data-root", help="dataset folder (default $HTDA_BENCH_DATA)")
    args = parser.parse_args(argv)
    model = train(args.examples, args.epochs, data_root=args.data_root)
    test = load_split("mnist", "test", args.data_root)
    with torch.no_grad():
        accuracy = (model(test.as_float(slice(0, 500))).argmax(1) == test.labels[:500]).float().mean().item()
    print(f"clean accuracy on the first 500 test images: {100 * accuracy:.1f}%")
    save_file({name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
