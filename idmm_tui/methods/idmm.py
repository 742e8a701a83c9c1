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

**Switches for small budgets** (not in the paper's protocol; each off by default, each documented with
its source). With N rows in W and one positive per row per epoch, the instance head learns slowly when
the run is short:

* ``head_init = "features"`` — before the first step, one pass of the initial backbone over the training
  images (test-time view) and ``w_i = head_init_scale · f(x_i)/||f(x_i)||``, bias 0: the "contrastive
  prior" of the paper's reference [19], which its Sec. 3 describes as initialising W "in a contrastive way
  to accelerate convergence" — by Eq. 5 the loss is then a contrastive loss from the first step;
* ``head_lr_mult``, ``head_weight_decay`` — the head's own learning-rate multiplier and weight decay;
* ``cosine_head = true`` — a cosine classifier: ``logit_i = cos(f, w_i) / cosine_temperature`` (no bias),
  as PIC (Cao et al., NeurIPS 2020, "Parametric Instance Classification", τ = 0.2);
* ``local_crops_train_head = false`` — the local crops' loss trains the backbone but not W (PIC detaches
  W for small crops: their noisy views pull each row towards crop statistics).

More positives per row per step need no switch: fewer images per batch with more crops each
(``batch_size``, ``global_crops``, ``local_crops``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from idmm_tui.engine.mixing import cutmix, mixed_smoothed_ce
from idmm_tui.engine.views import crop_groups, pretrain_crops
from idmm_tui.methods.base import Batch, Objective, TwoPart, register_method, unwrap
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
    head_init: Literal["random", "features"] = Field(
        "random", description="W's initialisation: random (the paper) or the normalised features of the images"
    )
    head_init_scale: float = Field(1.0, gt=0.0, description="norm of each row of W when head_init = features")
    head_lr_mult: float = Field(1.0, gt=0.0, description="the head's learning rate = this x the schedule's")
    head_weight_decay: float | None = Field(None, ge=0.0, description="the head's weight decay; unset = weight_decay")
    cosine_head: bool = Field(False, description="cosine classifier: cos(f, w_i) / cosine_temperature, no bias (PIC)")
    cosine_temperature: float = Field(0.2, gt=0.0, le=10.0, description="temperature of the cosine classifier")
    local_crops_train_head: bool = Field(
        True, description="false: the local crops' loss trains the backbone but not W (PIC detaches W)"
    )

    @model_validator(mode="after")
    def _feature_init_needs_the_features(self) -> IdmmConfig:
        if self.head_init == "features" and self.projection_mlp:
            raise ValueError("head_init = 'features' needs projection_mlp = false (W sits on the backbone features)")
        return self


class CosineClassifier(nn.Module):
    """``logits = normalize(x) · normalize(W)ᵀ / τ``: every logit lies in ``[−1/τ, 1/τ]``."""

    def __init__(self, in_features: int, out_features: int, temperature: float):
        super().__init__()
        self.temperature = temperature
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=-1), F.normalize(self.weight, dim=-1)) / self.temperature


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
        width = cfg.proj_dim if cfg.projection_mlp else num_features
        if cfg.cosine_head:
            head: nn.Module = CosineClassifier(width, num_outputs, cfg.cosine_temperature)
        else:
            head = instance_head(width, num_outputs, cfg.head_bias)
        if cfg.projection_mlp:  # Table 9's "IDMM + proj. MLP" row: off by default, W is the head
            head = nn.Sequential(projection_mlp(num_features, cfg.proj_hidden, cfg.proj_dim, layers=2), head)
        return TwoPart(backbone, head)

    def loss(
        self, module: nn.Module, batch: Batch, gen: torch.Generator, cfg: IdmmConfig, epoch: int
    ) -> tuple[torch.Tensor, int]:
        total = torch.zeros((), device=batch.images.device)
        seen = 0
        for group, (n_crops, scale) in enumerate(crop_groups(cfg)):
            views = pretrain_crops(gen, batch.images, batch.sizes, n_crops, scale, cfg)
            targets = batch.instance_ids.repeat(n_crops)
            if cfg.cutmix_alpha > 0:
                mixed = cutmix(gen, views, cfg.cutmix_alpha)
                views, partner, lam = mixed.images, targets[mixed.perm], mixed.lam
            else:
                partner, lam = targets, 1.0
            local = group == 1  # crop_groups: the global group, then the local one
            logits = module(views) if cfg.local_crops_train_head or not local else module(views, head_grad=False)
            total = total + mixed_smoothed_ce(logits, targets, partner, lam, cfg.label_smoothing)
            seen += views.shape[0]
        return total, seen

    @torch.no_grad()
    def start(self, module: nn.Module, cfg: IdmmConfig, features: Callable[[], torch.Tensor]) -> None:
        """``head_init = "features"``: each row of W is its image's normalised feature (times the scale)."""
        if cfg.head_init != "features":
            return
        head = unwrap(module).head
        head.weight.copy_(cfg.head_init_scale * features().to(head.weight))
        if getattr(head, "bias", None) is not None:
            head.bias.zero_()
