"""SimCLR (Chen et al., ICML 2020, "A Simple Framework for Contrastive Learning of Visual Representations").

Two augmented global views of each of the ``B`` images (``pretrain_crops`` with ``global_scale``;
``local_crops`` is ignored) pass through the backbone and a projection MLP ``g``; the ``2B``
outputs are L2-normalised, ``z_k = g(f(x_k)) / ||g(f(x_k))||``. With ``j(i)`` the other view of
the image of view ``i`` and ``τ`` the temperature (Table 10: 0.1), the NT-Xent loss is

    ℓ_i = −log [ exp(z_i·z_{j(i)} / τ) / Σ_{k ≠ i} exp(z_i·z_k / τ) ],      L = (1 / 2B) Σ_i ℓ_i.

Projection MLP (:func:`~idmm_tui.methods.heads.projection_mlp`): ``Linear(d, proj_hidden) → BatchNorm1d → ReLU →
Linear(proj_hidden, proj_dim)`` as in SimCLR (BN, not LN: the paper's head; under DDP its
statistics are per device). ``projection_mlp = false`` contrasts the backbone features directly.

Under DDP the negatives are the whole global batch, as the reference code's cross-replica gather:
each rank gathers ``z`` from all ranks (differentiably, :func:`~idmm_tui.engine.distributed.gather_with_grad`)
and averages ``ℓ_i`` over its own ``2B`` anchors, ``k`` running over all ``2·B·world`` views; with
DDP averaging the gradients over ranks this is the loss and gradient of ``L`` on the global batch.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from idmm_tui.engine.distributed import gather_with_grad
from idmm_tui.engine.views import pretrain_crops
from idmm_tui.methods.base import Batch, Objective, TwoPart, register_method
from idmm_tui.methods.heads import ProjectionSettings, projection_mlp
from idmm_tui.recipe import PretrainConfig


class SimCLRConfig(ProjectionSettings, PretrainConfig):
    """SimCLR's settings: Table 10 (SGD, batch 512, lr 5e-4, wd 1e-3, τ 0.1, projection dim 256)."""

    method: Literal["simclr"] = "simclr"
    batch_size: int = Field(512, ge=1, le=65_536, description="total batch over all devices (Table 10)")
    lr: float | None = Field(5e-4, gt=0.0, le=10.0, description="peak learning rate (Table 10)")
    weight_decay: float = Field(1e-3, ge=0.0, le=10.0, description="Table 10")
    temperature: float = Field(0.1, gt=0.0, description="NT-Xent temperature tau (Table 10)")
    projection_mlp: bool = Field(True, description="2-layer projection MLP before the loss (Table 9); off = features")
    optimizer: Literal["auto", "adamw", "sgd"] = "sgd"


def two_views(gen: torch.Generator, batch: Batch, cfg: PretrainConfig) -> torch.Tensor:
    """``[2B, C, r, r]``: view 1 of every image, then view 2 (row ``k·B + i``)."""
    return pretrain_crops(gen, batch.images, batch.sizes, 2, tuple(cfg.global_scale), cfg)


def contrastive_head(num_features: int, cfg: SimCLRConfig) -> nn.Module:
    if not cfg.projection_mlp:
        return nn.Identity()
    return projection_mlp(num_features, cfg.proj_hidden, cfg.proj_dim, layers=2, norm=True)


def self_mask(n: int, total: int, offset: int, device: torch.device) -> torch.Tensor:
    """``[n, total]``, True where local row ``i`` meets its own column ``offset + i`` (the identity when single)."""
    return (torch.arange(n, device=device)[:, None] + offset) == torch.arange(total, device=device)[None, :]


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent of ``2B`` embeddings ordered (view 1 of all images, view 2 of all images).

    Under DDP these are this rank's anchors, contrasted against the views of all ranks.
    """
    z = F.normalize(z.float(), dim=1)
    n = z.shape[0]
    b = n // 2
    columns, offset = gather_with_grad(z)  # (z, 0) when not distributed
    sim = z @ columns.T / temperature
    sim = sim.masked_fill(self_mask(n, columns.shape[0], offset, z.device), float("-inf"))
    target = (torch.arange(n, device=z.device) + b) % n + offset
    return F.cross_entropy(sim, target)


@register_method
class SimCLR(Objective):
    name = "simclr"
    description = "SimCLR: NT-Xent contrastive loss on 2 views with a projection MLP (Table 2 baseline)"
    Config = SimCLRConfig

    def build(self, backbone: nn.Module, num_features: int, num_outputs: int, cfg: SimCLRConfig) -> nn.Module:
        return TwoPart(backbone, contrastive_head(num_features, cfg))

    def loss(
        self, module: nn.Module, batch: Batch, gen: torch.Generator, cfg: SimCLRConfig, epoch: int
    ) -> tuple[torch.Tensor, int]:
        views = two_views(gen, batch, cfg)
        z = module(views)
        return nt_xent(z, cfg.temperature), views.shape[0]
