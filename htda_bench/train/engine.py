"""The training loop: SGD with warm-up and cosine decay, resumable at any checkpoint.

Every source of randomness is derived from (seed, iteration) or (seed, epoch), never from a
global stream, so ``--resume`` continues with exactly the numbers an uninterrupted run computes.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ..data import augment, load_split
from ..distributed import current_world
from ..errors import CheckpointError, ConfigError
from ..metrics.accuracy import clean_accuracy
from ..metrics.attention import attention_stats
from ..models import attention_map_loss, create_model
from ..models.registry import zoo_name
from ..models.checkpoint import save_weights
from ..utils import atomic_path, git_commit, hardware_description, package_versions, sha256_file, write_json_atomic
from .config import TrainConfig
from .warm_start import warm_start

STATE_FILE = "state.pt"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"


ATTENTION_CHECK_IMAGES = 200  # test images whose maps are checked at the end of every epoch


def _generator(*parts: int) -> torch.Generator:
    seed = 0
    for part in parts:
        seed = (seed * 1_000_003 + int(part)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


def learning_rate(config: TrainConfig, iteration: int, total: int) -> float:
    warmup = max(1, int(config.warmup_fraction * total))
    if iteration < warmup:
        return config.lr * (iteration + 1) / warmup
    progress = (iteration - warmup) / max(1, total - warmup)
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * progress))


def temperature(config: TrainConfig, iteration: int, total: int) -> float:
    """Te rises linearly from ``temperature_start`` to ``temperature_end`` over training."""
    fraction = iteration / max(1, total - 1)
    return config.temperature_start + (config.temperature_end - config.temperature_start) * fraction


def _parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (decay if parameter.ndim > 1 else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _distributed(model, device: torch.device):
    """Wrap for DistributedDataParallel, with BatchNorm statistics synchronised across ranks."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        return DistributedDataParallel(torch.nn.SyncBatchNorm.convert_sync_batchnorm(model), device_ids=[device])
    from .sync_batchnorm import convert_to_cpu_sync_batchnorm

    return DistributedDataParallel(convert_to_cpu_sync_batchnorm(model))


def _all_ranks_sum(value: int, world) -> int:
    if world.size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.int64)
    torch.distributed.all_reduce(tensor)
    return int(tensor)


def training_loss(model, logits, labels, config: TrainConfig, iteration: int, total: int) -> dict:
    """alpha*CE + (1-alpha)*L_M for models with attention (once L_M is on), else CE."""
    ce = F.cross_entropy(logits.float(), labels)
    terms = {"ce": ce}
    maps = getattr(model, "computed_attention_maps", [])
    attention_on = iteration >= config.attention_loss_start * total
    if not maps or not attention_on:
        terms["total"] = ce
        return terms
    map_terms = attention_map_loss(torch.cat(maps).float(), gamma=config.gamma, beta=config.beta)
    alpha = config.resolved_alpha
    if config.ce_weight == "alpha":
        terms["total"] = alpha * ce + (1 - alpha) * map_terms["total"]
    else:
        terms["total"] = ce + (1 - alpha) / alpha * map_terms["total"]
    terms["attention"] = map_terms["total"]
    return terms


def _attention_pixel_std(model, test_split, config: TrainConfig, device: torch.device) -> float:
    """Per-pixel std of M across the first test images at inference temperature, logged every epoch:
    a map that collapses to one pattern for every image (the CIFAR-10 failure) shows here mid-run."""
    count = ATTENTION_CHECK_IMAGES if config.eval_subset is None else min(config.eval_subset, ATTENTION_CHECK_IMAGES)
    model.eval()
    model.temperature.fill_(model.config.inference_temperature)
    stats = attention_stats(model, test_split.as_float(slice(0, count)).to(device))
    model.train()  # the training loop sets the temperature again before the next step
    return round(stats["pixel_std"], 4)


