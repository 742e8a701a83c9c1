"""Backbone registry: a name → a timm architecture + its kwargs + the paper's training defaults.

Every backbone is built by ``timm.create_model(spec.timm_arch, num_classes=0, **model_args)``, so a
model's ``forward`` returns its pooled feature ``[B, model.num_features]``:

* DeiT / ViT (``family="vit"``): the CLS token after the final norm (timm's ``global_pool="token"``).
* PVTv2 (``"pvt"``): the mean of the last stage's feature map.
* T2T-ViT (``"t2t"``): the CLS token after the final norm (see :mod:`idmm_tui.models.t2t_vit`).

The small CPU-sized ViTs are plain timm ViTs with other sizes (``deit_tiny_patch16_224`` plus
``model_args``), never a new timm registration, so a checkpoint exported with a ``config.json``
holding ``{"architecture", "model_args"}`` is rebuilt by plain timm:

============  =====  =====  =====  =====  =========  ==============================================
name          patch  embed  depth  heads  default px  params (backbone, at default px)
============  =====  =====  =====  =====  =========  ==============================================
vit_nano_p2   2      64     6      2      32          0.32M (unit tests, 32-px images, 16×16 grid)
vit_pico_p4   4      64     4      2      28          0.20M (fast CPU demos on 16–28 px images)
vit_micro_p4  4      128    4      4      32          0.81M (the paper's Fig. 3 0.8M-size model)
vit_mini_p4   4      192    6      3      64          2.73M (DeiT-Tiny's width, half its depth)
============  =====  =====  =====  =====  =========  ==============================================

Fine-tuning (:func:`load_backbone_state`) drops any classifier head and bicubically resamples the
absolute position embedding (``pos_embed``: DeiT/ViT and T2T-ViT; PVTv2 has none) to the new grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import timm
from timm.layers import resample_abs_pos_embed
from torch import Tensor, nn

from idmm_tui.errors import CheckpointError, UnknownNameError, UsageError
from idmm_tui.models import t2t_vit  # registers t2t_vit_* with timm

#: State-dict key prefixes of classifier heads (dropped when a backbone is loaded for a new task).
HEAD_PREFIXES = ("head.", "fc.")
#: The state-dict key of the absolute position embedding (ViT/DeiT and T2T-ViT; PVTv2 has none).
POS_EMBED_KEY = "pos_embed"

_VIT_LR, _VIT_WARMUP = 5e-4, 2  # paper: DeiT/ViT
_PVT_LR, _PVT_WARMUP = 1e-3, 10  # paper: PVTv2 and T2T-ViT


@dataclass(frozen=True)
class BackboneSpec:
    """One registered backbone: how timm builds it and its paper training defaults."""

    name: str
    timm_arch: str
    model_args: dict[str, Any] = field(hash=False)
    family: str  # "vit" | "pvt" | "t2t"
    lr: float
    warmup_epochs: int
    default_resolution: int
    description: str
    needs_idmm: bool = False

    @property
    def min_resolution(self) -> int:
        """The smallest legal input size in pixels."""
        if self.family == "vit":
            return int(self.model_args.get("patch_size", 16))
        return 32  # PVTv2: stage-1 spatial reduction 8 on a H/4 grid; T2T: a 2×2 token grid

    @property
    def resolution_step(self) -> int:
        """Input sizes must be a multiple of this (1: any size)."""
        if self.family == "vit":
            return int(self.model_args.get("patch_size", 16))
        return t2t_vit.T2T_STRIDE if self.family == "t2t" else 1


def _vit(name: str, arch: str, desc: str, res: int = 224, **model_args: Any) -> BackboneSpec:
    return BackboneSpec(name, arch, dict(model_args), "vit", _VIT_LR, _VIT_WARMUP, res, desc)


def _pvt(name: str, desc: str) -> BackboneSpec:
    return BackboneSpec(name, name, {}, "pvt", _PVT_LR, _PVT_WARMUP, 224, desc)


def _t2t(name: str, desc: str) -> BackboneSpec:
    return BackboneSpec(name, name, {}, "t2t", _PVT_LR, _PVT_WARMUP, 224, desc, needs_idmm=True)


# Parameter counts: measured backbone (num_classes=0) at the default resolution; in brackets the
# literature's count with a 1000-class head.
_SPECS: tuple[BackboneSpec, ...] = (
    _vit("deit_tiny_patch16_224", "deit_tiny_patch16_224", "DeiT-Tiny, 5.5M params (5.7M with 1k head)"),
    _vit("deit_small_patch16_224", "deit_small_patch16_224", "DeiT-Small, 21.7M params (22.1M with 1k head)"),
    _vit("deit_base_patch16_224", "deit_base_patch16_224", "DeiT-Base, 85.8M params (86.6M with 1k head)"),
    _pvt("pvt_v2_b0", "PVTv2-B0, 3.4M params (3.7M with 1k head)"),
    _pvt("pvt_v2_b1", "PVTv2-B1, 13.5M params (14.0M with 1k head)"),
    _pvt("pvt_v2_b2", "PVTv2-B2, 24.9M params (25.4M with 1k head)"),
    _pvt("pvt_v2_b3", "PVTv2-B3, 44.7M params (45.2M with 1k head)"),
    _t2t("t2t_vit_7", "T2T-ViT-7, 4.0M params (4.3M with 1k head)"),
    _t2t("t2t_vit_14", "T2T-ViT-14, 21.2M params (21.5M with 1k head)"),
    _vit("vit_nano_p2", "deit_tiny_patch16_224", "ViT-Nano/2 for tests and 32-px images, 0.32M params",
         res=32, patch_size=2, embed_dim=64, depth=6, num_heads=2, mlp_ratio=4.0),
    _vit("vit_pico_p4", "deit_tiny_patch16_224", "ViT-Pico/4 for fast CPU runs on 16-28 px images, 0.20M params",
         res=28, patch_size=4, embed_dim=64, depth=4, num_heads=2, mlp_ratio=4.0),
    _vit("vit_micro_p4", "deit_tiny_patch16_224", "ViT-Micro/4 (the paper's 0.8M size), 0.81M params",
         res=32, patch_size=4, embed_dim=128, depth=4, num_heads=4, mlp_ratio=4.0),
    _vit("vit_mini_p4", "deit_tiny_patch16_224", "ViT-Mini/4 for 64-px images, 2.7M params",
         res=64, patch_size=4, embed_dim=192, depth=6, num_heads=3, mlp_ratio=4.0),
)
_REGISTRY: dict[str, BackboneSpec] = {s.name: s for s in _SPECS}


def backbone_names() -> list[str]:
    """All registered backbone names, in registration order (paper models first, then small ViTs)."""
    return list(_REGISTRY)


def get_backbone_spec(name: str) -> BackboneSpec:
    """The spec of ``name``; an :class:`UnknownNameError` suggesting close names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("backbone", name, _REGISTRY) from None


