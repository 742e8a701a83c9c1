"""Backbones: a registry over timm (DeiT, PVTv2, small ViTs) plus T2T-ViT, and pos-embed resizing.

Importing this package registers ``t2t_vit_7`` / ``t2t_vit_14`` with timm.
"""

from idmm_tui.models.registry import (
    HEAD_PREFIXES,
    POS_EMBED_KEY,
    BackboneSpec,
    adapt_state_dict,
    backbone_names,
    check_resolution,
    count_params,
    create_backbone,
    get_backbone_spec,
    load_backbone_state,
    timm_model_args,
)

__all__ = [
    "HEAD_PREFIXES",
    "POS_EMBED_KEY",
    "BackboneSpec",
    "adapt_state_dict",
    "backbone_names",
    "check_resolution",
    "count_params",
    "create_backbone",
    "get_backbone_spec",
    "load_backbone_state",
    "timm_model_args",
]
