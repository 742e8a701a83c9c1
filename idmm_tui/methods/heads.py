"""Pieces several methods share: the projection MLP and its settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class ProjectionSettings(BaseModel):
    """Sizes of a method's projection / predictor MLPs (Table 10: output dim 256)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    proj_dim: int = Field(256, ge=1, le=65_536, description="projection output dim (DINO: bottleneck dim), Table 10")
    proj_hidden: int = Field(2048, ge=1, le=65_536, description="hidden width of projection/predictor/DINO MLPs")


def projection_mlp(
    in_dim: int, hidden: int, out_dim: int, layers: int = 2, norm: bool = True, last_norm: bool = False
) -> nn.Sequential:
    """``layers`` Linear layers; every hidden one followed by [BatchNorm1d →] ReLU.

    ``last_norm`` adds an affine-free BatchNorm1d on the output (MoCo v3's projector).
    """
    mods: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        mods.append(nn.Linear(dim, hidden, bias=not norm))
        if norm:
            mods.append(nn.BatchNorm1d(hidden))
        mods.append(nn.ReLU(inplace=True))
        dim = hidden
    mods.append(nn.Linear(dim, out_dim, bias=not last_norm))
    if last_norm:
        mods.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*mods)
