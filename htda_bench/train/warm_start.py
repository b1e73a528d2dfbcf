"""Start a training run from a zoo checkpoint's weights (recipe setting ``init_from``).

Why: on CIFAR-10 an HTDA trained from scratch for a CPU budget learns its map from features that
are not yet about objects, and the map settles on low-level cues (dark regions, padding). Starting
the extractor from a trained S-SNN gives the attention generator object features from the first
step, and the masked window's loss then asks it to keep what the trained classifier reads.
This is a deviation from the paper's single-stage training (README, "Deviations from the paper").
"""

from __future__ import annotations

import torch

from ..errors import ConfigError


def warm_start(model: torch.nn.Module, name: str) -> dict:
    """Copy every tensor of zoo model ``name`` whose key and shape match ``model``'s; returns a record.

    One key is adapted instead of copied: a decoder that reads fewer steps (decoder_steps
    "attended") takes the source decoder's columns of the last steps, which are the steps it
    reads (readouts are flattened step-major). Keys the source lacks (the attention generator)
    keep their random initialisation. Hand-written: neither torch nor SpikingJelly loads across
    two architectures.
    """
    from ..zoo import load_model  # the zoo sits above training; imported here, when asked for

    source_model = load_model(name)
    card = source_model.zoo_card
    if (card["arch"], card["dataset"]) != (model.config.arch, model.config.dataset):
        raise ConfigError(f"init_from {name!r} is a {card['arch']} on {card['dataset']}, this model a "
                          f"{model.config.arch} on {model.config.dataset}: choose a zoo model of the same "
                          "arch and dataset")
    source = source_model.state_dict()
    target = model.state_dict()
    copied, adapted, kept = [], [], []
    for key, tensor in target.items():
        value = source.get(key)
        if value is not None and value.shape == tensor.shape:
            target[key] = value.to(tensor.dtype)
            copied.append(key)
        elif key == "decoder.weight" and value is not None and value.shape[0] == tensor.shape[0] \
                and value.shape[1] > tensor.shape[1]:
            target[key] = value[:, -tensor.shape[1]:].to(tensor.dtype)
            adapted.append(key)
        else:
            kept.append(key)
    model.load_state_dict(target)
    return {
        "name": name,
        "weights_sha256": card["weights_sha256"],
        "copied": len(copied),
        "adapted": adapted,
        "initialised_at_random": sorted({key.split(".")[0] for key in kept}),
    }
