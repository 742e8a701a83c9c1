"""DINO (Caron et al., ICCV 2021, "Emerging Properties in Self-Supervised Vision Transformers").

Multi-crop: ``global_crops`` (2) crops of ``global_scale`` and ``local_crops`` of ``local_scale``,
all at ``resolution`` (as IDMM), so the student sees every view in one pass and the teacher only
the global ones. Student ``g_s = head(f_s)``, teacher ``g_t`` = EMA of the student
(:class:`~idmm_tui.methods.moco.MomentumModule`, momentum ``m₀ = momentum`` raised to 1 by a
half cosine; the teacher runs without stochastic depth). The DINO head: 3-layer MLP (GELU,
hidden ``proj_hidden``) to a ``proj_dim``-dim bottleneck (Table 10's "dim 256"), L2 normalisation,
and a weight-normalised linear layer (norm fixed to 1) to ``dino_out`` prototypes (65536, DINO's).

With student temperature ``τ_s`` (Table 10: 0.1), teacher temperature ``τ_t`` (linear warmup
0.04 → 0.07 over ``teacher_temp_epochs``) and the center ``c``,

    P_s(x) = softmax(g_s(x) / τ_s),    P_t(x) = softmax((g_t(x) − c) / τ_t)   (centering + sharpening),
    L = Σ_{x ∈ globals} Σ_{x' ∈ all views, x' ≠ x} H(P_t(x), P_s(x')),    H(a, b) = −Σ_k a_k log b_k,

each ``H`` averaged over the batch. This is the paper's Eq. (sum over view pairs); the official
code divides by the number of pairs, which only rescales the gradient (AdamW is nearly invariant).
After the loss, ``c ← λ·c + (1 − λ)·mean(g_t(globals))`` (λ = ``center_momentum`` 0.9, mean over
all devices). ``center`` and the training ``progress`` (which the teacher-temperature schedule
reads; set by ``after_step``, so it lags one step) are registered buffers, so resume is exact.
Also as DINO's code: each parameter's gradient clipped to norm 3.0 and the last layer frozen during the
first epoch (:meth:`DINO.before_step`). Not reproduced: the weight-decay schedule (0.04 → 0.4).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from idmm_tui.engine.views import crop_groups, pretrain_crops
from idmm_tui.methods.base import Batch, Objective, register_method, unwrap
from idmm_tui.methods.moco import MomentumModule, MomentumSettings, cosine_momentum
from idmm_tui.recipe import PretrainConfig


class DINOConfig(MomentumSettings, PretrainConfig):
    """DINO's settings: Table 10 (AdamW, batch 512, lr 5e-4, wd 0.04, student τ 0.1, bottleneck dim 256);
    where Table 10 is silent, DINO's own: teacher momentum 0.996, per-parameter gradient clipping at 3.0,
    last layer frozen during the first epoch, teacher temperature 0.04 → 0.07 over 30 epochs."""

    method: Literal["dino"] = "dino"
    batch_size: int = Field(512, ge=1, le=65_536, description="total batch over all devices (Table 10)")
    lr: float | None = Field(5e-4, gt=0.0, le=10.0, description="peak learning rate (Table 10)")
    weight_decay: float = Field(0.04, ge=0.0, le=10.0, description="Table 10")
    momentum: float = Field(0.996, ge=0.0, le=1.0, description="teacher EMA momentum, cosine to 1 (DINO: 0.996)")
    clip_grad: float = Field(3.0, ge=0.0, description="DINO's per-parameter gradient-norm clipping; 0 = off")
    freeze_last_layer: int = Field(1, ge=0, description="epochs during which the prototypes layer is not updated")
    temperature: float = Field(0.1, gt=0.0, description="the student's softmax temperature tau (Table 10)")
    teacher_temp: float = Field(0.07, gt=0.0, description="final teacher temperature")
    teacher_temp_start: float = Field(0.04, gt=0.0, description="teacher temperature at epoch 0")
    teacher_temp_epochs: float = Field(30.0, ge=0.0, description="epochs of linear teacher-temperature warmup")
    center_momentum: float = Field(0.9, ge=0.0, le=1.0, description="momentum of the teacher-output center")
    dino_out: int = Field(65_536, ge=2, le=1_000_000, description="prototypes (last-layer outputs)")
    optimizer: Literal["auto", "adamw", "sgd"] = "adamw"


class WeightNormLinear(nn.Module):
    """``x ↦ x · (v / ||v||)ᵀ`` per output row: weight normalisation with the norm ``g`` fixed to 1."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, F.normalize(self.weight, dim=1))