def _save_state(path: Path, model, optimizer, iteration: int, config: TrainConfig, history, wall: float,
                counts: tuple[int, int], commits: list[str], initialisation: dict | None):
    state = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "iteration": iteration,
        "config_hash": config.hash(), "history": history, "wall_time_s": wall, "counts": list(counts),
        "git_commits": commits, "init_from": initialisation,
    }
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def _load_state(path: Path, config: TrainConfig) -> dict:
    try:
        state = torch.load(path, weights_only=True)  # never unpickle arbitrary objects
    except Exception as error:
        raise CheckpointError(f"cannot read training state {path}: {type(error).__name__}; "
                              "delete it to start over") from None
    if state.get("config_hash") != config.hash():
        raise ConfigError(f"{path} was written by a run with other settings; resume with the same "
                          "options, or choose another --out")
    return state


def train(config: TrainConfig, out_dir: str | Path, data_root=None, resume: bool = False,
          show_progress: bool = True, checkpoint_every: int = 50, stop_after: int | None = None) -> dict:
    """Train one model; returns its card (also written to ``out_dir/card.json``).

    ``stop_after`` ends the run after that many iterations of this call (for tests of resuming).
    """
    out_dir = Path(out_dir)
    state_path = out_dir / STATE_FILE
    if config.threads:
        torch.set_num_threads(config.threads)
    if state_path.exists() and not resume:
        raise ConfigError(f"{out_dir} already holds a training run: pass --resume to continue it, "
                          "or choose another --out")
    train_split = load_split(config.dataset, "train", data_root)
    test_split = load_split(config.dataset, "test", data_root)
    n_train = len(train_split) if config.train_subset is None else min(config.train_subset, len(train_split))

    torch.manual_seed(config.seed)
    model = create_model(config.family, config.arch, config.dataset, **config.model_options)
    world = current_world()
    device = _device()
    resuming = resume and state_path.exists()
    # a warm start only begins a run (before DDP wraps the model); a resume reads its record back
    initialisation = warm_start(model, config.init_from) if config.init_from and not resuming else None
    model.to(device)
    network = _distributed(model, device) if world.size > 1 else model
    optimizer = torch.optim.SGD(_parameter_groups(model, config.weight_decay), lr=config.lr,
                                momentum=config.momentum)
    iterations_per_epoch = math.ceil(n_train / config.batch_size)
    total = max(1, round(config.epochs * iterations_per_epoch))
    start, history, previous_wall, (correct, seen) = 0, [], 0.0, (0, 0)
    current_commit = git_commit()
    commits = [current_commit]  # the code a run starts (and each resume continues) from, in order
    if resuming:
        state = _load_state(state_path, config)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history, previous_wall = state["iteration"], state["history"], state["wall_time_s"]
        correct, seen = state["counts"]
        commits = state.get("git_commits", [])
        initialisation = state.get("init_from")
        if commits[-1:] != [current_commit]:
            commits = commits + [current_commit]

    model.train()
    began = time.perf_counter()
    permutation, permutation_epoch = None, -1
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[status]}"), TimeRemainingColumn()]
    with Progress(*columns, disable=not (show_progress and world.is_root), transient=False) as progress:
        task = progress.add_task(f"train {config.family}-{config.arch}-{config.dataset}", total=total,
                                 completed=start, status="")
        iteration = start
        while iteration < total and (stop_after is None or iteration - start < stop_after):
            epoch, position = divmod(iteration, iterations_per_epoch)
            if epoch != permutation_epoch:
                permutation = torch.randperm(n_train, generator=_generator(config.seed, epoch, 1))
                permutation_epoch = epoch
            index = permutation[position * config.batch_size : (position + 1) * config.batch_size]
            images = augment(train_split.images[index], config.dataset, _generator(config.seed, iteration, 2))
            labels = train_split.labels[index].to(device)
            global_count = len(labels)
            if world.size > 1:  # this rank's share of the global batch (augmented as one batch)
                images = images.tensor_split(world.size)[world.rank]
                labels = labels.tensor_split(world.size)[world.rank]
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, iteration, total)
            model.temperature.fill_(temperature(config, iteration, total))
            step_began = time.perf_counter()
            with autocast:
                logits = network(images.to(device).float().div_(255.0))
            terms = training_loss(model, logits, labels, config, iteration, total)
            optimizer.zero_grad(set_to_none=True)
            # DDP averages gradients over ranks: weight each rank's mean by its share of the batch
            (terms["total"] * (len(labels) * world.size / global_count)).backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            correct += _all_ranks_sum(int((logits.argmax(1) == labels).sum()), world)
            seen += global_count
            iteration += 1
            rate = global_count / (time.perf_counter() - step_began)
            progress.update(task, completed=iteration, status=(
                f"loss {terms['total'].item():.4f} acc {100 * correct / seen:.1f}% {rate:.0f} samples/s"))
            if position + 1 == iterations_per_epoch or iteration == total:
                entry = {"epoch": epoch + 1, "iteration": iteration, "train_accuracy": 100 * correct / seen,
                         "loss": terms["total"].item()}
                if model.attention is not None:
                    entry["attention_pixel_std"] = _attention_pixel_std(model, test_split, config, device)
                history.append(entry)
                correct = seen = 0
            if world.is_root and (iteration % checkpoint_every == 0 or iteration == total):
                out_dir.mkdir(parents=True, exist_ok=True)
                _save_state(state_path, model, optimizer, iteration, config, history,
                            previous_wall + time.perf_counter() - began, (correct, seen), commits,
                            initialisation)
    wall = previous_wall + time.perf_counter() - began
    if iteration < total:
        return {"status": "stopped", "iteration": iteration, "total_iterations": total}
    if not world.is_root:
        return {"status": "worker", "rank": world.rank}
    return write_card(model, config, out_dir, train_split, test_split, history, iteration, wall, commits,
                      initialisation)


