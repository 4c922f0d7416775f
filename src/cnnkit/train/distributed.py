"""Data-parallel training under torchrun: which process this is, and talking to the others.

`torchrun --nproc_per_node=W ...` starts W copies of the same program with ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE`` set. `process_group` joins them (gloo on the CPU, NCCL on
CUDA) for the duration of a run; the model is wrapped in DistributedDataParallel, which
averages gradients over processes in every backward pass. Without torchrun, W = 1 and nothing
here communicates.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Only process 0 writes files and prints."""
        return self.rank == 0


def resolve_device(name: str) -> torch.device:
    """"auto" → CUDA when available, else the CPU; under torchrun CUDA means cuda:LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but torch sees no CUDA device (a CPU build of torch, or no "
                             "driver); use --device cpu or auto")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[Processes]:
    """Join the torchrun process group if there is one (and leave it afterwards)."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size == 1:
        yield Processes(device=device)
        return
    owned = not dist.is_initialized()
    if owned:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield Processes(dist.get_rank(), dist.get_world_size(), device)
    finally:
        if owned:
            dist.destroy_process_group()


def current_processes(device: torch.device) -> Processes:
    """This process's place in the process group already joined, or a single process."""
    if dist.is_available() and dist.is_initialized():
        return Processes(dist.get_rank(), dist.get_world_size(), device)
    return Processes(device=device)


def broadcast_object(value, processes: Processes):
    """Process 0's ``value`` on every process."""
    if processes.world_size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_over_processes(values: torch.Tensor, processes: Processes) -> torch.Tensor:
    """Element-wise sum of a CPU tensor over processes (itself when W = 1)."""
    if processes.world_size == 1:
        return values
    on = processes.device if dist.get_backend() == "nccl" else torch.device("cpu")
    values = values.to(on)
    dist.all_reduce(values)
    return values.cpu()


def evaluation_positions(size: int, processes: Processes) -> range:
    """This process's share of an evaluation over ``size`` items: positions r, r+W, r+2W…,
    disjoint and without padding, so that every item is evaluated exactly once."""
    return range(processes.rank, size, processes.world_size)


def gather_in_order(items: list, processes: Processes) -> list:
    """Every process's ``items`` (computed for its `evaluation_positions`) on every process, back
    in position order: item p came from process p mod W, its (p div W)-th. Items are pickled
    (tensors included) through ``all_gather_object``."""
    if processes.world_size == 1:
        return items
    parts = [None] * processes.world_size
    dist.all_gather_object(parts, items)
    longest = max(len(part) for part in parts)
    return [part[i] for i in range(longest) for part in parts if i < len(part)]


def broadcast_buffers(module: torch.nn.Module, processes: Processes) -> None:
    """Process 0's buffers (batch-norm statistics) on every process. DistributedDataParallel
    sends them at the start of each forward pass, so after the last step each process holds the
    statistics of its own last batch; evaluation then uses the weights process 0 saves."""
    if processes.world_size > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)


def barrier(processes: Processes) -> None:
    if processes.world_size > 1:
        dist.barrier()


def restarted_by_torchrun() -> bool:
    """True in a worker that torchrun restarted after a failure (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)) > 0
