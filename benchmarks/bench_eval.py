"""Benchmark: htda-bench's PGD evaluation and training against a plain torchattacks loop and the
machine's dense-convolution throughput, on the same zoo model, examples, seed and PGD settings.

    HTDA_BENCH_DATA=../shared/datasets python benchmarks/bench_eval.py --model s-snn-vgg32c-mnist \
        --n-examples 200 --threads 2 --out benchmarks/results/eval-s-snn-vgg32c-mnist.json

Parts (each printed and written to the JSON):
1. plain loop: torchvision's MNIST/CIFAR-10 dataset with its transforms in a DataLoader,
   ``torchattacks.PGD`` on a wrapper that resets the network and repeats the image over the time
   steps (SpikingJelly's step loop, parameters left requiring gradients, as a researcher writes it);
2. the ladder of htda-bench's optimisations, each added to the previous one, timing the attack alone;
3. the harness end to end (``run_targets``: clean pass, attack, firing rates, op counts, store) and a
   per-example comparison of its outcomes with the plain loop's. Random starts are off in both, the
   one difference by design (htda-bench draws a seeded start per example, torchattacks from the
   global RNG); the loss is summed instead of averaged, which leaves every gradient sign unchanged;
4. FLOPs per example (``torch.utils.flop_counter``) and the dense-conv floor: the model's own
   convolutions and linears timed alone on dense inputs of the shapes the attack runs them on;
5. training: samples/s of a plain fp32 loop over the torchvision dataset versus htda-bench's
   ``train`` (uint8 tensors in memory, bf16 autocast, fused LIF), and the same floor in training.
6. peak memory (max RSS) of a suite run in fresh processes at two example counts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchattacks
import torchvision
from spikingjelly.activation_based import functional
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from htda_bench.attacks import build_attack
from htda_bench.attacks.gradient import PGD
from htda_bench.data import load_split
from htda_bench.harness import run_targets
from htda_bench.harness.runner import Target
from htda_bench.models.speed import fold_batchnorm, set_fast_paths
from htda_bench.suites import AttackSpec, Suite
from htda_bench.train.config import TrainConfig
from htda_bench.train.engine import train
from htda_bench.utils import git_commit, hardware_description, package_versions, write_json_atomic
from htda_bench.zoo import get_card, load_model


class PlainSNN(nn.Module):
    """The wrapper of a plain loop: reset the neurons, repeat the image over T, run every step."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = set_fast_paths(model, False)  # SpikingJelly's step loop, encoder conv per step

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        functional.reset_net(self.model)
        return self.model(images)


def torchvision_test_set(dataset: str, root: Path, train: bool = False, augment: bool = False):
    """The torchvision dataset with the transforms a researcher would write (32x32, [0,1])."""
    if dataset == "mnist":
        steps = [torchvision.transforms.Pad(2)]
        if augment:
            steps.append(torchvision.transforms.RandomCrop(32, padding=4))
        return torchvision.datasets.MNIST(root, train=train, transform=torchvision.transforms.Compose(
            [*steps, torchvision.transforms.ToTensor()]))
    if dataset == "cifar10":
        folder = root / "cifar10-jpeg" / ("train" if train else "test")
        steps = [torchvision.transforms.RandomCrop(32, padding=4), torchvision.transforms.RandomHorizontalFlip()]
        return torchvision.datasets.ImageFolder(folder, transform=torchvision.transforms.Compose(
            [*(steps if augment else []), torchvision.transforms.ToTensor()]))
    raise SystemExit(f"bench_eval: dataset {dataset} has no plain-loop reference here (use mnist or cifar10)")


def plain_loop(model, dataset, root, n_examples, batch_size, eps, alpha, steps) -> dict:
    wrapper = PlainSNN(model).eval()
    attack = torchattacks.PGD(wrapper, eps=eps, alpha=alpha, steps=steps, random_start=False)
    data = torch.utils.data.Subset(torchvision_test_set(dataset, root), range(n_examples))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    warm_images, warm_labels = next(iter(torch.utils.data.DataLoader(data, batch_size=4)))
    attack(warm_images, warm_labels)  # the same warm-up as htda-bench's path gets
    began, correct = time.perf_counter(), []
    for images, labels in loader:
        adversarial = attack(images, labels)
        with torch.no_grad():
            correct.append(wrapper(adversarial).argmax(1) == labels)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "examples_per_s": n_examples / seconds, "correct": torch.cat(correct)}


