"""MoCo v2 and MoCo v3: contrastive learning against a momentum key encoder.

Both use two global views (``pretrain_crops`` with ``global_scale``) of each of the ``B`` images.
The key encoder ``(f_k, g_k)`` is a copy of the query backbone + projector ``(f_q, g_q)`` updated
only by EMA after each optimiser step (its parameters have ``requires_grad = False``, so the
trainer's AdamW never touches them):

    θ_k ← m·θ_k + (1 − m)·θ_q.

``m`` is ``momentum``: each method's own paper, since Table 10 is silent — 0.999 for MoCo v2 (a
small dataset gives few steps: lower it with ``momentum``), 0.99 for MoCo v3. MoCo v2 keeps ``m``
constant; MoCo v3 raises it to 1 with a half cosine,
``m(p) = 1 − (1 − m₀)(cos(πp) + 1)/2`` at training progress ``p`` (as MoCo v3's code).
The key encoder is copied from the query encoder on the first ``loss`` call (not at ``build``),
so it starts from whatever weights the run initialised the backbone with; a ``synced`` buffer
records that, so a resumed run does not copy again.

**MoCo v2** (Chen et al., 2020, "Improved Baselines with Momentum Contrastive Learning"; He et
al., CVPR 2020): ``q = norm(g_q(f_q(x₁)))``, ``k = norm(g_k(f_k(x₂)))`` (no gradient),
projector ``Linear → ReLU → Linear`` (no BN, as MoCo v2: no shuffle-BN needed), a queue
``Q ∈ R^{K×D}`` (``queue_size`` K = 2048, Table 10) of past keys, τ = 0.2:

    L = −(1/B) Σ_i log [ exp(q_i·k_i / τ) / ( exp(q_i·k_i / τ) + Σ_{j<K} exp(q_i·Q_j / τ) ) ].

After the loss the batch keys (gathered from all devices) are written into the queue at
``queue_ptr``, wrapping around (FIFO); queue and pointer are registered buffers (checkpointed).

**MoCo v3** (Chen, Xie & He, ICCV 2021, "An Empirical Study of Training Self-Supervised Vision
Transformers"): query path ``q = h(g_q(f_q(x)))`` with a predictor ``h``; projector 3 layers
(BN, affine-free BN on the output), predictor 2 layers (BN), hidden ``proj_hidden``; no queue,
the keys of the batch (gathered from all devices, no gradient) are the negatives; symmetric:

    ctr(q, k) = 2τ · (1/B) Σ_i −log [ exp(q_i·k_i / τ) / Σ_j exp(q_i·k_j / τ) ],
    L = ctr(q₁, k₂) + ctr(q₂, k₁),        τ = 0.2 (Table 10),

``q, k`` L2-normalised; the ``2τ`` factor is the official code's.
"""

from __future__ import annotations

import copy
import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from idmm_tui.engine.distributed import gather, rank_and_world
from idmm_tui.methods.base import Batch, Objective, register_method, unwrap
from idmm_tui.methods.heads import ProjectionSettings, projection_mlp
from idmm_tui.methods.simclr import two_views
from idmm_tui.recipe import PretrainConfig


class MomentumSettings(ProjectionSettings):
    """Settings every momentum-encoder method shares."""

    momentum: float = Field(
        0.99, ge=0.0, le=1.0, description="EMA momentum of the key encoder / teacher (mocov3, dino: cosine to 1)"
    )


