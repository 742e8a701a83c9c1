"""IDMM: parametric Instance Discrimination with Multi-crop and CutMix (the paper's method).

Every training image ``i`` is its own class: a linear layer ``W ∈ R^{d×N}`` with bias on the
backbone's pooled feature ``z_i``, trained with cross-entropy against the instance index
(Eqs. 1–3). Ingredients, each switchable in the recipe for the Table 8 ablation:

* label smoothing ε (Eq. 17: ``1 − ε`` on ``i``, ``ε/(N−1)`` elsewhere; Eq. 18) — ``label_smoothing``;
* small resolution — ``resolution`` (112 in the paper);
* multi-crop — ``global_crops`` crops of scale ``global_scale`` and ``local_crops`` of
  ``local_scale``, all at the same resolution; each group is one backbone pass;
* CutMix on instance ids, α = 0.5 (Eqs. 19–20): per group, one box, λ = max(λ, 1 − λ), partner =
  random permutation of the group; loss of a mixed input ``λ·CE_ε(y_a) + (1 − λ)·CE_ε(y_b)``.

The loss is the SUM over the two crop groups of each group's mean mixed cross-entropy.

``projection_mlp = true`` puts SimCLR's 2-layer projection MLP (``proj_hidden`` → ``proj_dim``)
between the features and W: the Table 9 ablation, which the paper finds does not help IDMM.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from idmm_tui.engine.mixing import cutmix, mixed_smoothed_ce
from idmm_tui.engine.views import crop_groups, pretrain_crops
from idmm_tui.methods.base import Batch, Objective, TwoPart, register_method
from idmm_tui.methods.heads import ProjectionSettings, projection_mlp
from idmm_tui.recipe import PretrainConfig


class IdmmConfig(ProjectionSettings, PretrainConfig):
    """IDMM's settings (``[pretrain]`` with ``method = "idmm"``): the paper's values by default."""

    method: Literal["idmm"] = "idmm"
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0, description="epsilon of Eq. 17 (0 = hard instance targets)")
    cutmix_alpha: float = Field(0.5, ge=0.0, description="CutMix Beta(a, a) on instance ids (Eqs. 19-20); 0 = off")
    head_bias: bool = Field(True, description="bias of the N-way instance head")
    projection_mlp: bool = Field(
        False, description="Table 9: a 2-layer projection MLP (proj_hidden -> proj_dim) before W; off in the paper"
    )
    optimizer: Literal["auto", "adamw", "sgd"] = "adamw"


def instance_head(num_features: int, num_instances: int, bias: bool = True) -> nn.Linear:
    """The N-way instance classifier W (trunc-normal init, std 0.02, zero bias, as ViT heads)."""
    head = nn.Linear(num_features, num_instances, bias=bias)
    nn.init.trunc_normal_(head.weight, std=0.02)
    if bias:
        nn.init.zeros_(head.bias)
    return head


@register_method
class IDMM(Objective):
    name = "idmm"
    description = "parametric instance discrimination + multi-crop + CutMix (the paper's method)"
    Config = IdmmConfig

    def build(self, backbone: nn.Module, num_features: int, num_outputs: int, cfg: IdmmConfig) -> nn.Module:
        head = instance_head(cfg.proj_dim if cfg.projection_mlp else num_features, num_outputs, cfg.head_bias)
        if cfg.projection_mlp:  # Table 9's "IDMM + proj. MLP" row: off by default, W is the head
            head = nn.Sequential(projection_mlp(num_features, cfg.proj_hidden, cfg.proj_dim, layers=2), head)
        return TwoPart(backbone, head)

    def loss(
        self, module: nn.Module, batch: Batch, gen: torch.Generator, cfg: IdmmConfig, epoch: int
    ) -> tuple[torch.Tensor, int]:
        total = torch.zeros((), device=batch.images.device)
        seen = 0
        for n_crops, scale in crop_groups(cfg):
            views = pretrain_crops(gen, batch.images, batch.sizes, n_crops, scale, cfg)
            targets = batch.instance_ids.repeat(n_crops)
            if cfg.cutmix_alpha > 0:
                mixed = cutmix(gen, views, cfg.cutmix_alpha)
                views, partner, lam = mixed.images, targets[mixed.perm], mixed.lam
            else:
                partner, lam = targets, 1.0
            logits = module(views)
            total = total + mixed_smoothed_ce(logits, targets, partner, lam, cfg.label_smoothing)
            seen += views.shape[0]
        return total, seen
