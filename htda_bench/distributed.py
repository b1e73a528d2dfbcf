"""torch.distributed plumbing for sharded evaluation under ``torchrun`` (gloo on CPU, nccl on GPUs).

A single process is the world of size 1: every helper then does nothing, so the harness has one
code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def broadcast(self, value):
        """``value`` as rank 0 has it, on every rank."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value) -> list | None:
        """Every rank's ``value`` on rank 0 (in rank order); None elsewhere."""
        if self.size == 1:
            return [value]
        boxes = [None] * self.size if self.is_root else None
        dist.gather_object(value, boxes, dst=0)
        return boxes

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def current_world() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def init_from_environment() -> World:
    """Join the process group torchrun describes (WORLD_SIZE > 1); a no-op otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return current_world()
