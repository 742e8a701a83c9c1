"""Batched RandAugment (DeiT's ``rand-m9-mstd0.5-inc1``) on float tensors, per-sample ops.

Each of ``num_ops`` rounds picks, per sample, one op of :data:`OPS` uniformly, applies it with
probability 0.5, at magnitude ``m + N(0, 0.5)`` (clipped to [0, 10]) with a random sign where the
op is signed — the policy timm uses for DeiT fine-tuning. Geometric ops of a round are folded into
one affine ``grid_sample``; photometric ops run on the subset of samples that drew them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from idmm_tui.engine.augment import adjust_brightness, adjust_contrast, adjust_saturation, blend

GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")
PHOTOMETRIC = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Posterize",
    "Solarize",
    "SolarizeAdd",
    "Color",
    "Contrast",
    "Brightness",
    "Sharpness",
)
OPS = GEOMETRIC + PHOTOMETRIC
FILL = 0.5  # grey fill for pixels moved in from outside the image
MAX_LEVEL = 10.0


def _affine(op: str, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """[n, 2, 3] affine matrices (normalised coordinates) for a geometric op."""
    n = level.shape[0]
    theta = torch.zeros(n, 2, 3, device=level.device, dtype=level.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    s = level / MAX_LEVEL * sign
    if op == "Rotate":
        angle = s * math.radians(30.0)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle), -torch.sin(angle)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle), torch.cos(angle)
    elif op == "ShearX":
        theta[:, 0, 1] = s * 0.3
    elif op == "ShearY":
        theta[:, 1, 0] = s * 0.3
    elif op == "TranslateX":
        theta[:, 0, 2] = s * 0.45 * 2  # fraction of the width; grid coordinates span 2
    elif op == "TranslateY":
        theta[:, 1, 2] = s * 0.45 * 2
    return theta


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation per sample and channel (256 bins)."""
    b, c, h, w = x.shape
    q = (x * 255).round().long().clamp(0, 255).view(b * c, h * w)
    hist = torch.zeros(b * c, 256, device=x.device, dtype=x.dtype).scatter_add_(1, q, torch.ones_like(q, dtype=x.dtype))
    cdf = hist.cumsum(1)
    cdf_min = torch.where(hist > 0, cdf, torch.full_like(cdf, float("inf"))).min(1, keepdim=True).values
    denom = (cdf[:, -1:] - cdf_min).clamp_min(1)
    lut = ((cdf - cdf_min) / denom).clamp(0, 1)
    flat = cdf_min >= cdf[:, -1:]  # a single grey level: nothing to equalise, left as is (like PIL)
    return torch.where(flat, x.reshape(b * c, h * w), lut.gather(1, q)).view(b, c, h, w)


def _photometric(op: str, x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    frac = level / MAX_LEVEL
    if op == "AutoContrast":
        lo = x.amin(dim=(2, 3), keepdim=True)
        hi = x.amax(dim=(2, 3), keepdim=True)
        return torch.where(hi > lo, (x - lo) / (hi - lo).clamp_min(1e-6), x)
    if op == "Equalize":
        return _equalize(x)
    if op == "Invert":
        return 1.0 - x
    if op == "Posterize":  # increasing: fewer bits as the level grows (4 bits at 0 .. 0 at 10)
        bits = (4 - (frac * 4).floor()).clamp(0, 8).view(-1, 1, 1, 1)
        step = 2.0 ** (8 - bits)
        return torch.floor(x * 255 / step) * step / 255
    if op == "Solarize":  # increasing: the threshold falls as the level grows
        thresh = (1.0 - frac).view(-1, 1, 1, 1)
        return torch.where(x >= thresh, 1.0 - x, x)
    if op == "SolarizeAdd":
        add = (frac * 110 / 255).view(-1, 1, 1, 1)
        return torch.where(x < 128 / 255, (x + add).clamp(0, 1), x)
    factor = 1.0 + frac * 0.9 * sign
    if op == "Color":
        return adjust_saturation(x, factor)
    if op == "Contrast":
        return adjust_contrast(x, factor)
    if op == "Brightness":
        return adjust_brightness(x, factor)
    if op == "Sharpness":
        kernel = torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], device=x.device, dtype=x.dtype) / 13
        smooth = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel.expand(3, 1, 3, 3), groups=3)
        return blend(x, smooth, factor)
    raise ValueError(f"unknown op {op}")


def rand_augment(
    gen: torch.Generator,
    x: torch.Tensor,
    num_ops: int = 2,
    magnitude: float = 9.0,
    magnitude_std: float = 0.5,
    prob: float = 0.5,
) -> torch.Tensor:
    """RandAugment on float images [B, 3, H, W] in [0, 1]; per-sample op, magnitude and sign."""
    if num_ops <= 0:
        return x
    n, dev = x.shape[0], x.device
    out = x
    for _ in range(num_ops):
        choice = torch.randint(len(OPS), (n,), generator=gen).to(dev)
        apply = torch.rand(n, generator=gen).to(dev) < prob
        level = (magnitude + magnitude_std * torch.randn(n, generator=gen).to(dev)).clamp(0, MAX_LEVEL)
        sign = torch.where(torch.rand(n, generator=gen).to(dev) < 0.5, -1.0, 1.0).to(x.dtype)
        level = level.to(x.dtype)
        theta = None
        for k, op in enumerate(GEOMETRIC):
            mask = apply & (choice == k)
            if bool(mask.any()):
                if theta is None:
                    theta = _affine("Identity", torch.zeros(n, device=dev, dtype=x.dtype), sign)
                theta[mask] = _affine(op, level[mask], sign[mask])
        if theta is not None:
            grid = F.affine_grid(theta, list(out.shape), align_corners=False)
            # pad with grey: sample (x - FILL), pad with zeros, add FILL back
            out = F.grid_sample(out - FILL, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + FILL
        out = out.clone()
        for k, op in enumerate(PHOTOMETRIC, start=len(GEOMETRIC)):
            mask = apply & (choice == k)
            if bool(mask.any()):
                out[mask] = _photometric(op, out[mask], level[mask], sign[mask]).clamp(0, 1)
    return out