def check_resolution(name: str, img_size: int) -> None:
    """Raise a :class:`UsageError` when ``name`` cannot be built for ``img_size``-pixel inputs."""
    spec = get_backbone_spec(name)
    lo, step = spec.min_resolution, spec.resolution_step
    if img_size < lo or img_size % step:
        need = f"a multiple of {step} and at least {lo}" if step > 1 else f"at least {lo}"
        raise UsageError(f"backbone {name!r} cannot take {img_size}-px inputs: the resolution must be {need}")


def timm_model_args(name: str, *, img_size: int, in_chans: int = 3) -> dict[str, Any]:
    """The kwargs ``timm.create_model(spec.timm_arch, **kwargs)`` needs to rebuild ``name`` (no head).

    This is what an exported ``config.json`` should hold as ``model_args`` (with ``num_classes`` set to
    the head's size when a head is exported). PVTv2 takes no ``img_size`` (it has no position
    embedding and accepts any input of at least 32 px).
    """
    spec = get_backbone_spec(name)
    check_resolution(name, img_size)
    args = dict(spec.model_args, num_classes=0, in_chans=in_chans)
    if spec.family != "pvt":
        args["img_size"] = img_size
    return args


def create_backbone(name: str, *, img_size: int, drop_path_rate: float = 0.1, in_chans: int = 3) -> nn.Module:
    """A freshly initialised timm model with no head: ``model(x) -> [B, model.num_features]``.

    Its ``pretrained_cfg`` is cleared of the timm entry's weight source (url, hub id, tag, license:
    these models are trained from scratch) and records the real input size.
    """
    spec = get_backbone_spec(name)
    args = timm_model_args(name, img_size=img_size, in_chans=in_chans)
    overlay = dict(url="", hf_hub_id=None, tag=None, license=None, num_classes=0,
                   input_size=(in_chans, img_size, img_size))
    return timm.create_model(spec.timm_arch, pretrained=False, pretrained_cfg_overlay=overlay,
                             drop_path_rate=drop_path_rate, **args)


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def _is_head_key(key: str) -> bool:
    return key.startswith(HEAD_PREFIXES)


