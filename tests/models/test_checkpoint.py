"""Weights files round-trip and are readable by others (shared zoo and results folders)."""

import stat

import torch

from htda_bench.models import create_model
from htda_bench.models.checkpoint import load_weights, save_weights


def test_saved_weights_round_trip_and_are_world_readable(tmp_path):
    torch.manual_seed(0)
    model = create_model("htda", "vgg32c", "mnist").eval()
    path = tmp_path / "model.safetensors"
    save_weights(model, path)
    # safetensors writes its own file: the atomic rename must still leave it 0644, not mkstemp's 0600
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    loaded = load_weights(path).state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in model.state_dict().items())