class MoCoV2Config(MomentumSettings, PretrainConfig):
    """MoCo v2's settings: Table 10 (SGD, batch 256, lr 5e-4, wd 1e-3, τ 0.2, queue 2048, dim 256); the key
    encoder's momentum 0.999 is MoCo v2's own (Table 10 is silent)."""

    method: Literal["mocov2"] = "mocov2"
    lr: float | None = Field(5e-4, gt=0.0, le=10.0, description="peak learning rate (Table 10)")
    weight_decay: float = Field(1e-3, ge=0.0, le=10.0, description="Table 10")
    momentum: float = Field(0.999, ge=0.0, le=1.0, description="EMA momentum of the key encoder (MoCo v2: 0.999)")
    temperature: float = Field(0.2, gt=0.0, description="InfoNCE temperature tau (Table 10)")
    queue_size: int = Field(2048, ge=1, le=1_000_000, description="negative keys kept in the queue (Table 10)")
    optimizer: Literal["auto", "adamw", "sgd"] = "sgd"


class MoCoV3Config(MomentumSettings, PretrainConfig):
    """MoCo v3's settings: Table 10 (AdamW, batch 256, lr 1.5e-4, wd 0.1, τ 0.2, dim 256); momentum 0.99
    raised to 1 by a half cosine, MoCo v3's own (Table 10 is silent)."""

    method: Literal["mocov3"] = "mocov3"
    lr: float | None = Field(1.5e-4, gt=0.0, le=10.0, description="peak learning rate (Table 10)")
    weight_decay: float = Field(0.1, ge=0.0, le=10.0, description="Table 10")
    temperature: float = Field(0.2, gt=0.0, description="contrastive temperature tau (Table 10)")
    optimizer: Literal["auto", "adamw", "sgd"] = "adamw"


def cosine_momentum(base: float, progress: float) -> float:
    """``1 − (1 − base)(cos(π·progress) + 1)/2``: ``base`` at the start, 1 at the end."""
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(max(progress, 0.0), 1.0)) + 1.0) / 2.0


def _no_drop_path(module: nn.Module) -> None:
    """The momentum encoder / teacher runs without stochastic depth."""
    for m in module.modules():
        if hasattr(m, "drop_prob"):
            m.drop_prob = 0.0


