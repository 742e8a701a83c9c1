"""Exact t-SNE (van der Maaten & Hinton, JMLR 2008) in torch: O(N²) memory and time, fine to a few thousand points.

idmm's ``viz tsne`` until 0.2; now the reference that ``scripts/tsne_compare.py`` measures openTSNE against
(``idmm_tui/evaluation/tsne.py`` says what was measured and why openTSNE replaced it).

1. :func:`pca` to at most 50 dimensions (centred; an eigendecomposition of the covariance).
2. :func:`calibrate`: for every point a Gaussian precision ``beta_i`` found by binary search so that the
   entropy of its conditional distribution ``p_{j|i} ∝ exp(-beta_i ||x_i - x_j||²)`` equals
   ``log(perplexity)`` (nats) to ``tol``; all rows are searched at once, in float64, with the nearest
   neighbour's distance subtracted first so nothing underflows.
3. Symmetrised joint probabilities ``p_ij = (p_{j|i} + p_{i|j}) / 2N``.
4. :func:`embed`: Student-t (one degree of freedom) similarities in 2-D and gradient descent on
   ``KL(P || Q)`` with the paper's settings: initial map drawn from N(0, 1e-4 I) with a seeded
   generator, 1,000 iterations, momentum 0.5 for the first 250 and 0.8 after, learning rate 100 with
   Jacobs' (1988) adaptive gains (+0.2 when the gradient changes sign, ×0.8 when it does not, at least
   0.01), early exaggeration ``P × 4`` for the first 100 iterations (the paper exaggerates in "the initial
   stages", 50 iterations in its experiments; its reference ``tsne.py`` uses 100, which reached a lower final
   KL on the demo's 2,000 test features: 0.751 vs 0.765), the map re-centred after every step.

Same inputs, seed, device and number of threads: the same map (other thread counts sum floats in
another order, which moves the map slightly).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

PCA_DIMS = 50
PERPLEXITY = 30.0
ITERATIONS = 1000
LEARNING_RATE = 100.0
EXAGGERATION = 4.0
EXAGGERATION_ITERS = 100
MOMENTUM = (0.5, 0.8)
MOMENTUM_SWITCH = 250
MIN_GAIN = 0.01
INIT_STD = 1e-2  # variance 1e-4


def pca(x: torch.Tensor, dims: int = PCA_DIMS) -> torch.Tensor:
    """``x`` [N, D] centred and projected on its ``dims`` leading principal axes (float64)."""
    x = x.double()
    x = x - x.mean(0, keepdim=True)
    if x.shape[1] <= dims:
        return x
    _, vectors = torch.linalg.eigh(x.T @ x)  # ascending eigenvalues
    return x @ vectors[:, -dims:].flip(1)


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances [N, N] (exact zeros on the diagonal, never negative)."""
    sq = (x * x).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min_(0.0)
    d2.fill_diagonal_(0.0)
    return d2


@dataclass
class Calibration:
    """Conditional probabilities ``p_{j|i}`` (rows sum to 1), the precisions and the entropies reached."""

    conditional: torch.Tensor  # [N, N] float64
    beta: torch.Tensor  # [N]
    entropy: torch.Tensor  # [N] nats


def calibrate(d2: torch.Tensor, perplexity: float, *, tol: float = 1e-5, max_iter: int = 200) -> Calibration:
    """Binary search of each row's precision so that its entropy is ``log(perplexity)`` (see the module docstring)."""
    n = d2.shape[0]
    if not 1.0 <= perplexity < n:
        raise ValueError(f"perplexity {perplexity} must be at least 1 and below the number of points ({n})")
    d = d2.double().clone()
    d.fill_diagonal_(float("inf"))
    d = d - d.min(1, keepdim=True).values  # nearest neighbour at 0: exp never underflows to an all-zero row
    target = math.log(perplexity)
    beta = torch.ones(n, dtype=torch.float64, device=d.device)
    lo = torch.full_like(beta, -math.inf)
    hi = torch.full_like(beta, math.inf)
    finite = torch.where(torch.isfinite(d), d, torch.zeros_like(d))
    for _ in range(max_iter):
        p = torch.exp(-d * beta[:, None])  # exp(-inf) = 0 on the diagonal
        total = p.sum(1)
        entropy = torch.log(total) + beta * (finite * p).sum(1) / total
        diff = entropy - target
        if bool((diff.abs() <= tol).all()):
            break
        too_flat = diff > 0  # entropy too high: sharpen (larger beta)
        lo = torch.where(too_flat, beta, lo)
        hi = torch.where(too_flat, hi, beta)
        up = torch.where(torch.isinf(hi), beta * 2.0, (beta + hi) / 2.0)
        down = torch.where(torch.isinf(lo), beta / 2.0, (beta + lo) / 2.0)
        beta = torch.where(diff.abs() <= tol, beta, torch.where(too_flat, up, down))
    p = torch.exp(-d * beta[:, None])
    total = p.sum(1, keepdim=True)
    entropy = torch.log(total[:, 0]) + beta * (finite * p).sum(1) / total[:, 0]
    return Calibration(p / total, beta, entropy)