def write_card(model, config: TrainConfig, out_dir: Path, train_split, test_split, history,
               iterations: int, wall: float, commits: list[str], initialisation: dict | None = None) -> dict:
    """Measure the finished model (fp32, eval mode) and write weights plus card.

    ``git_commit`` is the commit the run started from; ``git_commits`` lists it and those of
    any resumes from other code (states written before this field start the list at the first
    resume that knew it); ``init_from`` names the zoo weights a warm-started run began from."""
    model.temperature.fill_(model.config.inference_temperature)
    model.cpu().eval()
    accuracy = clean_accuracy(model, test_split, config.eval_subset)
    card = {
        "name": zoo_name(config.family, config.arch, config.dataset),
        "family": "htda" if config.family.startswith("htda") else config.family,
        "variant": config.family,
        "arch": config.arch,
        "dataset": config.dataset,
        "dataset_variant": test_split.variant,
        "train_fingerprint": train_split.fingerprint,
        "test_fingerprint": test_split.fingerprint,
        "recipe": config.recipe,
        "train_config": config.to_dict(),
        "config_hash": config.hash(),
        "model_config": model.config.to_dict(),
        "epochs": config.epochs,
        "iterations": iterations,
        "train_examples": len(train_split) if config.train_subset is None else config.train_subset,
        "wall_time_s": round(wall, 1),
        "hardware": hardware_description(),
        "test_accuracy": round(accuracy, 2),
        "test_examples": len(test_split) if config.eval_subset is None else min(config.eval_subset, len(test_split)),
        "final_train_accuracy": round(history[-1]["train_accuracy"], 2) if history else None,
        "history": history,
        "init_from": initialisation,
        "git_commit": commits[0],
        "git_commits": commits,
        "package_versions": package_versions(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if model.attention is not None:
        card["attention_stats"] = attention_stats(model, test_split.as_float(slice(0, 1000)))
    weights = out_dir / WEIGHTS_FILE
    save_weights(model, weights)
    card["weights_sha256"] = sha256_file(weights)
    write_json_atomic(out_dir / CARD_FILE, card)
    return card
