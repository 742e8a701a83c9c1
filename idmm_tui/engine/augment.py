"""Batched image augmentation on tensors (CPU or GPU), each sample with its own random draw.

torchvision's v2 transforms draw ONE set of parameters for a whole batched tensor, which is not
multi-crop. Here every op takes a ``torch.Generator`` and draws per-sample parameters, so a batch
of uint8 images becomes a batch of augmented crops in a handful of tensor ops:

* random-resized crops are boxes sampled in each image's *original* pixel frame (so aspect ratios
  are those of the original even when images are stored resized to a square) and cut + resized
  in one ``torchvision.ops.roi_align`` call (adaptive sampling: bilinear when enlarging, an area
  average when shrinking, exact at equal size; the paper's fine-tuning
  uses bicubic RandomResizedCrop: a deliberate, documented deviation for speed);
* colour jitter (brightness, contrast, saturation, hue), grayscale, Gaussian blur and flips are
  per-sample masks and factors.

All functions take float images in [0, 1], shape [B, 3, H, W], unless stated otherwise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)  # the authors' release has a typo (0.228); this is the correct value


def uniform(gen: torch.Generator, n: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    """``n`` draws from U(low, high) on ``device``."""
    return torch.rand(n, generator=gen).to(device) * (high - low) + low


def bernoulli(gen: torch.Generator, n: int, p: float, device: torch.device) -> torch.Tensor:
    """``n`` booleans, each True with probability ``p``."""
    return torch.rand(n, generator=gen).to(device) < p


def to_float_rgb(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, C, H, W] with C in {1, 3} -> float [B, 3, H, W] in [0, 1]."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


# --------------------------------------------------------------------------------------------
# crops


def random_resized_boxes(
    gen: torch.Generator,
    sizes: torch.Tensor,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> torch.Tensor:
    """RandomResizedCrop boxes as fractions ``(x0, y0, x1, y1)`` of each image, shape [B, 4].

    ``sizes`` [B, 2] holds each image's original (height, width). Same sampling as torchvision's
    RandomResizedCrop: up to ``attempts`` tries of (area fraction ~ U(scale), log-aspect ~ U(log ratio)),
    the first that fits wins; else the largest centred box with the aspect clamped into ``ratio``.
    """
    device = sizes.device
    b = sizes.shape[0]
    h, w = sizes[:, 0:1].float(), sizes[:, 1:2].float()
    area = h * w * uniform(gen, b * attempts, *scale, device).view(b, attempts)
    log_r = uniform(gen, b * attempts, math.log(ratio[0]), math.log(ratio[1]), device).view(b, attempts)
    aspect = torch.exp(log_r)
    cw = torch.sqrt(area * aspect).round()
    ch = torch.sqrt(area / aspect).round()
    ok = (cw > 0) & (ch > 0) & (cw <= w) & (ch <= h)
    first = torch.argmax(ok.int(), dim=1, keepdim=True)  # first valid attempt (0 when none)
    found = ok.gather(1, first).squeeze(1)
    cw, ch = cw.gather(1, first).squeeze(1), ch.gather(1, first).squeeze(1)
    h, w = h.squeeze(1), w.squeeze(1)
    # fallback: whole image with the aspect ratio clamped into `ratio`, centred
    in_ratio = w / h
    fw = torch.where(in_ratio < ratio[0], w, torch.where(in_ratio > ratio[1], (h * ratio[1]).round(), w))
    fh = torch.where(in_ratio < ratio[0], (w / ratio[0]).round(), h)
    fh = torch.where(in_ratio > ratio[1], h, fh)
    cw, ch = torch.where(found, cw, fw), torch.where(found, ch, fh)
    x0 = torch.floor(torch.rand(b, generator=gen).to(device) * (w - cw + 1))
    y0 = torch.floor(torch.rand(b, generator=gen).to(device) * (h - ch + 1))
    x0 = torch.where(found, x0, ((w - cw) / 2).floor())
    y0 = torch.where(found, y0, ((h - ch) / 2).floor())
    return torch.stack([x0 / w, y0 / h, (x0 + cw) / w, (y0 + ch) / h], dim=1)


def center_boxes(sizes: torch.Tensor, crop_pct: float) -> torch.Tensor:
    """Eval crop as fractions: resize the short side to ``res / crop_pct``, centre-crop ``res``.

    Equivalent to the usual ``Resize(256) + CenterCrop(224)`` (crop_pct 0.875) on each original image.
    """
    h, w = sizes[:, 0].float(), sizes[:, 1].float()
    side = torch.minimum(h, w) * crop_pct
    fx, fy = side / w, side / h
    x0, y0 = (1 - fx) / 2, (1 - fy) / 2
    return torch.stack([x0, y0, x0 + fx, y0 + fy], dim=1)


def crop_resize(images: torch.Tensor, boxes: torch.Tensor, out: int, repeats: int = 1) -> torch.Tensor:
    """Cut box ``k·B + i`` (fractions) out of image ``i`` and resize it to ``out``×``out`` in one call.

    ``repeats`` crops per image (``boxes`` has ``repeats·B`` rows) are cut from the one copy of the batch:
    repeating the (large, stored) images instead would copy them ``repeats`` times per step."""
    b, _, hgt, wid = images.shape
    scale = torch.tensor([wid, hgt, wid, hgt], device=images.device, dtype=images.dtype)
    index = torch.arange(b, device=images.device, dtype=images.dtype).repeat(repeats)[:, None]
    rois = torch.cat([index, boxes.to(images.dtype) * scale], 1)
    return roi_align(images, rois, output_size=(out, out), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


# --------------------------------------------------------------------------------------------
# photometric ops


def _per_sample(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, [B, 1, H, W]."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``factor * a + (1 - factor) * b`` clamped to [0, 1], ``factor`` per sample."""
    f = _per_sample(factor)
    return (f * a + (1 - f) * b).clamp_(0, 1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * _per_sample(factor)).clamp(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = rgb_to_gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return blend(x, mean.expand_as(x), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return blend(x, rgb_to_gray(x).expand_as(x), factor)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-8), torch.zeros_like(maxc))
    d = delta.clamp_min(1e-8)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, maxc], 1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = torch.stack(
        [torch.stack(c, 1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], 1
    )  # [B, 6, 3, H, W]
    index = i[:, None, None].expand(-1, 1, 3, -1, -1)
    return table.gather(1, index).squeeze(1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shift`` (fraction of the colour wheel, per sample, in [-0.5, 0.5])."""
    hsv = rgb_to_hsv(x)
    hue = (hsv[:, 0] + shift.view(-1, 1, 1)) % 1.0
    return hsv_to_rgb(torch.stack([hue, hsv[:, 1], hsv[:, 2]], 1)).clamp_(0, 1)


def color_jitter(gen: torch.Generator, x: torch.Tensor, strength: float, hue: float, prob: float) -> torch.Tensor:
    """ColorJitter(b=c=s=strength, hue) applied with probability ``prob`` per sample.

    Factors are drawn per sample; the order of the four ops is drawn per batch (torchvision draws it
    per image: a small, documented simplification).
    """
    if strength <= 0 and hue <= 0 or prob <= 0:
        return x
    n, dev = x.shape[0], x.device
    apply = bernoulli(gen, n, prob, dev)
    out = x
    order = torch.randperm(4, generator=gen).to(dev).tolist()
    for op in order:
        if op == 0 and strength > 0:
            out = adjust_brightness(out, uniform(gen, n, max(0.0, 1 - strength), 1 + strength, dev))
        elif op == 1 and strength > 0:
            out = adjust_contrast(out, uniform(gen, n, max(0.0, 1 - strength), 1 + strength, dev))
        elif op == 2 and strength > 0:
            out = adjust_saturation(out, uniform(gen, n, max(0.0, 1 - strength), 1 + strength, dev))
        elif op == 3 and hue > 0:
            out = adjust_hue(out, uniform(gen, n, -hue, hue, dev))
    return torch.where(_per_sample(apply), out, x)


def random_grayscale(gen: torch.Generator, x: torch.Tensor, prob: float) -> torch.Tensor:
    if prob <= 0:
        return x
    apply = bernoulli(gen, x.shape[0], prob, x.device)
    return torch.where(_per_sample(apply), rgb_to_gray(x).expand_as(x), x)


def random_hflip(gen: torch.Generator, x: torch.Tensor, prob: float = 0.5) -> torch.Tensor:
    apply = bernoulli(gen, x.shape[0], prob, x.device)
    return torch.where(_per_sample(apply), x.flip(-1), x)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample ``sigma`` (pixels); kernel radius = ceil(3 σ_max)."""
    b, c, h, w = x.shape
    radius = max(1, min(int(math.ceil(3 * float(sigma.max()))), (min(h, w) - 1) // 2 or 1))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(taps[None] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # [B, K]
    weight = kernel.repeat_interleave(c, 0)  # [B*C, K]
    flat = x.reshape(1, b * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), weight[:, None, None, :], groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), weight[:, None, :, None], groups=b * c)
    return flat.view(b, c, h, w)


def random_blur(gen: torch.Generator, x: torch.Tensor, prob: float, sigma: tuple[float, float]) -> torch.Tensor:
    """GaussianBlur with σ ~ U(sigma) applied with probability ``prob`` per sample."""
    if prob <= 0:
        return x
    n = x.shape[0]
    apply = bernoulli(gen, n, prob, x.device)
    sig = uniform(gen, n, *sigma, x.device)
    if not bool(apply.any()):
        return x
    return torch.where(_per_sample(apply), gaussian_blur(x, sig), x)


def normalize(x: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s
