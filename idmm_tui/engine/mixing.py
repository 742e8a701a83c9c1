"""CutMix / Mixup on a batch and the label-smoothed, mixed cross-entropy of the paper.

The paper's targets (Eq. 17): ``1 - ε`` on the true class, ``ε / (N - 1)`` on each other class.
With CutMix (Eq. 19) the loss of a mixed input is ``λ·CE_ε(out, y_a) + (1 − λ)·CE_ε(out, y_b)``.
We write these directly instead of using ``timm.data.Mixup``: timm smooths with ``ε / N`` (not
``ε / (N − 1)``) and does not take ``λ = max(λ, 1 − λ)``, both of which the paper's method does.
Computing the loss from log-probabilities also avoids materialising a [B, N] soft-target matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Mixed:
    """A mixed batch: ``images`` = mix of each sample with sample ``perm[i]``, weight ``lam`` on itself."""

    images: torch.Tensor
    perm: torch.Tensor
    lam: float


def sample_beta(gen: torch.Generator, alpha: float) -> float:
    """λ ~ Beta(α, α), drawn from ``gen`` (via two Gamma draws, reproducible on any device)."""
    g1 = torch._standard_gamma(torch.full((1,), alpha, dtype=torch.float64), generator=gen)
    g2 = torch._standard_gamma(torch.full((1,), alpha, dtype=torch.float64), generator=gen)
    return float(g1 / (g1 + g2))


def cutmix_box(gen: torch.Generator, lam: float, height: int, width: int) -> tuple[int, int, int, int]:
    """A box ``(y0, y1, x0, x1)`` covering ≈ ``1 − λ`` of the image, centre uniform, clipped to the image."""
    cut = (1.0 - lam) ** 0.5
    ch, cw = int(height * cut), int(width * cut)
    cy = int(torch.randint(height, (1,), generator=gen))
    cx = int(torch.randint(width, (1,), generator=gen))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, height)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, width)
    return y0, y1, x0, x1


def cutmix(gen: torch.Generator, images: torch.Tensor, alpha: float, *, lam_at_least_half: bool = True) -> Mixed:
    """CutMix the batch with a random permutation of itself (one box and one λ for the batch).

    IDMM (METHOD.md): λ ~ Beta(α, α), λ = max(λ, 1 − λ), box from λ, then λ recomputed from the
    clipped box area so that the targets match the pixels.
    """
    b, _, h, w = images.shape
    perm = torch.randperm(b, generator=gen).to(images.device)
    lam = sample_beta(gen, alpha)
    if lam_at_least_half:
        lam = max(lam, 1.0 - lam)
    y0, y1, x0, x1 = cutmix_box(gen, lam, h, w)
    mixed = images.clone()
    mixed[:, :, y0:y1, x0:x1] = images[perm][:, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
    return Mixed(mixed, perm, lam)


def mixup(gen: torch.Generator, images: torch.Tensor, alpha: float, *, lam_at_least_half: bool = False) -> Mixed:
    """Mixup: ``λ·x + (1 − λ)·x[perm]`` with λ ~ Beta(α, α) (then ``max(λ, 1 − λ)`` when asked, as the release)."""
    perm = torch.randperm(images.shape[0], generator=gen).to(images.device)
    lam = sample_beta(gen, alpha)
    if lam_at_least_half:
        lam = max(lam, 1.0 - lam)
    return Mixed(images * lam + images[perm] * (1.0 - lam), perm, lam)


def smoothed_ce(logits: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-sample CE against Eq. 17's smoothed one-hot: ``1 − ε`` on ``target``, ``ε/(N−1)`` elsewhere."""
    logp = F.log_softmax(logits.float(), dim=-1)
    n = logits.shape[-1]
    true = logp.gather(1, target[:, None]).squeeze(1)
    if eps == 0.0 or n == 1:
        return -true
    others = logp.sum(-1) - true
    return -(1.0 - eps) * true - eps / (n - 1) * others


def mixed_smoothed_ce(
    logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float, eps: float
) -> torch.Tensor:
    """Batch-mean of ``λ·CE_ε(out, y_a) + (1 − λ)·CE_ε(out, y_b)`` (Eqs. 17–19)."""
    loss = lam * smoothed_ce(logits, y_a, eps)
    if lam < 1.0:
        loss = loss + (1.0 - lam) * smoothed_ce(logits, y_b, eps)
    return loss.mean()
