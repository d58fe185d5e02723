"""Data-parallel runs through Hugging Face Accelerate (DDP underneath), and the single-process path.

Started by `accelerate launch -m prunelora ...` or `torchrun --nproc-per-node N -m prunelora ...`,
every process runs the same command: training shards each global batch over the processes
(`split_batches`, so a run on N processes uses the same global batch size as one process), every
evaluation gathers its predictions from all processes, and only the main process writes files,
prints progress and fits membership-inference attacks. Started plainly, nothing here is used and
runs stay bit-for-bit repeatable on the CPU.
"""

from __future__ import annotations

import os
from functools import cache

import torch

MIXED_PRECISION = ("no", "bf16", "fp16")


def world_size() -> int:
    """Number of processes of this run (1 unless started by a distributed launcher)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return world_size() > 1


def rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


@cache
def accelerator(mixed_precision: str = "no", cpu: bool = False):
    """The process's Accelerator (one per process and setting; it initialises the process group).

    The backend follows the device: NCCL on GPUs, gloo on CPUs.
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    return Accelerator(mixed_precision=mixed_precision, cpu=cpu,
                       dataloader_config=DataLoaderConfiguration(split_batches=True))


def uses_accelerate(device: torch.device, mixed_precision: str) -> bool:
    """Accelerate drives the loop when several processes run, or for mixed precision on a GPU."""
    return is_distributed() or (mixed_precision != "no" and device.type == "cuda")


def process_device(device: torch.device) -> torch.device:
    """This process's device: under several processes on GPUs, the GPU of its local rank."""
    if device.type == "cuda" and is_distributed():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def barrier() -> None:
    """Wait for every process (after the main one wrote a file the others will read)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def gather_in_order(indices: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Collect per-process shards (rows at `indices`) from every process, back in index order."""
    if not is_distributed() or not torch.distributed.is_initialized():
        return tensors
    parts: list = [None] * world_size()
    torch.distributed.all_gather_object(parts, (indices.cpu(), *[t.cpu() for t in tensors]))
    parts = [p for p in parts if len(p[0])]  # a process may hold no sample of a tiny dataset
    if not parts:
        return tensors
    all_indices = torch.cat([p[0] for p in parts])
    order = torch.argsort(all_indices)
    return tuple(torch.cat([p[i + 1] for p in parts])[order] for i in range(len(tensors)))


def broadcast_from_main(value):
    """The main process's `value`, on every process."""
    if not is_distributed() or not torch.distributed.is_initialized():
        return value
    box = [value if is_main_process() else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
