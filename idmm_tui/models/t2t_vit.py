"""T2T-ViT (Yuan et al. 2021, "Tokens-to-Token ViT", arXiv:2101.11986), registered with timm.

timm has no T2T-ViT, so it is written here from the paper (no code is taken from the official
release) and registered with ``timm.models.register_model``: once :mod:`idmm_tui.models` is
imported, ``timm.create_model("t2t_vit_7", num_classes=0, img_size=112)`` works.

Structure (paper Sec. 3, Fig. 4):

* **Tokens-to-Token module.** Soft split 1: ``nn.Unfold`` kernel 7, stride 4, padding 2 → tokens of
  ``in_chans·49`` values on an ``H/4`` grid; a *token transformer* maps them to ``token_dim`` (64);
  re-structurize to an image, soft split 2 (kernel 3, stride 2, padding 1, ``H/8``), a second token
  transformer, soft split 3 (kernel 3, stride 2, padding 1, ``H/16``), then a linear project to
  ``embed_dim``. The token grid is therefore ``img_size / 16`` (14×14 at 224, 7×7 at 112).
* The token transformers are the **'transformer'** type (T2T-ViT_t style): one-head attention whose
  q/k/v map the wide tokens down to ``token_dim``, a residual on ``v`` (input and output widths
  differ), then an MLP (ratio 1) with a normal residual. Unlike the official code, attention is
  scaled by ``head_dim ** -0.5`` of the attention itself (the official code scales by the *input*
  width, e.g. 147 ** -0.5, which looks like an oversight).
* A CLS token and a **learnable** absolute position embedding ``pos_embed`` of shape
  ``[1, 1 + grid², embed_dim]`` (trunc-normal, std 0.02, as DeiT). The official code uses a fixed
  1-D sinusoidal table; a learnable one is used here so that, as for DeiT, a checkpoint trained at
  112 px can be bicubically resampled to 224 / 448 (``timm.layers.resample_abs_pos_embed``).
* ``depth`` ViT blocks (``timm.models.vision_transformer.Block``, no qkv bias as in the paper),
  final LayerNorm; the pooled feature is the CLS token after the final norm.

Sizes (paper Table 1): T2T-ViT-7 = embed 256, depth 7, heads 4, MLP ratio 2 (4.3M params with a
1000-class head); T2T-ViT-14 = embed 384, depth 14, heads 6, MLP ratio 3 (21.5M).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, Mlp, to_2tuple, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import Block
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from idmm_tui.models.family import BackboneFamily
from idmm_tui.models.registry import TimmArch, register_backbone

__all__ = ["T2TViT", "t2t_vit_7", "t2t_vit_14"]

#: The T2T module divides the input resolution by this factor (stride 4, then 2, then 2).
T2T_STRIDE = 16


class TokenAttention(nn.Module):
    """Attention mapping ``dim``-wide tokens to ``out_dim``-wide ones, with a residual on ``v``."""

    def __init__(
        self,
        dim: int,
        out_dim: int,
        num_heads: int = 1,
        qkv_bias: bool = False,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if out_dim % num_heads:
            raise ValueError(f"out_dim {out_dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.out_dim = num_heads, out_dim
        self.qkv = nn.Linear(dim, out_dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(out_dim, out_dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.out_dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, N, head_dim]
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        out = out.transpose(1, 2).reshape(B, N, self.out_dim)
        out = self.proj_drop(self.proj(out))
        return v.transpose(1, 2).reshape(B, N, self.out_dim) + out


class TokenTransformer(nn.Module):
    """The T2T module's transformer layer: ``dim`` → ``out_dim`` attention, then an MLP (ratio 1)."""

    def __init__(
        self,
        dim: int,
        out_dim: int,
        num_heads: int = 1,
        mlp_ratio: float = 1.0,
        drop_path: float = 0.0,
        norm_layer: Callable[..., nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = TokenAttention(dim, out_dim, num_heads=num_heads)
        self.norm2 = norm_layer(out_dim)
        self.mlp = Mlp(out_dim, hidden_features=int(out_dim * mlp_ratio), out_features=out_dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.attn(self.norm1(x))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class T2TModule(nn.Module):
    """Tokens-to-Token: three soft splits with two token transformers between them, then a project."""

    def __init__(self, in_chans: int = 3, embed_dim: int = 768, token_dim: int = 64) -> None:
        super().__init__()
        self.soft_split0 = nn.Unfold(kernel_size=7, stride=4, padding=2)
        self.soft_split1 = nn.Unfold(kernel_size=3, stride=2, padding=1)
        self.soft_split2 = nn.Unfold(kernel_size=3, stride=2, padding=1)
        self.attention1 = TokenTransformer(in_chans * 7 * 7, token_dim)
        self.attention2 = TokenTransformer(token_dim * 3 * 3, token_dim)
        self.project = nn.Linear(token_dim * 3 * 3, embed_dim)

    @staticmethod
    def _restructurize(x: Tensor, hw: tuple[int, int]) -> Tensor:
        """Tokens [B, h*w, C] back to an image [B, C, h, w]."""
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], hw[0], hw[1])

    def forward(self, x: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        hw = ((H + 4 - 7) // 4 + 1, (W + 4 - 7) // 4 + 1)
        x = self.attention1(self.soft_split0(x).transpose(1, 2))
        x = self.soft_split1(self._restructurize(x, hw)).transpose(1, 2)
        hw = ((hw[0] - 1) // 2 + 1, (hw[1] - 1) // 2 + 1)
        x = self.attention2(x)
        x = self.soft_split2(self._restructurize(x, hw)).transpose(1, 2)
        return self.project(x)


class T2TViT(nn.Module):
    """T2T-ViT with a timm-style interface (``forward_features`` / ``forward_head`` / ``reset_classifier``).

    ``num_classes=0`` gives a model whose ``forward`` returns the pooled feature ``[B, num_features]``.
    ``img_size`` must be a multiple of 16 (the token grid is ``img_size / 16``).
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "token",
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        token_dim: int = 64,
        drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', not {global_pool!r}")
        img_size = to_2tuple(img_size)
        if any(s % T2T_STRIDE or s < T2T_STRIDE for s in img_size):
            raise ValueError(f"T2T-ViT needs an img_size that is a multiple of {T2T_STRIDE}, got {img_size}")
        self.img_size = tuple(img_size)
        self.grid_size = (img_size[0] // T2T_STRIDE, img_size[1] // T2T_STRIDE)
        self.num_classes, self.global_pool, self.in_chans = num_classes, global_pool, in_chans
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1
        self.no_embed_class = False  # the CLS token has a position embedding too (as in DeiT)
        self.grad_checkpointing = False

        self.tokens_to_token = T2TModule(in_chans=in_chans, embed_dim=embed_dim, token_dim=token_dim)
        num_patches = self.grid_size[0] * self.grid_size[1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = [r.item() for r in torch.linspace(0, drop_path_rate, depth, device="cpu")]
        self.blocks = nn.Sequential(
            *[
                Block(
                    dim=embed_dim,
                    num_heads=num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    proj_drop=proj_drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=dpr[i],
                )
                for i in range(depth)
            ]
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^cls_token|pos_embed|tokens_to_token", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))]
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the head by a fresh one with ``num_classes`` outputs (0: identity)."""
        self.num_classes = num_classes
        if global_pool is not None:
            if global_pool not in ("token", "avg"):
                raise ValueError(f"global_pool must be 'token' or 'avg', not {global_pool!r}")
            self.global_pool = global_pool
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        """All tokens after the final norm: ``[B, 1 + grid², embed_dim]`` (CLS first)."""
        x = self.tokens_to_token(x)
        if x.shape[1] + 1 != self.pos_embed.shape[1]:
            raise ValueError(
                f"T2T-ViT built for img_size {self.img_size} ({self.pos_embed.shape[1] - 1} tokens) got an "
                f"input giving {x.shape[1]} tokens; build it at the input's size (or resample pos_embed)"
            )
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.pos_drop(x + self.pos_embed)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            for blk in self.blocks:
                x = checkpoint(blk, x, use_reentrant=False)
        else:
            x = self.blocks(x)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool (CLS token, or mean of the patch tokens for ``global_pool='avg'``), then the head."""
        x = x[:, 0] if self.global_pool == "token" else x[:, self.num_prefix_tokens :].mean(dim=1)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "url": "",
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": None,
        "crop_pct": 0.9,
        "interpolation": "bicubic",
        "fixed_input_size": True,
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": None,
        "classifier": "head",
        "license": "mit",
        **kwargs,
    }


# No pretrained weights: these configs only describe the default input for timm's data helpers.
default_cfgs = generate_default_cfgs({"t2t_vit_7": _cfg(), "t2t_vit_14": _cfg()})


def _create_t2t_vit(variant: str, pretrained: bool = False, **kwargs: Any) -> T2TViT:
    cfg = kwargs.get("pretrained_cfg")
    source = (cfg or {}).get("source") if isinstance(cfg, dict | None) else getattr(cfg, "source", None)
    if pretrained and not source:  # `local-dir:` / `hf-hub:` loads (e.g. from the idmm zoo) carry a source
        raise ValueError(f"{variant}: no published pretrained weights; load an idmm zoo export with local-dir:/hf-hub:")
    return build_model_with_cfg(T2TViT, variant, pretrained, **kwargs)


@register_model
def t2t_vit_7(pretrained: bool = False, **kwargs: Any) -> T2TViT:
    """T2T-ViT-7: embed 256, depth 7, heads 4, MLP ratio 2 (≈4.3M params with a 1000-class head)."""
    model_args = dict(embed_dim=256, depth=7, num_heads=4, mlp_ratio=2.0)
    return _create_t2t_vit("t2t_vit_7", pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def t2t_vit_14(pretrained: bool = False, **kwargs: Any) -> T2TViT:
    """T2T-ViT-14: embed 384, depth 14, heads 6, MLP ratio 3 (≈21.5M params with a 1000-class head)."""
    model_args = dict(embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.0)
    return _create_t2t_vit("t2t_vit_14", pretrained=pretrained, **dict(model_args, **kwargs))


# -- the family's rules and its idmm backbones --------------------------------------------------


class T2TFamily(BackboneFamily):
    """T2T-ViT: the T2T module divides the input by 16, so sizes are multiples of 16 (at least 32: a 2×2 grid)."""

    def resolution_step(self, model_args: dict[str, Any]) -> int:
        return T2T_STRIDE


T2T = T2TFamily(
    "t2t",
    lr=1e-3,
    warmup_epochs=10,
    pooled_feature="CLS token after the final norm",
    has_pos_embed=True,
    needs_idmm=True,
    rank=2,
)


@register_backbone(T2T, name="t2t_vit_7", description="T2T-ViT-7, 4.0M params (4.3M with 1k head)", paper=True)
def _t2t_vit_7_backbone() -> TimmArch:
    return TimmArch("t2t_vit_7")


@register_backbone(T2T, name="t2t_vit_14", description="T2T-ViT-14, 21.2M params (21.5M with 1k head)", paper=True)
def _t2t_vit_14_backbone() -> TimmArch:
    return TimmArch("t2t_vit_14")
