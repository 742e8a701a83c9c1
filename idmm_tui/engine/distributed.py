"""Device choice and multi-GPU (DDP) set-up from ``torchrun``'s environment.

Under ``torchrun --nproc_per_node K idmm run …`` each process gets RANK / WORLD_SIZE / LOCAL_RANK;
the batch in the recipe is the *total* batch, split evenly over the ranks; every rank sees its own
shard of each epoch's permutation; only rank 0 writes the run directory. NCCL on CUDA, gloo on CPU
(which is how the tests exercise this path with 2 CPU processes).

The gathers at the end serve the losses that compare against the global batch (SimCLR, SupCon,
MoCo v3, MoCo v2's queue): every rank must pass the same shape, which the trainer's even split ensures.
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
    """Initialise the process group when launched by torchrun; else a single-process placement.

    On a GPU, float32 matmuls and convolutions may use TF32 (Ampere and newer): the parts bf16 autocast
    leaves in float32 then run on the tensor cores too.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(choice)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
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


def launch_record(place: Placement) -> dict:
    """The summary.json keys saying how this run was launched: world size, nodes, hosts and every
    rank's host and process (gathered from all ranks: every rank must call it), the launcher and its
    command line (see :mod:`idmm_tui.runs.launcher`)."""
    import socket

    from idmm_tui.runs.launcher import detect_launch, summary_fields
    from idmm_tui.runs.store import process_start

    me = {"rank": place.rank, "host": socket.gethostname(), "pid": os.getpid(), "pid_start": process_start(os.getpid())}
    ranks: list = [me]
    if place.distributed:
        ranks = [None] * place.world_size
        dist.all_gather_object(ranks, me)
    return summary_fields(detect_launch(place.world_size), ranks)


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of the default process group; ``(0, 1)`` when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenation of ``x`` from all processes (rank order), no gradient; ``x`` itself when not distributed."""
    _, world = rank_and_world()
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class _GatherWithGrad(torch.autograd.Function):
    """Forward: all-gather along dim 0. Backward: sum over ranks of the gradient on the gathered
    tensor (every rank's loss may use every rank's rows), then this rank's slice. An all-reduce, not a
    reduce-scatter, so that gloo (no reduce-scatter) runs it too; the tensors are batch-sized embeddings."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        rank, _ = rank_and_world()
        ctx.rows = (rank * x.shape[0], (rank + 1) * x.shape[0])
        return gather(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)  # not in place on autograd's tensor
        dist.all_reduce(grad)
        return grad[ctx.rows[0] : ctx.rows[1]]


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(x of all processes concatenated in rank order, row of this process's x in it)``, differentiable.

    The gradient reaching ``x`` is the sum over ranks of what each rank's loss puts on these rows, so
    with DDP averaging the parameter gradients, a per-rank loss that is the mean over its local rows
    trains exactly as one process would on the whole batch. ``(x, 0)`` when not distributed.
    """
    rank, world = rank_and_world()
    if world == 1:
        return x, 0
    return _GatherWithGrad.apply(x), rank * x.shape[0]
