"""SupCon (Khosla et al., NeurIPS 2020, "Supervised Contrastive Learning"), the L^sup_out loss.

Same two views and projection MLP as :mod:`simclr` (``z`` L2-normalised, ``2B`` embeddings), but
every view of the same class is a positive. With ``A(i)`` all views but ``i`` and
``P(i) = {p ∈ A(i) : y_p = y_i}`` (never empty: it holds the other view of the same image),

    ℓ_i = −(1 / |P(i)|) Σ_{p ∈ P(i)} log [ exp(z_i·z_p / τ) / Σ_{a ∈ A(i)} exp(z_i·z_a / τ) ],
    L = (1 / 2B) Σ_i ℓ_i,      τ = 0.1 (Table 10).

Uses ``batch.labels`` (the only baseline that does). As in the reference implementation
(``SupConLoss``: ``loss = −(τ / τ_base) · mean_log_prob_pos``), the loss is scaled by ``τ / τ_base`` with
``base_temperature`` τ_base = 0.07: a constant factor (1.43 at τ = 0.1), which under SGD with momentum
is a larger effective learning rate, so it is kept. Under DDP, as in
:mod:`simclr`, each rank gathers ``z`` (with gradient) and the labels of all ranks, so ``A(i)`` and
``P(i)`` range over the global batch and each rank averages ``ℓ_i`` over its own anchors.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from idmm_tui.engine.distributed import gather, gather_with_grad
from idmm_tui.methods.base import Batch, Objective, TwoPart, register_method
from idmm_tui.methods.simclr import SimCLRConfig, contrastive_head, self_mask, two_views


class SupConConfig(SimCLRConfig):
    """SupCon's settings: SimCLR's Table 10 values (SGD, batch 512, lr 5e-4, wd 1e-3, τ 0.1, dim 256) + τ_base."""

    method: Literal["supcon"] = "supcon"
    base_temperature: float = Field(
        0.07, gt=0.0, description="the reference code's tau_base: the loss is scaled by tau / tau_base"
    )


def supcon_loss(
    z: torch.Tensor, labels: torch.Tensor, temperature: float, base_temperature: float | None = None
) -> torch.Tensor:
    """SupCon L^sup_out of embeddings ``z [n, D]`` with class ``labels [n]``.

    Under DDP these are this rank's anchors, against the views and labels of all ranks.
    """
    z = F.normalize(z.float(), dim=1)
    n = z.shape[0]
    columns, offset = gather_with_grad(z)  # (z, 0) when not distributed
    mask = self_mask(n, columns.shape[0], offset, z.device)
    sim = (z @ columns.T / temperature).masked_fill(mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positive = (labels[:, None] == gather(labels)[None, :]) & ~mask
    pos_log_prob = log_prob.masked_fill(~positive, 0.0).sum(1) / positive.sum(1).clamp(min=1)
    scale = temperature / base_temperature if base_temperature else 1.0  # the reference code's tau / tau_base
    return -scale * pos_log_prob.mean()


@register_method
class SupCon(Objective):
    name = "supcon"
    description = "SupCon: supervised contrastive loss over same-class views (uses labels; Table 2 baseline)"
    Config = SupConConfig
    uses_labels = True

    def build(self, backbone: nn.Module, num_features: int, num_outputs: int, cfg: SupConConfig) -> nn.Module:
        return TwoPart(backbone, contrastive_head(num_features, cfg))

    def loss(
        self, module: nn.Module, batch: Batch, gen: torch.Generator, cfg: SupConConfig, epoch: int
    ) -> tuple[torch.Tensor, int]:
        views = two_views(gen, batch, cfg)
        z = module(views)
        labels = batch.labels.repeat(2)
        return supcon_loss(z, labels, cfg.temperature, cfg.base_temperature), views.shape[0]
