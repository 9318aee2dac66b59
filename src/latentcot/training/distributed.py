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

from ..errors import ConfigError

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
    """Sum every parameter's gradient over the processes, in place.

    A parameter that got a gradient on some process but not on this one (a micro-batch without thoughts
    leaves the halting head or the step decoder unused) gets zeros first: otherwise the processes would
    flatten different lists into their buckets and sum unrelated numbers. One left without a gradient
    everywhere stays ``None``, as it would in one process."""
    if not info.enabled:
        return
    parameters = list(parameters)
    if not parameters:
        return
    present = torch.tensor([p.grad is not None for p in parameters], dtype=torch.int32,
                           device=parameters[0].device)
    dist.all_reduce(present, op=dist.ReduceOp.MAX)
    for p, anywhere in zip(parameters, present.tolist()):
        if anywhere and p.grad is None:
            p.grad = torch.zeros_like(p)
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


def shard_blocks(model: torch.nn.Module, device: torch.device, info: DistInfo) -> list[torch.nn.Module]:
    """FSDP2 on every transformer block (the classes HF lists in ``_no_split_modules``).

    Embeddings, final norm and LM head stay replicated: the continuous-thought pass calls them directly,
    outside any wrapped forward, and they are a small share of a large model.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    names = set(getattr(model, "_no_split_modules", None) or [])
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if not blocks:
        raise ConfigError(f"train.fsdp: cannot find the transformer blocks of {type(model).__name__}", "train.fsdp")
    mesh = init_device_mesh(device.type, (info.world_size,))
    for block in blocks:
        fully_shard(block, mesh=mesh)
    return blocks


def is_sharded(param: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(param, DTensor)


def _wide(t: torch.Tensor) -> torch.Tensor:
    """At least float32 for sums of squares; float64 stays float64."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def clip_grad_norm(parameters, max_norm: float, info: DistInfo) -> float:
    """Global gradient-norm clipping over sharded (DTensor) and replicated gradients alike."""
    params = [p for p in parameters if p.grad is not None]
    sharded = [p.grad for p in params if is_sharded(p.grad)]
    replicated = [p.grad for p in params if not is_sharded(p.grad)]
    if not sharded:
        return float(torch.nn.utils.clip_grad_norm_([p for p in params], max_norm))
    squares = torch.stack([_wide(g.to_local()).pow(2).sum() for g in sharded]).sum()
    if info.enabled:
        dist.all_reduce(squares)
    if replicated:
        squares = squares + torch.stack([_wide(g).pow(2).sum() for g in replicated]).sum()
    norm = squares.sqrt()
    coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    for grad in sharded:
        grad.to_local().mul_(coef.to(grad.device))
    for grad in replicated:
        grad.mul_(coef.to(grad.device))
    return float(norm)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(obj, info: DistInfo):
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown() -> None:
    """Leave the process group, once every process has arrived: a process that tears its gloo pairs down
    while a peer still talks to it can abort ('terminate called without an active exception')."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
