"""The contract between the training loop and an objective, and the registry of pretraining methods.

An objective turns a backbone into the module a stage trains (backbone + its heads) and computes the
loss of one batch. Every pretraining method (:mod:`~idmm_tui.methods.idmm`, ``simclr``, ``supcon``,
``moco``, ``dino``) and the fine-tuning objective (:mod:`~idmm_tui.methods.finetune`) follow it.

A pretraining method is one file in this package (or in a plugin package, through the
``idmm.methods`` entry point group) holding

* its settings: a pydantic model extending :class:`~idmm_tui.recipe.PretrainConfig` with
  ``method: Literal["<name>"]``, its own keys and its defaults (Table 10 for the paper's baselines);
* its objective, a subclass of :class:`Objective` decorated with :func:`register_method`.

Nothing else changes: the recipe validates ``[pretrain]`` against the chosen method's settings,
``idmm methods`` lists it, sweeps and the dashboard offer it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from idmm_tui.recipe import NO_PRETRAINING, OptimConfig, PretrainConfig
from idmm_tui.registry import Registry


class NoPretrainingConfig(PretrainConfig):
    """``method = "none"``: no pretraining stage; the shared keys (and any method's, dropped) are accepted, unused."""

    method: Literal["none"] = NO_PRETRAINING


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
    """``head(backbone(x))``: the module every stage trains and checkpoints.

    ``forward(x, head_grad=False)`` runs the head with detached parameters: the loss then trains the
    backbone through the head but not the head itself (PIC's treatment of small crops).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor, head_grad: bool = True) -> torch.Tensor:
        features = self.backbone(x)
        if head_grad:
            return self.head(features)
        frozen = {name: p.detach() for name, p in self.head.named_parameters()}
        return torch.func.functional_call(self.head, frozen, (features,))


class Objective:
    """A training objective: the module a stage trains, and the loss of one batch."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: The settings model of a stage with this objective.
    Config: ClassVar[type[OptimConfig]]
    #: Whether the loss reads ``batch.labels`` (only SupCon among the pretraining methods).
    uses_labels: ClassVar[bool] = False

    def build(self, backbone: nn.Module, num_features: int, num_outputs: int, cfg: Any) -> nn.Module:
        """The trainable module (a :class:`TwoPart` or similar with ``.backbone``).

        ``num_outputs``: the number of training images (pretraining) or of classes (fine-tuning).
        """
        raise NotImplementedError

    def loss(
        self, module: nn.Module, batch: Batch, gen: torch.Generator, cfg: Any, epoch: int
    ) -> tuple[torch.Tensor, int]:
        """(loss to minimise, number of images the backbone processed) of one batch in epoch ``epoch`` (0-based)."""
        raise NotImplementedError

    def start(self, module: nn.Module, cfg: Any, features: Callable[[], torch.Tensor]) -> None:
        """Hook before the first step of a stage that starts fresh (not on resume).

        ``features()`` computes the L2-normalised pooled features of the training images, in instance-id
        order, with the module's current backbone on their test-time view (one pass; call it only when needed).
        """

    def before_step(self, module: nn.Module, cfg: Any, epoch: int) -> None:
        """Hook between ``backward`` (and the recipe's ``grad_clip``) and the optimiser step (gradient surgery)."""

    def after_step(self, module: nn.Module, progress: float) -> None:
        """Hook after each optimiser step (momentum encoders etc.); ``progress`` in [0, 1]."""


METHODS: Registry[Objective] = Registry("pretraining method", "idmm_tui.methods", "idmm.methods")


def register_method(cls: type[Objective]) -> type[Objective]:
    """Class decorator: register a pretraining method under ``cls.name`` (its settings are ``cls.Config``)."""
    method_field = cls.Config.model_fields.get("method")
    if method_field is None or method_field.default != cls.name:
        raise TypeError(f"{cls.__name__}.Config must declare method: Literal[{cls.name!r}] = {cls.name!r}")
    if cls.name in PretrainConfig.model_fields or cls.name == NO_PRETRAINING:
        raise TypeError(f"method name {cls.name!r} collides with a [pretrain] key")
    METHODS.add(cls.name, cls())
    return cls


def pretrain_method_names() -> list[str]:
    """Registered pretraining methods (without ``none``), sorted."""
    return sorted(METHODS.names())


def method_names() -> list[str]:
    """Registered methods plus ``none`` (random init, no pretraining)."""
    return sorted([*METHODS.names(), NO_PRETRAINING])


def is_method_name(name: str) -> bool:
    return name == NO_PRETRAINING or name in METHODS


def get_method(name: str) -> Objective | None:
    """The method called ``name``; ``None`` for ``none``; UnknownNameError otherwise."""
    if name == NO_PRETRAINING:
        return None
    if name not in METHODS:
        from idmm_tui.errors import UnknownNameError

        raise UnknownNameError("pretraining method", name, method_names())
    return METHODS.get(name)


def config_class(name: str) -> type[PretrainConfig]:
    """The settings model of method ``name`` (``none`` included)."""
    method = get_method(name)
    return NoPretrainingConfig if method is None else method.Config
