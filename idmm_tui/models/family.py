"""What a backbone family decides: its paper training defaults and the rules its inputs must follow.

Each family is defined beside the backbones that belong to it (:mod:`~idmm_tui.models.vit`,
:mod:`~idmm_tui.models.pvt`, :mod:`~idmm_tui.models.t2t_vit`); the registry asks the family, never a
hard-coded list of family names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BackboneFamily:
    """A family of backbones: DeiT/ViT, PVTv2, T2T-ViT, or one a plugin adds."""

    name: str
    #: Peak learning rate and warmup epochs the paper uses for this family (IDMM and fine-tuning).
    lr: float
    warmup_epochs: int
    #: What the backbone's ``forward`` returns as the pooled feature (documentation for users).
    pooled_feature: str
    #: Whether the model has an absolute position embedding (``pos_embed``) to resample between resolutions.
    has_pos_embed: bool
    #: Whether timm's constructor takes ``img_size`` (PVTv2 does not: it accepts any input size).
    takes_img_size: bool = True
    #: Whether plain timm needs ``import idmm_tui.models`` to build it (an architecture idmm registers with timm).
    needs_idmm: bool = False
    #: Position in ``idmm models`` (lower first).
    rank: int = 50

    def min_resolution(self, model_args: dict[str, Any]) -> int:
        """The smallest legal input size in pixels."""
        return 32

    def resolution_step(self, model_args: dict[str, Any]) -> int:
        """Input sizes must be a multiple of this (1: any size)."""
        return 1