class DINOHead(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: int, bottleneck: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, bottleneck)
        )
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = WeightNormLinear(bottleneck, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))


def teacher_temperature(cfg: DINOConfig, progress: float) -> float:
    """Linear warmup ``teacher_temp_start → teacher_temp`` over ``teacher_temp_epochs`` epochs."""
    epoch = progress * cfg.epochs
    if cfg.teacher_temp_epochs <= 0 or epoch >= cfg.teacher_temp_epochs:
        return cfg.teacher_temp
    return cfg.teacher_temp_start + (cfg.teacher_temp - cfg.teacher_temp_start) * epoch / cfg.teacher_temp_epochs


def dino_loss(
    student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor, n_global: int, t_s: float, t_t: float
) -> torch.Tensor:
    """``student [V·B, K]`` (globals first), ``teacher [G·B, K]``: Σ over pairs (t ≠ s) of batch-mean H."""
    b = teacher.shape[0] // n_global
    s_logp = F.log_softmax(student.float() / t_s, dim=-1).split(b)
    t_p = F.softmax((teacher.float() - center) / t_t, dim=-1).detach().split(b)
    total = student.new_zeros((), dtype=torch.float32)
    for ti, p in enumerate(t_p):
        for si, logq in enumerate(s_logp):
            if si != ti:
                total = total + (-(p * logq).sum(-1)).mean()
    return total


@torch.no_grad()
def update_center(center: torch.Tensor, teacher: torch.Tensor, momentum: float) -> None:
    """``c ← λ·c + (1 − λ)·mean(teacher outputs)``, the mean over the outputs of all processes."""
    total = teacher.float().sum(0, keepdim=True)
    count = torch.tensor(float(teacher.shape[0]), device=teacher.device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total)
        dist.all_reduce(count)
    center.mul_(momentum).add_(total / count, alpha=1.0 - momentum)


@register_method
class DINO(Objective):
    name = "dino"
    description = "DINO: self-distillation with an EMA teacher, centering, sharpening, multi-crop (Table 2 baseline)"
    Config = DINOConfig

    def build(self, backbone: nn.Module, num_features: int, num_outputs: int, cfg: DINOConfig) -> nn.Module:
        module = MomentumModule(
            backbone, DINOHead(num_features, cfg.dino_out, cfg.proj_hidden, cfg.proj_dim), cfg.momentum
        )
        module.register_buffer("center", torch.zeros(1, cfg.dino_out))
        module.register_buffer("progress", torch.zeros((), dtype=torch.float64))
        return module

    def loss(
        self, module: nn.Module, batch: Batch, gen: torch.Generator, cfg: DINOConfig, epoch: int
    ) -> tuple[torch.Tensor, int]:
        inner = unwrap(module)
        inner.sync_teacher()
        groups = [pretrain_crops(gen, batch.images, batch.sizes, n, s, cfg) for n, s in crop_groups(cfg)]
        views = torch.cat(groups)
        n_global = cfg.global_crops
        student = module(views)
        teacher = inner.teacher(groups[0])
        t_t = teacher_temperature(cfg, float(inner.progress))
        loss = dino_loss(student, teacher, inner.center, n_global, cfg.temperature, t_t)
        update_center(inner.center, teacher, cfg.center_momentum)
        return loss, views.shape[0] + groups[0].shape[0]

    def before_step(self, module: nn.Module, cfg: DINOConfig, epoch: int) -> None:
        """DINO's gradient surgery: each parameter's gradient norm clipped to ``clip_grad``, then the last
        layer's gradients dropped during the first ``freeze_last_layer`` epochs (DINO's ``utils.clip_gradients``
        and ``cancel_gradients_last_layer``: "freezing it helps training")."""
        if cfg.clip_grad > 0:
            for p in module.student_parameters():
                if p.grad is not None:
                    norm = p.grad.detach().norm(2)
                    p.grad.mul_(torch.clamp(cfg.clip_grad / (norm + 1e-6), max=1.0))
        if epoch < cfg.freeze_last_layer:
            for p in module.head.last_layer.parameters():
                p.grad = None

    def after_step(self, module: nn.Module, progress: float) -> None:
        module.ema_update(cosine_momentum(module.momentum, progress))
        module.progress.fill_(progress)
