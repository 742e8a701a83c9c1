"""The optimiser of a stage (the schedule sets its learning rate every step: :mod:`~idmm_tui.engine.schedule`)."""

from __future__ import annotations

import torch
from torch import nn

from idmm_tui.recipe import OptimConfig


def make_optimizer(module: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW (fine-tuning, IDMM, MoCo v3, DINO), or SGD with momentum 0.9 where the pretraining
    recipe asks for it (Table 10: SimCLR, SupCon, MoCo v2)."""
    if getattr(cfg, "optimizer", "adamw") == "sgd":
        return torch.optim.SGD(module.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