class MomentumModule(nn.Module):
    """Student ``predictor(head(backbone(x)))`` (the forward) + EMA teacher ``teacher_head(teacher_backbone(x))``."""

    def __init__(self, backbone: nn.Module, head: nn.Module, momentum: float, predictor: nn.Module | None = None):
        super().__init__()
        self.momentum = momentum  # base EMA momentum (a setting, not state: comes from the recipe)
        self.backbone, self.head = backbone, head
        self.predictor = predictor if predictor is not None else nn.Identity()
        self.teacher_backbone = copy.deepcopy(backbone)
        self.teacher_head = copy.deepcopy(head)
        _no_drop_path(self.teacher_backbone)
        for p in self.teacher_parameters():
            p.requires_grad_(False)
        self.register_buffer("synced", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.head(self.backbone(x)))

    @torch.no_grad()
    def teacher(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher_head(self.teacher_backbone(x))

    def student_parameters(self) -> list[nn.Parameter]:
        return [*self.backbone.parameters(), *self.head.parameters()]

    def teacher_parameters(self) -> list[nn.Parameter]:
        return [*self.teacher_backbone.parameters(), *self.teacher_head.parameters()]

    @torch.no_grad()
    def sync_teacher(self) -> None:
        """Teacher := student, once (the first loss call), so it starts from the run's init weights."""
        if bool(self.synced):
            return
        for t, s in zip(self.teacher_parameters(), self.student_parameters(), strict=True):
            t.copy_(s)
        self.synced.fill_(True)

    @torch.no_grad()
    def ema_update(self, m: float) -> None:
        """``θ_t ← m·θ_t + (1 − m)·θ_s`` for every teacher parameter."""
        for t, s in zip(self.teacher_parameters(), self.student_parameters(), strict=True):
            t.mul_(m).add_(s.detach().to(t.dtype), alpha=1.0 - m)


def infonce_queue(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo v2 InfoNCE: positive ``q_i·k_i``, negatives ``q_i·Q_j``; all L2-normalised first."""
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.float(), dim=1)
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue.to(q.dtype).T
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


@torch.no_grad()
def enqueue(queue: torch.Tensor, ptr: torch.Tensor, keys: torch.Tensor) -> None:
    """Write ``keys`` into the ring buffer ``queue`` at ``ptr`` (wrapping) and advance ``ptr``."""
    size = queue.shape[0]
    keys = keys[-size:]
    idx = (int(ptr) + torch.arange(keys.shape[0], device=queue.device)) % size
    queue[idx] = keys.to(queue.dtype)
    ptr.fill_((int(ptr) + keys.shape[0]) % size)


def moco_v3_ctr(q: torch.Tensor, k: torch.Tensor, temperature: float, offset: int = 0) -> torch.Tensor:
    """``2τ · CE(q·kᵀ/τ, i + offset)``; ``k`` holds the keys of all devices, ``offset`` = this rank's start."""
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.float(), dim=1)
    logits = q @ k.T / temperature
    target = torch.arange(q.shape[0], device=q.device) + offset
    return F.cross_entropy(logits, target) * (2 * temperature)


@register_method
class MoCoV2(Objective):
    name = "mocov2"
    description = "MoCo v2: InfoNCE against a momentum key encoder and a queue of 2048 keys (Table 2 baseline)"
    Config = MoCoV2Config

    def build(self, backbone: nn.Module, num_features: int, num_outputs: int, cfg: MoCoV2Config) -> nn.Module:
        head = projection_mlp(num_features, cfg.proj_hidden, cfg.proj_dim, layers=2, norm=False)
        module = MomentumModule(backbone, head, cfg.momentum)
        module.register_buffer("queue", F.normalize(torch.randn(cfg.queue_size, cfg.proj_dim), dim=1))
        module.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        return module

    def loss(
        self, module: nn.Module, batch: Batch, gen: torch.Generator, cfg: MoCoV2Config, epoch: int
    ) -> tuple[torch.Tensor, int]:
        inner = unwrap(module)
        inner.sync_teacher()
        views = two_views(gen, batch, cfg)
        b = batch.images.shape[0]
        q = module(views[:b])
        k = F.normalize(inner.teacher(views[b:]).float(), dim=1)
        loss = infonce_queue(q, k, inner.queue.clone(), cfg.temperature)
        enqueue(inner.queue, inner.queue_ptr, gather(k))
        return loss, views.shape[0]

    def after_step(self, module: nn.Module, progress: float) -> None:
        module.ema_update(module.momentum)


@register_method
class MoCoV3(Objective):
    name = "mocov3"
    description = "MoCo v3: symmetric contrastive loss, momentum encoder + predictor (Table 2 baseline)"
    Config = MoCoV3Config

    def build(self, backbone: nn.Module, num_features: int, num_outputs: int, cfg: MoCoV3Config) -> nn.Module:
        head = projection_mlp(num_features, cfg.proj_hidden, cfg.proj_dim, layers=3, norm=True, last_norm=True)
        predictor = projection_mlp(cfg.proj_dim, cfg.proj_hidden, cfg.proj_dim, layers=2, norm=True)
        return MomentumModule(backbone, head, cfg.momentum, predictor)

    def loss(
        self, module: nn.Module, batch: Batch, gen: torch.Generator, cfg: MoCoV3Config, epoch: int
    ) -> tuple[torch.Tensor, int]:
        inner = unwrap(module)
        inner.sync_teacher()
        views = two_views(gen, batch, cfg)
        b = batch.images.shape[0]
        q = module(views)
        k = inner.teacher(views).float()
        k1, k2 = gather(k[:b]), gather(k[b:])
        tau = cfg.temperature
        offset = rank_and_world()[0] * b
        loss = moco_v3_ctr(q[:b], k2, tau, offset) + moco_v3_ctr(q[b:], k1, tau, offset)
        return loss, 2 * views.shape[0]

    def after_step(self, module: nn.Module, progress: float) -> None:
        module.ema_update(cosine_momentum(module.momentum, progress))