def attack_only(model, split, n_examples, batch_size, eps, alpha, steps) -> dict:
    """Time htda-bench's seeded PGD over in-memory batches (attack and final scoring only)."""
    attack = PGD(model, eps=eps, alpha=alpha, steps=steps, seed=0, random_start=False)
    warm = time.perf_counter()  # one-time costs (torch.compile, kernel choice) kept out of the rate
    attack(split.as_float(torch.arange(4)), split.labels[:4], torch.arange(4))
    warm_up = time.perf_counter() - warm
    began, correct = time.perf_counter(), []
    for start in range(0, n_examples, batch_size):
        index = torch.arange(start, min(start + batch_size, n_examples))
        images, labels = split.as_float(index), split.labels[index]
        adversarial = attack(images, labels, index)
        with torch.no_grad():
            correct.append(model(adversarial).argmax(1) == labels)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "examples_per_s": n_examples / seconds, "correct": torch.cat(correct),
            "warm_up_seconds": warm_up}


def ladder(name, split, n_examples, batch_size, eps, alpha, steps) -> list[dict]:
    """Each optimisation added to the previous one, up to the harness default; then two measured
    alternatives on top of the default that are not adopted."""
    def fresh(fast: bool, grads: bool, kernel: str = "fused"):
        model = set_fast_paths(load_model(name), fast, kernel)
        return model.requires_grad_(grads)

    def encoder_only():
        model = fresh(False, False)
        model.encoder_once = True
        return model

    variants = [
        ("htda-bench attack, in-memory data, no other optimisation", lambda: fresh(False, True), True),
        ("+ no parameter gradients", lambda: fresh(False, False), True),
        ("+ encoder conv once per attention window", encoder_only, True),
        ("+ fused multi-step LIF kernel, eager", lambda: fresh(True, False), True),
        ("+ LIF kernel through torch.compile (the harness default)", lambda: fresh(True, False, "compiled"), True),
        ("default + channels-last weights (measured, not adopted)", lambda: fresh(True, False, "compiled").to(
            memory_format=torch.channels_last), False),
        ("default + BatchNorm folded (measured, not adopted: flips spikes)", lambda: set_fast_paths(
            fold_batchnorm(load_model(name)), True, "compiled").requires_grad_(False), False),
    ]
    rows = []
    for label, build, adopted in variants:
        model = build()
        result = attack_only(model, split, n_examples, batch_size, eps, alpha, steps)
        rows.append({"variant": label, "adopted": adopted, "seconds": round(result["seconds"], 2),
                     "warm_up_seconds": round(result["warm_up_seconds"], 2),
                     "examples_per_s": round(result["examples_per_s"], 3), "correct": result["correct"]})
        print(f"  {label}: {result['examples_per_s']:.2f} examples/s")
    return rows


def harness(name, n_examples, batch_size, eps, alpha, steps, dataset, root) -> dict:
    suite = Suite(name="bench-pgd", protocol_version="bench", dataset=dataset, models=(name,),
                  attacks=(AttackSpec("pgd", steps=steps, step_size=alpha, random_start=False),),
                  eps=(eps,), seeds=(0,), n_examples=n_examples, batch_size=batch_size)
    target = Target(name, load_model(name), get_card(name)["weights_sha256"])
    with tempfile.TemporaryDirectory() as folder:
        store_path = Path(folder) / "bench.sqlite"
        began = time.perf_counter()
        run_targets(suite, [target], store_path, None, root, show_progress=False)
        seconds = time.perf_counter() - began
        from htda_bench.store import ResultsStore

        with ResultsStore(store_path) as store:
            frame = store.outcomes_frame(suite="bench-pgd", model=name, attack="pgd")
    frame = frame.sort_values("example_index")
    return {"seconds": seconds, "examples_per_s": n_examples / seconds,
            "correct": torch.tensor(frame["correct"].astype(bool).tolist())}


