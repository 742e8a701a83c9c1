"""Backbone registry: a name → a timm architecture + its kwargs + its family (paper defaults, input rules).

Backbones register with ``@register_backbone(FAMILY, description=...)`` on a function that returns the
timm architecture and its ``model_args`` (:class:`TimmArch`), beside their family: DeiT and the small
ViTs in :mod:`~idmm_tui.models.vit`, PVTv2 in :mod:`~idmm_tui.models.pvt`, T2T-ViT in
:mod:`~idmm_tui.models.t2t_vit` (a plugin package may add more through the ``idmm.backbones`` entry
point group). Every backbone is built by ``timm.create_model(arch, num_classes=0, **model_args)``, so
a model's ``forward`` returns its pooled feature ``[B, model.num_features]`` (what it is, the family
says: :attr:`BackboneFamily.pooled_feature`).

Fine-tuning (:func:`load_backbone_state`) drops any classifier head and bicubically resamples the
absolute position embedding (``pos_embed``: DeiT/ViT and T2T-ViT; PVTv2 has none) to the new grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import timm
import torch
from timm.layers import resample_abs_pos_embed
from torch import Tensor, nn

from idmm_tui.errors import CheckpointError, UsageError
from idmm_tui.models.family import BackboneFamily
from idmm_tui.registry import Registry

#: State-dict key prefixes of classifier heads (dropped when a backbone is loaded for a new task).
HEAD_PREFIXES = ("head.", "fc.")
#: The state-dict key of the absolute position embedding (ViT/DeiT and T2T-ViT; PVTv2 has none).
POS_EMBED_KEY = "pos_embed"


class TimmArch:
    """A timm architecture name and the kwargs that size it (what a registered backbone function returns)."""

    def __init__(self, arch: str, **model_args: Any) -> None:
        self.arch, self.model_args = arch, model_args


@dataclass(frozen=True)
class BackboneSpec:
    """One registered backbone: how timm builds it, its family and its default input size."""

    name: str
    timm_arch: str
    model_args: dict[str, Any] = field(hash=False)
    family: BackboneFamily
    default_resolution: int
    description: str
    paper: bool = False  # one of the paper's backbones (listed before the CPU-sized ones)

    @property
    def lr(self) -> float:
        return self.family.lr

    @property
    def warmup_epochs(self) -> int:
        return self.family.warmup_epochs

    @property
    def needs_idmm(self) -> bool:
        return self.family.needs_idmm

    @property
    def min_resolution(self) -> int:
        """The smallest legal input size in pixels."""
        return self.family.min_resolution(self.model_args)

    @property
    def resolution_step(self) -> int:
        """Input sizes must be a multiple of this (1: any size)."""
        return self.family.resolution_step(self.model_args)


BACKBONES: Registry[BackboneSpec] = Registry("backbone", "idmm_tui.models", "idmm.backbones")


def register_backbone(
    family: BackboneFamily,
    *,
    description: str,
    default_resolution: int = 224,
    paper: bool = False,
    name: str | None = None,
) -> Callable[[Callable[[], TimmArch]], Callable[[], TimmArch]]:
    """Decorator: register the function's :class:`TimmArch` as backbone ``name`` (default: the function's name)."""

    def decorate(fn: Callable[[], TimmArch]) -> Callable[[], TimmArch]:
        arch = fn()
        key = name or fn.__name__
        BACKBONES.add(
            key, BackboneSpec(key, arch.arch, dict(arch.model_args), family, default_resolution, description, paper)
        )
        return fn

    return decorate


def backbone_names() -> list[str]:
    """All registered backbone names: the paper's first, by family, then the CPU-sized ones."""
    specs = [BACKBONES.get(n) for n in BACKBONES.names()]
    return [s.name for s in sorted(specs, key=lambda s: (not s.paper, s.family.rank))]


def get_backbone_spec(name: str) -> BackboneSpec:
    """The spec of ``name``; an :class:`~idmm_tui.errors.UnknownNameError` suggesting close names otherwise."""
    return BACKBONES.get(name)


def _check_family_rules(name: str, img_size: int) -> None:
    spec = get_backbone_spec(name)
    lo, step = spec.min_resolution, spec.resolution_step
    if img_size < lo or img_size % step:
        need = f"a multiple of {step} and at least {lo}" if step > 1 else f"at least {lo}"
        raise UsageError(f"backbone {name!r} cannot take {img_size}-px inputs: the resolution must be {need}")


def check_resolution(name: str, img_size: int) -> None:
    """Raise a :class:`UsageError` when ``name`` cannot be built for ``img_size``-pixel inputs.

    The family's rules first (a clear message), then a build on the meta device (no memory, no
    weights), which catches anything else the architecture refuses.
    """
    _check_family_rules(name, img_size)
    try:
        with torch.device("meta"):
            create_backbone(name, img_size=img_size, drop_path_rate=0.0)
    except Exception as exc:  # any construction failure means this size does not work
        raise UsageError(f"backbone {name!r} cannot take {img_size}-px inputs: {exc}") from None


def timm_model_args(name: str, *, img_size: int, in_chans: int = 3) -> dict[str, Any]:
    """The kwargs ``timm.create_model(spec.timm_arch, **kwargs)`` needs to rebuild ``name`` (no head).

    This is what an exported ``config.json`` should hold as ``model_args`` (with ``num_classes`` set to
    the head's size when a head is exported). Families whose constructor takes no ``img_size`` (PVTv2:
    no position embedding, any input of at least 32 px) get none.
    """
    spec = get_backbone_spec(name)
    _check_family_rules(name, img_size)
    args = dict(spec.model_args, num_classes=0, in_chans=in_chans)
    if spec.family.takes_img_size:
        args["img_size"] = img_size
    return args


def create_backbone(name: str, *, img_size: int, drop_path_rate: float = 0.1, in_chans: int = 3) -> nn.Module:
    """A freshly initialised timm model with no head: ``model(x) -> [B, model.num_features]``.

    Its ``pretrained_cfg`` is cleared of the timm entry's weight source (url, hub id, tag, license:
    these models are trained from scratch) and records the real input size.
    """
    spec = get_backbone_spec(name)
    args = timm_model_args(name, img_size=img_size, in_chans=in_chans)
    overlay = dict(
        url="", hf_hub_id=None, tag=None, license=None, num_classes=0, input_size=(in_chans, img_size, img_size)
    )
    return timm.create_model(
        spec.timm_arch, pretrained=False, pretrained_cfg_overlay=overlay, drop_path_rate=drop_path_rate, **args
    )


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
        for k in sorted(sd)
        if k in own and sd[k].shape != own[k].shape
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