def joint_probabilities(x: torch.Tensor, perplexity: float) -> torch.Tensor:
    """Symmetrised ``P`` [N, N] (sums to 1, floored at 1e-12) of points ``x``."""
    cond = calibrate(squared_distances(x.double()), perplexity).conditional
    p = cond + cond.T
    return (p / p.sum()).clamp_min(1e-12)


def kl_divergence(p: torch.Tensor, y: torch.Tensor) -> float:
    """``KL(P || Q)`` of map ``y`` (what t-SNE minimises)."""
    num = 1.0 / (1.0 + squared_distances(y.double()))
    num.fill_diagonal_(0.0)
    q = (num / num.sum()).clamp_min(1e-12)
    p = p.double()
    return float((p * torch.log(p / q)).sum())


@dataclass
class TsneResult:
    """The map [N, 2] (float32, CPU), the KL divergence along the way and the settings used."""

    embedding: torch.Tensor
    kl_history: list[tuple[int, float]] = field(default_factory=list)  # (iteration, KL) after exaggeration ends
    kl: float = float("nan")
    perplexity: float = PERPLEXITY
    iterations: int = ITERATIONS


def embed(
    p: torch.Tensor,
    *,
    dims: int = 2,
    iterations: int = ITERATIONS,
    learning_rate: float = LEARNING_RATE,
    exaggeration: float = EXAGGERATION,
    exaggeration_iters: int = EXAGGERATION_ITERS,
    momentum: tuple[float, float] = MOMENTUM,
    momentum_switch: int = MOMENTUM_SWITCH,
    seed: int = 0,
    kl_every: int = 50,
    on_iter: Callable[[int, int], None] | None = None,
) -> TsneResult:
    """Gradient descent on ``KL(P || Q)`` from a seeded random map (see the module docstring)."""
    n = p.shape[0]
    device = p.device
    gen = torch.Generator().manual_seed(seed)
    y = (torch.randn(n, dims, generator=gen, dtype=torch.float64) * INIT_STD).float().to(device)
    p32 = p.float()
    p_exaggerated = p32 * exaggeration if exaggeration_iters > 0 else p32
    velocity = torch.zeros_like(y)
    gains = torch.ones_like(y)
    history: list[tuple[int, float]] = []
    num = torch.empty(n, n, dtype=torch.float32, device=device)  # reused: no N² allocation per iteration
    pq = torch.empty_like(num)
    ones = torch.ones(n, 1, dtype=torch.float32, device=device)
    for it in range(iterations):
        # num_ij = 1 / (1 + |y_i - y_j|²), pq_ij = (p_ij - q_ij) num_ij, in ~8 passes over N² floats
        sq = (y * y).sum(1, keepdim=True)
        torch.addmm(sq + 1.0, y, y.T, alpha=-2.0, out=num)
        num.add_(sq.T).reciprocal_().fill_diagonal_(0.0)
        torch.add(p_exaggerated if it < exaggeration_iters else p32, num, alpha=-1.0 / float(num.sum()), out=pq)
        pq.mul_(num)
        both = pq @ torch.cat([y, ones], 1)  # [pq y | row sums of pq] in one pass
        grad = 4.0 * (both[:, dims:] * y - both[:, :dims])
        same_sign = (grad > 0) == (velocity > 0)
        gains = torch.where(same_sign, gains * 0.8, gains + 0.2).clamp_min(MIN_GAIN)
        velocity = (momentum[0] if it < momentum_switch else momentum[1]) * velocity - learning_rate * gains * grad
        y = y + velocity
        y = y - y.mean(0, keepdim=True)
        done = it + 1
        if done > exaggeration_iters and (done % kl_every == 0 or done == iterations):
            history.append((done, kl_divergence(p, y)))
        if on_iter:
            on_iter(done, iterations)
    final = history[-1][1] if history else kl_divergence(p, y)
    return TsneResult(y.float().cpu(), history, final, iterations=iterations)


def tsne(
    x: torch.Tensor,
    *,
    perplexity: float = PERPLEXITY,
    pca_dims: int = PCA_DIMS,
    seed: int = 0,
    device: str | torch.device = "cpu",
    on_iter: Callable[[int, int], None] | None = None,
    **settings,
) -> TsneResult:
    """The 2-D t-SNE map of ``x`` [N, D]: PCA, calibration, then :func:`embed` (``settings`` go to it)."""
    reduced = pca(x, pca_dims).to(device)
    p = joint_probabilities(reduced, perplexity)
    result = embed(p, seed=seed, on_iter=on_iter, **settings)
    result.perplexity = perplexity
    return result
