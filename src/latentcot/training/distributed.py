"""Multi-process data parallelism for ``torchrun``: process group set-up and gradient averaging.

The continuous-thought pass calls the model's sub-modules directly, which bypasses the hooks of a
``DistributedDataParallel`` wrapper, so gradients are summed explicitly after the backward passes,
in flat buckets to keep the number of collective calls small.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

BUCKET_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device | None = None) -> DistInfo:
    """Join the process group ``torchrun`` describes in the environment (no-op for one process)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    backend = "nccl" if (device is not None and device.type == "cuda") else "gloo"
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def sum_gradients(parameters, info: DistInfo) -> None:
    if not info.enabled:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    bucket: list[torch.Tensor] = []
    size = 0
    for grad in grads + [None]:
        if grad is not None:
            bucket.append(grad)
            size += grad.numel() * grad.element_size()
        if bucket and (grad is None or size >= BUCKET_BYTES):
            flat = _flatten_dense_tensors(bucket)
            dist.all_reduce(flat)
            for g, synced in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
                g.copy_(synced)
            bucket, size = [], 0


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(obj, info: DistInfo):
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