def profile_top(model, split, batch_size: int, steps: int, rows: int = 8) -> list[dict]:
    """The PyTorch profiler's top operators by self CPU time for one batch of the attack."""
    from torch.profiler import ProfilerActivity, profile

    index = torch.arange(batch_size)
    images, labels = split.as_float(index), split.labels[index]
    attack = PGD(model, eps=0.1, alpha=0.01, steps=steps, seed=0, random_start=False)
    attack(images[:4], labels[:4], index[:4])  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        attack(images, labels, index)
    events = sorted(profiler.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
    total = sum(event.self_cpu_time_total for event in events)
    return [{"op": event.key, "self_cpu_ms": round(event.self_cpu_time_total / 1e3, 1),
             "share": round(event.self_cpu_time_total / total, 3), "calls": event.count} for event in events[:rows]]


def count_flops(function) -> int:
    with FlopCounterMode(display=False) as counter:
        function()
    return counter.get_total_flops()


def attack_flops_per_example(model, images, labels, steps) -> float:
    """FLOPs of one PGD attack and its scoring forward, per example, as the model executes them."""
    def gradient_step():  # what PGD.input_gradient runs (backward() instead of autograd.grad,
        # which FlopCounterMode does not support on a leaf)
        loss = nn.functional.cross_entropy(model(images.clone().requires_grad_(True)), labels, reduction="sum")
        loss.backward()

    step = count_flops(gradient_step)
    with torch.no_grad():
        forward = count_flops(lambda: model(images))
    return (steps * step + forward) / len(images)


def dense_floor(model, images, training: bool) -> dict:
    """GFLOP/s of the model's convolutions (transposed too) and linears alone, on dense random
    inputs of the shapes they see; backward of the input (attack) or of input and weights (training)."""
    shapes = []
    hooks = [module.register_forward_hook(lambda m, i, o: shapes.append((m, i[0].shape)))
             for module in model.modules() if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    with torch.no_grad():
        model(images)
    for hook in hooks:
        hook.remove()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=training)
    inputs = [torch.randn(shape) for _, shape in shapes]  # made once: only the layers are timed
    for module, _ in shapes:
        module.requires_grad_(training)

    def run_all():
        for (module, _), x in zip(shapes, inputs):
            x = x.detach().requires_grad_(True)
            with autocast:
                out = module(x)
            out.sum().backward()
    run_all()  # warm-up: kernels chosen, memory allocated
    flops = count_flops(run_all)
    began = time.perf_counter()
    repeats = 3
    for _ in range(repeats):
        run_all()
    seconds = (time.perf_counter() - began) / repeats
    model.requires_grad_(False)
    return {"gflops": flops / 1e9, "seconds": seconds, "gflop_per_s": flops / 1e9 / seconds}


def plain_training(config: TrainConfig, root: Path, warmup: int, iterations: int) -> float:
    """Samples/s of a plain fp32 loop: torchvision dataset + transforms, SpikingJelly step loop."""
    from htda_bench.models import create_model
    from htda_bench.train.engine import training_loss

    torch.manual_seed(config.seed)
    model = set_fast_paths(create_model(config.family, config.arch, config.dataset, **config.model_options), False)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    data = torchvision_test_set(config.dataset, root, train=True, augment=True)
    loader = iter(torch.utils.data.DataLoader(data, batch_size=config.batch_size, shuffle=True))
    total = warmup + iterations
    for iteration in range(total):
        if iteration == warmup:
            began = time.perf_counter()
        images, labels = next(loader)
        functional.reset_net(model)
        loss = training_loss(model, model(images), labels, config, iteration, total)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return iterations * config.batch_size / (time.perf_counter() - began)


def harness_training(config: TrainConfig, root: Path, warmup: int, iterations: int) -> float:
    """Samples/s of ``htda_bench.train`` from the difference of two runs (fixed costs cancel)."""
    seconds = []
    for stop in (warmup, warmup + iterations):
        with tempfile.TemporaryDirectory() as folder:
            began = time.perf_counter()
            train(config, Path(folder) / "run", data_root=root, show_progress=False,
                  checkpoint_every=10**9, stop_after=stop)
            seconds.append(time.perf_counter() - began)
    return iterations * config.batch_size / (seconds[1] - seconds[0])


def training_part(name: str, root: Path, warmup: int, iterations: int, images: torch.Tensor) -> dict:
    card = get_card(name)
    settings = {key: value for key, value in card["train_config"].items() if key not in ("threads", "recipe")}
    config = TrainConfig(**settings)
    from htda_bench.models import create_model

    model = create_model(config.family, config.arch, config.dataset, **config.model_options).train()
    labels = torch.zeros(len(images), dtype=torch.long)
    flops = count_flops(lambda: nn.functional.cross_entropy(model(images), labels).backward()) / len(images)
    plain = plain_training(config, root, warmup, iterations)
    ours = harness_training(config, root, warmup, iterations)
    floor = dense_floor(model.eval(), images, training=True)
    achieved = ours * flops / 1e9
    print(f"training: plain {plain:.1f} samples/s, htda-bench {ours:.1f} samples/s ({ours / plain:.2f}x); "
          f"{achieved:.1f} GFLOP/s vs bf16 dense floor {floor['gflop_per_s']:.1f}")
    return {"batch_size": config.batch_size, "precision": config.precision, "iterations_timed": iterations,
            "flops_per_sample": flops, "plain_samples_per_s": round(plain, 2),
            "htda_bench_samples_per_s": round(ours, 2), "speedup": round(ours / plain, 3),
            "achieved_gflop_per_s": round(achieved, 2), "dense_floor_bf16": floor,
            "fraction_of_floor": round(achieved / floor["gflop_per_s"], 3)}


def peak_memory(name: str, counts: list[int], batch_size: int, root: Path) -> dict:
    """Peak resident memory (MiB) of a 2-step PGD suite run in a fresh process, per example count."""
    # VmHWM, not ru_maxrss: a forked child's ru_maxrss starts from the parent's peak
    code = ("import sys,tempfile,pathlib\n"
            "from htda_bench.harness import evaluate\n"
            "with tempfile.TemporaryDirectory() as f:\n"
            "    evaluate(sys.argv[1], 'pgd-mnist' if sys.argv[1].endswith('mnist') else 'pgd-cifar',"
            " store=pathlib.Path(f)/'s.sqlite', data_root=sys.argv[4], n_examples=int(sys.argv[2]),"
            " batch_size=int(sys.argv[3]), seeds=[0], eps=[8/255], steps=2)\n"
            "print([line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0])\n")
    peaks = {}
    for count in counts:
        output = subprocess.run([sys.executable, "-c", code, name, str(count), str(batch_size), str(root)],
                                capture_output=True, text=True, check=True).stdout
        peaks[str(count)] = round(int(output.strip().splitlines()[-1]) / 1024, 1)
    print(f"peak memory (MiB) by example count at batch {batch_size}: {peaks}")
    return peaks


def agreement(reference: torch.Tensor, other: torch.Tensor) -> dict:
    return {"examples": len(reference), "differing": int((reference != other).sum()),
            "identical": bool(torch.equal(reference, other))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="s-snn-vgg32c-mnist")
    parser.add_argument("--n-examples", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--eps", type=float, default=20 / 255)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-iterations", type=int, default=6, help="0 skips the training part")
    parser.add_argument("--memory-counts", default="200,1000", help="'' skips the memory part")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/eval-MODEL.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from htda_bench.data import resolve_data_root

    root = resolve_data_root(args.data_root)
    card = get_card(args.model)
    dataset = card["dataset"]
    alpha = 2.5 * args.eps / args.steps
    split = load_split(dataset, "test", root)
    n = min(args.n_examples, len(split))
    print(f"{args.model}: {n} examples, PGD-{args.steps} eps {args.eps:.4f} step {alpha:.4f}, "
          f"batch {args.batch_size}, {args.threads} threads, {hardware_description()}")

    plain = plain_loop(load_model(args.model), dataset, root, n, args.batch_size, args.eps, alpha, args.steps)
    print(f"plain torchattacks loop: {plain['examples_per_s']:.2f} examples/s")
    rows = ladder(args.model, split, n, args.batch_size, args.eps, alpha, args.steps)
    whole = harness(args.model, n, args.batch_size, args.eps, alpha, args.steps, dataset, root)
    default = next(row for row in rows if "harness default" in row["variant"])
    print(f"harness end to end (clean pass, attack, firing rates, op counts, store): "
          f"{whole['examples_per_s']:.2f} examples/s")

    fast = set_fast_paths(load_model(args.model), True, "compiled").requires_grad_(False)
    sample = split.as_float(torch.arange(min(args.batch_size, n)))
    flops = attack_flops_per_example(fast, sample, split.labels[: len(sample)], args.steps)
    floor = dense_floor(fast, sample, training=False)
    achieved = default["examples_per_s"] * flops / 1e9
    print(f"attack FLOPs per example {flops / 1e9:.3f} GFLOP; achieved {achieved:.2f} GFLOP/s; "
          f"dense conv floor {floor['gflop_per_s']:.2f} GFLOP/s ({achieved / floor['gflop_per_s']:.0%})")
    evaluation = {
        "plain_examples_per_s": round(plain["examples_per_s"], 3),
        "harness_attack_examples_per_s": default["examples_per_s"],
        "harness_end_to_end_examples_per_s": round(whole["examples_per_s"], 3),
        "speedup_attack": round(default["examples_per_s"] / plain["examples_per_s"], 3),
        "speedup_end_to_end": round(whole["examples_per_s"] / plain["examples_per_s"], 3),
        "flops_per_example": flops, "achieved_gflop_per_s": round(achieved, 3), "dense_floor_fp32": floor,
        "fraction_of_floor": round(achieved / floor["gflop_per_s"], 3),
        # vs plain: includes the by-design difference (summed vs averaged loss); vs unoptimised: the
        # first rung, htda-bench's own attack with no speed-up, isolates what the speed-ups change
        "ladder": [{key: value for key, value in row.items() if key != "correct"} | {
            "outcomes_vs_plain": agreement(plain["correct"], row["correct"]),
            "outcomes_vs_unoptimised": agreement(rows[0]["correct"], row["correct"])} for row in rows],
        "outcomes_harness_vs_plain": agreement(plain["correct"], whole["correct"]),
        "outcomes_harness_vs_unoptimised": agreement(rows[0]["correct"], whole["correct"]),
        "plain_robust_accuracy": round(100 * plain["correct"].float().mean().item(), 2),
        "harness_robust_accuracy": round(100 * whole["correct"].float().mean().item(), 2),
    }
    print(f"speed-up over the plain loop: attack {evaluation['speedup_attack']:.2f}x, end to end "
          f"{evaluation['speedup_end_to_end']:.2f}x; outcomes vs plain: {evaluation['outcomes_harness_vs_plain']}, "
          f"vs unoptimised: {evaluation['outcomes_harness_vs_unoptimised']}")
    profiles = {}
    unoptimised = PlainSNN(load_model(args.model)).model.requires_grad_(False)
    for label, model in (("unoptimised", unoptimised), ("htda-bench", fast)):
        profiles[label] = profile_top(model, split, min(50, n), 2)
        print(f"profile ({label}), top ops by self CPU time: " + ", ".join(
            f"{row['op']} {row['share']:.0%}" for row in profiles[label][:5]))
    evaluation["profile_top_ops"] = profiles
    result = {
        "benchmark": "bench_eval", "model": args.model, "weights_sha256": card["weights_sha256"],
        "dataset": dataset, "dataset_fingerprint": split.fingerprint, "n_examples": n,
        "batch_size": args.batch_size, "eps": args.eps, "step_size": alpha, "steps": args.steps,
        "threads": args.threads, "hardware": hardware_description(), "git_commit": git_commit(),
        "package_versions": package_versions(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "evaluation": evaluation,
    }
    if args.train_iterations:
        result["training"] = training_part(args.model, root, 2, args.train_iterations, sample[:8])
    if args.memory_counts:
        counts = [int(value) for value in args.memory_counts.split(",")]
        result["peak_memory_mib"] = peak_memory(args.model, counts, args.batch_size, root)
    out = Path(args.out or Path(__file__).parent / "results" / f"eval-{args.model}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
