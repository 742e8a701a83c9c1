"""Backbones: a registry over timm (DeiT, PVTv2, small ViTs) plus T2T-ViT, and pos-embed resizing.

Importing this package registers ``t2t_vit_7`` / ``t2t_vit_14`` with timm (so plain
``timm.create_model`` rebuilds exported T2T-ViT models).
"""

from idmm_tui.models import t2t_vit  # noqa: F401  (registers the T2T-ViT architectures with timm)
from idmm_tui.models.registry import (
    BACKBONES,
    HEAD_PREFIXES,
    POS_EMBED_KEY,
    BackboneSpec,
    TimmArch,
    adapt_state_dict,
    backbone_names,
    check_resolution,
    count_params,
    create_backbone,
    get_backbone_spec,
    load_backbone_state,
    register_backbone,
    timm_model_args,
)

__all__ = [
    "HEAD_PREFIXES",
    "POS_EMBED_KEY",
    "BACKBONES",
    "BackboneSpec",
    "TimmArch",
    "adapt_state_dict",
    "backbone_names",
    "check_resolution",
    "count_params",
    "create_backbone",
    "get_backbone_spec",
    "load_backbone_state",
    "register_backbone",
    "timm_model_args",
]