def _pos_embed_layout(model: nn.Module, num_tokens: int) -> tuple[int, tuple[int, int]]:
    """(number of prefix tokens with a position embedding, patch grid) of ``model``'s ``pos_embed``."""
    prefix = 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 1))
    patch_embed = getattr(model, "patch_embed", None)
    grid = getattr(patch_embed, "grid_size", None) or getattr(model, "grid_size", None)
    if grid is None:
        side = math.isqrt(num_tokens - prefix)
        grid = (side, side)
    return prefix, (int(grid[0]), int(grid[1]))


def adapt_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A copy of ``state_dict`` fitted to ``model``: classifier-head keys dropped, ``pos_embed`` resampled.

    The absolute position embedding is resampled bicubically (``timm.layers.resample_abs_pos_embed``,
    prefix/CLS tokens kept as they are) from the checkpoint's square grid to the model's grid when they
    differ, e.g. 7×7 at 112 px → 14×14 at 224 px. Other tensors are passed through untouched.
    """
    out = {k: v for k, v in state_dict.items() if not _is_head_key(k)}
    target = getattr(model, POS_EMBED_KEY, None)
    src = out.get(POS_EMBED_KEY)
    if not isinstance(target, Tensor) or target.ndim != 3 or src is None or src.ndim != 3:
        return out
    if src.shape == target.shape or src.shape[-1] != target.shape[-1]:
        return out  # nothing to do, or a width mismatch that load_backbone_state reports
    prefix, new_grid = _pos_embed_layout(model, target.shape[1])
    old_side = math.isqrt(src.shape[1] - prefix)
    if old_side * old_side != src.shape[1] - prefix:
        raise CheckpointError(
            f"cannot resample {POS_EMBED_KEY} {tuple(src.shape)}: {src.shape[1] - prefix} patch tokens is "
            f"not a square grid"
        )
    out[POS_EMBED_KEY] = resample_abs_pos_embed(
        src, new_size=list(new_grid), old_size=[old_side, old_side], num_prefix_tokens=prefix
    )
    return out


def _few(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f" … (+{len(keys) - n} more)" if len(keys) > n else "")


def load_backbone_state(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Load a backbone checkpoint into ``model`` (after :func:`adapt_state_dict`), strictly.

    Every non-head key of the model must be in the checkpoint with the same shape, and the checkpoint
    may hold nothing else (besides head keys, which are dropped). Otherwise a :class:`CheckpointError`
    names the missing / unexpected / mismatched keys and the model is left unchanged. The model's own
    head (if it has one) keeps its current weights.
    """
    sd = adapt_state_dict(model, state_dict)
    own = model.state_dict()
    missing = sorted(k for k in own if not _is_head_key(k) and k not in sd)
    unexpected = sorted(k for k in sd if k not in own)
    mismatched = [
        f"{k} {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(sd) if k in own and sd[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_few(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {_few(mismatched, 4)}")
    if problems:
        raise CheckpointError(
            f"checkpoint does not fit this {type(model).__name__} backbone ({'; '.join(problems)}); "
            f"was it trained with another backbone?"
        )
    model.load_state_dict(sd, strict=False)
