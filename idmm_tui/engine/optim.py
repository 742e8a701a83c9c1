"""The optimiser of a stage (the schedule sets its learning rate every step: :mod:`~idmm_tui.engine.schedule`).

Weight decay:

* **fine-tuning** keeps biases, norm weights (every 1-D parameter), position embeddings and the class
  token out of weight decay — the names a model's ``no_weight_decay()`` lists — as DeiT does through
  timm's ``create_optimizer`` (``param_groups_weight_decay``);
* **pretraining** decays every parameter, as the authors' release does
  (``torch.optim.AdamW(model.parameters(), lr, weight_decay=…)`` in its instance-discrimination script).
"""

from __future__ import annotations

import torch
from torch import nn

from idmm_tui.recipe import FinetuneConfig, OptimConfig


def no_weight_decay_names(module: nn.Module) -> set[str]:
    """Full parameter names that a submodule's ``no_weight_decay()`` asks to keep out of weight decay."""
    names: set[str] = set()
    for prefix, sub in module.named_modules():
        wanted = getattr(sub, "no_weight_decay", None)
        if callable(wanted):
            names |= {f"{prefix}.{n}" if prefix else n for n in wanted()}
    return names


def param_groups(module: nn.Module, weight_decay: float, *, exclude: bool) -> list[dict]:
    """Trainable parameters in a decayed group and (``exclude``) a weight-decay-0 group of 1-D parameters,
    biases and ``no_weight_decay()`` names."""
    skip = no_weight_decay_names(module) if exclude else set()
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        if exclude and (param.ndim <= 1 or name.endswith(".bias") or name in skip):
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def head_groups(module: nn.Module, groups: list[dict], lr_mult: float, weight_decay: float | None) -> list[dict]:
    """``groups`` with the head's parameters (``module.head``) moved into groups of their own, whose learning
    rate is ``lr_mult`` times the schedule's (the trainer reads ``lr_mult``) and weight decay ``weight_decay``
    (None: the group's own)."""
    head = {id(p) for p in module.head.parameters()}
    out = []
    for group in groups:
        rest = [p for p in group["params"] if id(p) not in head]
        mine = [p for p in group["params"] if id(p) in head]
        if rest:
            out.append({**group, "params": rest})
        if mine:
            wd = group["weight_decay"] if weight_decay is None else weight_decay
            out.append({**group, "params": mine, "weight_decay": wd, "lr_mult": lr_mult})
    return out


def make_optimizer(module: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW (fine-tuning, IDMM, MoCo v3, DINO), or SGD with momentum 0.9 where the pretraining
    recipe asks for it (Table 10: SimCLR, SupCon, MoCo v2). A method with ``head_lr_mult`` /
    ``head_weight_decay`` settings (IDMM) gets its head in groups of their own."""
    groups = param_groups(module, cfg.weight_decay, exclude=isinstance(cfg, FinetuneConfig))
    lr_mult, head_wd = getattr(cfg, "head_lr_mult", 1.0), getattr(cfg, "head_weight_decay", None)
    if (lr_mult != 1.0 or head_wd is not None) and hasattr(module, "head"):
        groups = head_groups(module, groups, lr_mult, head_wd)
    if getattr(cfg, "optimizer", "adamw") == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
    on_gpu = all(p.is_cuda for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=on_gpu or None)  # one fused kernel per step on a GPU
