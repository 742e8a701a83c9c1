"""Supervised fine-tuning, DeiT-style: the objective of every fine-tuning stage.

A new trunc-normal classifier head on the pooled feature; label-smoothed cross-entropy (ε = 0.1) with
Mixup on even epochs and CutMix on odd epochs (α = 0.5 each; λ = max(λ, 1 − λ) for both, as the
authors' release), on one augmented view per image
(:func:`~idmm_tui.engine.views.finetune_views`). Not a pretraining method: it is not registered, the
trainer uses it for ``[[finetune]]`` stages.
"""

from __future__ import annotations

import torch
from torch import nn

from idmm_tui.engine.mixing import cutmix, mixed_smoothed_ce, mixup
from idmm_tui.engine.views import finetune_views
from idmm_tui.methods.base import Batch, Objective, TwoPart
from idmm_tui.recipe import FinetuneConfig


def classifier_head(num_features: int, num_classes: int) -> nn.Linear:
    """A new ``num_classes``-way head (trunc-normal init, std 0.02, zero bias, as ViT heads)."""
    head = nn.Linear(num_features, num_classes)
    nn.init.trunc_normal_(head.weight, std=0.02)
    nn.init.zeros_(head.bias)
    return head


class FineTune(Objective):
    name = "finetune"
    description = "supervised fine-tuning: label-smoothed CE, Mixup on even / CutMix on odd epochs (DeiT)"
    Config = FinetuneConfig
    uses_labels = True

    def build(self, backbone: nn.Module, num_features: int, num_outputs: int, cfg: FinetuneConfig) -> nn.Module:
        return TwoPart(backbone, classifier_head(num_features, num_outputs))

    def loss(
        self, module: nn.Module, batch: Batch, gen: torch.Generator, cfg: FinetuneConfig, epoch: int
    ) -> tuple[torch.Tensor, int]:
        views = finetune_views(gen, batch.images, batch.sizes, cfg)
        y = batch.labels
        if epoch % 2 == 0 and cfg.mixup_alpha > 0:
            mixed = mixup(gen, views, cfg.mixup_alpha, lam_at_least_half=True)
        elif epoch % 2 == 1 and cfg.cutmix_alpha > 0:
            mixed = cutmix(gen, views, cfg.cutmix_alpha, lam_at_least_half=True)
        else:
            mixed = None
        if mixed is None:
            return mixed_smoothed_ce(module(views), y, y, 1.0, cfg.label_smoothing), views.shape[0]
        logits = module(mixed.images)
        return mixed_smoothed_ce(logits, y, y[mixed.perm], mixed.lam, cfg.label_smoothing), views.shape[0]


FINETUNE = FineTune()
