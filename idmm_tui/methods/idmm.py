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

import torch
from torch import nn

from idmm_tui.engine.mixing import cutmix, mixed_smoothed_ce
from idmm_tui.engine.views import pretrain_crops
from idmm_tui.methods.base import Batch, TwoPart, register_method
from idmm_tui.methods.simclr import projection_mlp
from idmm_tui.recipe import PretrainConfig


def instance_head(num_features: int, num_instances: int, bias: bool = True) -> nn.Linear:
    """The N-way instance classifier W (trunc-normal init, std 0.02, zero bias, as ViT heads)."""
    head = nn.Linear(num_features, num_instances, bias=bias)
    nn.init.trunc_normal_(head.weight, std=0.02)
    if bias:
        nn.init.zeros_(head.bias)
    return head


def crop_groups(cfg: PretrainConfig) -> list[tuple[int, tuple[float, float]]]:
    """(number of crops, RandomResizedCrop scale) of each non-empty crop group."""
    groups = [(cfg.global_crops, tuple(cfg.global_scale)), (cfg.local_crops, tuple(cfg.local_scale))]
    return [(n, s) for n, s in groups if n > 0]


class IDMM:
    name = "idmm"
    optimizer = "adamw"
    description = "parametric instance discrimination + multi-crop + CutMix (the paper's method)"
    uses_labels = False

    def build(self, backbone: nn.Module, num_features: int, num_instances: int, cfg: PretrainConfig) -> nn.Module:
        head = instance_head(cfg.proj_dim if cfg.projection_mlp else num_features, num_instances, cfg.head_bias)
        if cfg.projection_mlp:  # Table 9's "IDMM + proj. MLP" row: off by default, W is the head
            head = nn.Sequential(projection_mlp(num_features, cfg.proj_hidden, cfg.proj_dim, layers=2), head)
        return TwoPart(backbone, head)

    def loss(
        self, module: nn.Module, batch: Batch, gen: torch.Generator, cfg: PretrainConfig
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

    def after_step(self, module: nn.Module, progress: float) -> None:
        return None


register_method(IDMM())
