"""DeiT / ViT backbones (timm) and the small CPU-sized ViTs.

Pooled feature: the CLS token after the final norm (timm's ``global_pool="token"``). The small ViTs
are plain timm ViTs with other sizes (``deit_tiny_patch16_224`` + ``model_args``), never a new timm
registration, so a checkpoint exported with ``{"architecture", "model_args"}`` is rebuilt by plain timm:

============  =====  =====  =====  =====  ==========  ============================================
name          patch  embed  depth  heads  default px  params (backbone, at default px)
============  =====  =====  =====  =====  ==========  ============================================
vit_nano_p2   2      64     6      2      32          0.32M (unit tests, 32-px images, 16×16 grid)
vit_pico_p4   4      64     4      2      28          0.20M (fast CPU demos on 16–28 px images)
vit_micro_p4  4      128    4      4      32          0.81M (the paper's Fig. 3 0.8M-size model)
vit_mini_p4   4      192    6      3      64          2.73M (DeiT-Tiny's width, half its depth)
============  =====  =====  =====  =====  ==========  ============================================

Parameter counts in descriptions: measured backbone (``num_classes=0``) at the default resolution; in
brackets the literature's count with a 1000-class head.
"""

from __future__ import annotations

from typing import Any

from idmm_tui.models.family import BackboneFamily
from idmm_tui.models.registry import TimmArch, register_backbone


class VitFamily(BackboneFamily):
    """Patch-embedding ViTs: inputs must be a multiple of the patch size."""

    def min_resolution(self, model_args: dict[str, Any]) -> int:
        return int(model_args.get("patch_size", 16))

    def resolution_step(self, model_args: dict[str, Any]) -> int:
        return int(model_args.get("patch_size", 16))


VIT = VitFamily(
    "vit", lr=5e-4, warmup_epochs=2, pooled_feature="CLS token after the final norm", has_pos_embed=True, rank=0
)


@register_backbone(VIT, description="DeiT-Tiny, 5.5M params (5.7M with 1k head)", paper=True)
def deit_tiny_patch16_224() -> TimmArch:
    return TimmArch("deit_tiny_patch16_224")


@register_backbone(VIT, description="DeiT-Small, 21.7M params (22.1M with 1k head)", paper=True)
def deit_small_patch16_224() -> TimmArch:
    return TimmArch("deit_small_patch16_224")


@register_backbone(VIT, description="DeiT-Base, 85.8M params (86.6M with 1k head)", paper=True)
def deit_base_patch16_224() -> TimmArch:
    return TimmArch("deit_base_patch16_224")


def _small_vit(patch: int, embed: int, depth: int, heads: int) -> TimmArch:
    return TimmArch(
        "deit_tiny_patch16_224", patch_size=patch, embed_dim=embed, depth=depth, num_heads=heads, mlp_ratio=4.0
    )


@register_backbone(VIT, description="ViT-Nano/2 for tests and 32-px images, 0.32M params", default_resolution=32)
def vit_nano_p2() -> TimmArch:
    return _small_vit(2, 64, 6, 2)


@register_backbone(
    VIT, description="ViT-Pico/4 for fast CPU runs on 16-28 px images, 0.20M params", default_resolution=28
)
def vit_pico_p4() -> TimmArch:
    return _small_vit(4, 64, 4, 2)


@register_backbone(VIT, description="ViT-Micro/4 (the paper's 0.8M size), 0.81M params", default_resolution=32)
def vit_micro_p4() -> TimmArch:
    return _small_vit(4, 128, 4, 4)


@register_backbone(VIT, description="ViT-Mini/4 for 64-px images, 2.7M params", default_resolution=64)
def vit_mini_p4() -> TimmArch:
    return _small_vit(4, 192, 6, 3)
