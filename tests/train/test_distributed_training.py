"""A 2-process DDP training step (torchrun, gloo, CPU) gives the parameters of the 1-process step
on the same global batch (BatchNorm statistics synchronised across ranks)."""

import os
import subprocess
import sys

import torch

from htda_bench.models.checkpoint import load_weights

TRAIN = ["train", "--model", "htda", "--dataset", "mnist", "--epochs", "1", "--batch-size", "16",
         "--train-subset", "16", "--eval-subset", "16", "--precision", "fp32", "--quiet"]


def train(command, out, data_root):
    environment = dict(os.environ, OMP_NUM_THREADS="1", HTDA_BENCH_DATA=str(data_root))
    result = subprocess.run([*command, "-m", "htda_bench", *TRAIN, "--out", str(out)], capture_output=True,
                            text=True, env=environment, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]


def test_ddp_step_equals_single_process_step(data_root, tmp_path):
    train([sys.executable], tmp_path / "single", data_root)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29519"]
    train(torchrun, tmp_path / "ddp", data_root)
    single = load_weights(tmp_path / "single" / "model.safetensors").state_dict()
    ddp = load_weights(tmp_path / "ddp" / "model.safetensors").state_dict()
    assert single.keys() == ddp.keys()
    for name in single:
        if single[name].is_floating_point():
            torch.testing.assert_close(ddp[name], single[name], atol=1e-6, rtol=0, msg=name)
