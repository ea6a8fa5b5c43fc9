"""torch.distributed as the stages use it: the process group torchrun describes, how work is split over ranks, and
the few collectives training and evaluation need.

`torchrun --nproc-per-node N cli.py ...` sets RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT; `current()` joins
that group once (gloo for CPU tensors, NCCL for CUDA ones) and every later call gets the same `Ranks`. Without
torchrun it is one process and every collective is the identity, so single-process code pays nothing.

Work is split the way torch's DistributedSampler splits it, interleaved: rank r takes items r, r + W, r + 2W, ...
of a list. Applied to each global batch, the ranks' batches together are exactly the batch one process would have
taken, which is what makes a W-process run match a one-process run with the same global batch.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from common.errors import UserError

T = TypeVar("T")
# A collective that waits longer than this ends the job with an error: a rank that died or stalled must never
# leave the others hanging for torch's default half hour without a word.
TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_MIN = "PROREG_DIST_TIMEOUT_MIN", 10.0


class DistributedError(UserError):
    """torchrun's environment is incomplete or the process group cannot be joined."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share of `items`, interleaved (DistributedSampler's split, without its padding)."""
        return list(items[self.rank :: self.world])

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of `values` over the ranks (a float64 or int64 CPU tensor, or one on this rank's
        GPU), on every rank."""
        if self.distributed:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def any(self, flag: bool) -> bool:
        """Whether `flag` is set on any rank, on every rank: how ranks agree to stop at the same step."""
        if not self.distributed:
            return flag
        return bool(self.sum(torch.tensor([int(flag)], device=_collective_device())).item())

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast(self, value: T) -> T:
        """Rank 0's `value` (any picklable object), on every rank."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_rows(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's `rows` ([n_r, ...], n_r may differ, even be 0) on every rank, in rank order."""
        if not self.distributed:
            return [rows]
        device = _collective_device()
        counts = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(self.world)]
        dist.all_gather(counts, torch.tensor([len(rows)], device=device))
        longest = max(int(c.item()) for c in counts)
        padded = torch.zeros((longest, *rows.shape[1:]), dtype=rows.dtype, device=device)
        padded[: len(rows)] = rows.to(device)
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        return [part[: int(n.item())].cpu() for part, n in zip(parts, counts, strict=True)]


def _collective_device() -> torch.device:
    """Where this process's collective tensors live (see collective_device)."""
    if not dist.is_initialized():
        return torch.device("cpu")
    index = torch.cuda.current_device() if torch.cuda.is_available() else None
    return collective_device(str(dist.get_backend()), index)


def collective_device(backend: str, cuda_index: int | None) -> torch.device:
    """Where collective tensors go for a process group of `backend`, as dist.get_backend() spells it: one name
    ("gloo", "nccl") or a device map ("cpu:gloo,cuda:nccl", which it returns whole). CUDA tensors when NCCL carries
    them (so a GPU's features never travel through the CPU), CPU tensors for gloo."""
    carriers = {}
    for part in backend.lower().split(","):
        device, _, name = part.strip().rpartition(":")
        if device:
            carriers[device] = name
        else:
            carriers.setdefault("cpu", name)
            carriers.setdefault("cuda", name)
    if carriers.get("cuda") == "nccl" and cuda_index is not None:
        return torch.device("cuda", cuda_index)
    return torch.device("cpu")


def from_environment() -> Ranks:
    """The ranks torchrun's variables describe, without joining anything (one process when they are absent)."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    values = {name: os.environ.get(name) for name in names}
    if values["WORLD_SIZE"] is None:
        return Ranks()
    try:
        rank, world = int(values["RANK"] or ""), int(values["WORLD_SIZE"] or "")
        local = int(values["LOCAL_RANK"] or rank)
    except ValueError as err:
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        raise DistributedError(f"torchrun's environment is not usable ({shown}): start with torchrun") from err
    if not 0 <= rank < world:
        raise DistributedError(f"RANK {rank} is outside WORLD_SIZE {world}")
    return Ranks(rank, world, local)


def current() -> Ranks:
    """This process's ranks, joining torchrun's process group on first use (gloo on CPU-only machines; gloo for
    CPU tensors and NCCL for CUDA ones where a GPU is visible, each rank on the GPU of its LOCAL_RANK)."""
    ranks = from_environment()
    if not ranks.distributed or dist.is_initialized():
        return ranks
    if torch.cuda.is_available():
        torch.cuda.set_device(ranks.local_rank % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise DistributedError(f"WORLD_SIZE is set but {name} is not: start distributed jobs with torchrun")
    dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world, timeout=collective_timeout())
    return ranks


def collective_timeout() -> datetime.timedelta:
    text = os.environ.get(TIMEOUT_VARIABLE, str(DEFAULT_TIMEOUT_MIN))
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise DistributedError(f"{TIMEOUT_VARIABLE}={text!r}: give the collective timeout in minutes, above 0")
    return datetime.timedelta(minutes=minutes)


def shutdown() -> None:
    """Leaves the process group (NCCL warns at exit otherwise); harmless when none was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()
