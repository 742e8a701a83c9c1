"""PVTv2 backbones (timm's ``pvt_v2_b*``).

Pooled feature: the mean of the last stage's feature map. No position embedding (nothing to
resample between resolutions); inputs of any size of at least 32 px (stage-1 spatial reduction 8 on
an H/4 grid).
"""

from __future__ import annotations

from idmm_tui.models.family import BackboneFamily
from idmm_tui.models.registry import TimmArch, register_backbone

PVT = BackboneFamily(
    "pvt",
    lr=1e-3,
    warmup_epochs=10,
    pooled_feature="mean of the last stage's feature map",
    has_pos_embed=False,
    takes_img_size=False,
    rank=1,
)


@register_backbone(PVT, description="PVTv2-B0, 3.4M params (3.7M with 1k head)", paper=True)
def pvt_v2_b0() -> TimmArch:
    return TimmArch("pvt_v2_b0")


@register_backbone(PVT, description="PVTv2-B1, 13.5M params (14.0M with 1k head)", paper=True)
def pvt_v2_b1() -> TimmArch:
    return TimmArch("pvt_v2_b1")


@register_backbone(PVT, description="PVTv2-B2, 24.9M params (25.4M with 1k head)", paper=True)
def pvt_v2_b2() -> TimmArch:
    return TimmArch("pvt_v2_b2")


@register_backbone(PVT, description="PVTv2-B3, 44.7M params (45.2M with 1k head)", paper=True)
def pvt_v2_b3() -> TimmArch:
    return TimmArch("pvt_v2_b3")
