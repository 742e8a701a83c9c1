"""Device choice and multi-GPU (DDP) set-up from ``torchrun``'s environment.

Under ``torchrun --nproc_per_node K idmm run …`` each process gets RANK / WORLD_SIZE / LOCAL_RANK;
the batch in the recipe is the *total* batch, split evenly over the ranks; every rank sees its own
shard of each epoch's permutation; only rank 0 writes the run directory. NCCL on CUDA, gloo on CPU
(which is how the tests exercise this path with 2 CPU processes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from idmm_tui.errors import UsageError


@dataclass(frozen=True)
class Placement:
    """Where this process trains."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(choice: str) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is an error."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("device = 'cuda' but no CUDA GPU is visible; use --set device=cpu or 'auto'")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def setup(choice: str) -> Placement:
    """Initialise the process group when launched by torchrun; else a single-process placement."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(choice)
    if world <= 1:
        return Placement(device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Placement(device, rank, world)


def teardown(place: Placement) -> None:
    if place.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(place: Placement, values: list[float]) -> list[float]:
    """Sum a few scalars over all ranks (identity when single-process)."""
    if not place.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=place.device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_flag(place: Placement, flag: bool) -> bool:
    """True on every rank when rank 0 says so (used for a graceful stop)."""
    if not place.distributed:
        return flag
    t = torch.tensor([1 if flag else 0], device=place.device)
    dist.broadcast(t, src=0)
    return bool(t.item())
