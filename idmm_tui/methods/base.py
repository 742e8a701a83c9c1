"""The contract between the training loop and a pretraining method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from idmm_tui.errors import UnknownNameError
from idmm_tui.recipe import PretrainConfig

NO_PRETRAINING = "none"  # the random-init baseline: no pretraining stage at all


@dataclass
class Batch:
    """A batch of raw images on the training device."""

    images: torch.Tensor  # uint8 [B, C, H, W]
    sizes: torch.Tensor  # [B, 2] original (h, w)
    labels: torch.Tensor  # [B] class labels (only label-using methods may read them)
    instance_ids: torch.Tensor  # [B] index of each image in the training split


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


class TwoPart(nn.Module):
    """``head(backbone(x))``: the module every stage trains and checkpoints."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class PretrainMethod(Protocol):
    name: str
    description: str
    uses_labels: bool
    optimizer: str  # Table 10's optimiser ("adamw" or "sgd"), used when the recipe says "auto"

    def build(self, backbone: nn.Module, num_features: int, num_instances: int, cfg: PretrainConfig) -> nn.Module:
        """The trainable module (a :class:`TwoPart` or similar with ``.backbone``)."""

    def loss(
        self, module: nn.Module, batch: Batch, gen: torch.Generator, cfg: PretrainConfig
    ) -> tuple[torch.Tensor, int]:
        """(loss to minimise, number of images the backbone processed)."""

    def after_step(self, module: nn.Module, progress: float) -> None:
        """Hook after each optimiser step (momentum encoders etc.); ``progress`` in [0, 1]."""


_METHODS: dict[str, PretrainMethod] = {}


def register_method(method: PretrainMethod) -> PretrainMethod:
    _METHODS[method.name] = method
    return method


def method_names() -> list[str]:
    """Registered methods plus ``none`` (random init, no pretraining)."""
    return sorted([*_METHODS, NO_PRETRAINING])


def get_method(name: str) -> PretrainMethod | None:
    """The method called ``name``; ``None`` for ``none``; UnknownNameError otherwise."""
    if name == NO_PRETRAINING:
        return None
    if name not in _METHODS:
        raise UnknownNameError("pretraining method", name, method_names())
    return _METHODS[name]
