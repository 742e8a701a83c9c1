"""t-SNE maps through openTSNE (Poličar, Stražar & Zupan, J. Stat. Softw. 2024), after a PCA to 50 dimensions.

1. :func:`pca` to at most 50 dimensions (centred; an eigendecomposition of the covariance), as van der
   Maaten & Hinton (2008) do before t-SNE.
2. openTSNE's defaults: perplexity-calibrated affinities over the nearest neighbours (exact neighbours for
   small N), PCA initialisation, 250 iterations of early exaggeration (12) then 500 of the embedding, with
   its automatic learning rate and FFT-interpolated gradients; ``seed`` is its ``random_state``.

Why a library and not idmm's former exact torch implementation (kept as a reference in
``scripts/tsne_exact.py``): measured with ``scripts/tsne_compare.py`` (one thread, the same PCA-50 input,
perplexity 30, 2,000 points; a shared 2-core machine) —

=================================  ==============================  ==============================
                                   demo's IDMM pretraining features  embedded test images' pixels
=================================  ==============================  ==============================
exact t-SNE in torch (idmm 0.1)    27.3 s, knn_acc_2d 58.10 %       32.3 s, 76.90 %
this module (PCA-50 + openTSNE)    10.5 s, 59.25 %                  (openTSNE alone) 20.4 s, 77.00 %
scikit-learn, Barnes-Hut           12.4 s, 59.70 %                  27.6 s, 76.50 %
scikit-learn, exact                227 s (loaded machine), 59.55 %  not run
10-NN on the features themselves   59.85 %                          76.90 %
=================================  ==============================  ==============================

``knn_acc_2d`` (leave-one-out 10-NN accuracy in the map) is what ``idmm viz tsne`` reports. The exact
gradient descent reaches a lower KL under the exact P (0.718 against 0.751 on the features) but no better
map by that score, in 1.6 to 2.6 times the time and O(N²) memory; openTSNE maps far more points too.
No measured reason kept the hand-written one.

Same inputs, seed and number of threads: the same map.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

PCA_DIMS = 50
PERPLEXITY = 30.0
EXAGGERATION_ITERS = 250  # openTSNE's defaults
EMBEDDING_ITERS = 500
ITERATIONS = EXAGGERATION_ITERS + EMBEDDING_ITERS
REPORT_EVERY = 50


def pca(x: torch.Tensor, dims: int = PCA_DIMS) -> torch.Tensor:
    """``x`` [N, D] centred and projected on its ``dims`` leading principal axes (float64)."""
    x = x.double()
    x = x - x.mean(0, keepdim=True)
    if x.shape[1] <= dims:
        return x
    _, vectors = torch.linalg.eigh(x.T @ x)  # ascending eigenvalues
    return x @ vectors[:, -dims:].flip(1)


@dataclass
class TsneResult:
    """The map [N, 2] (float32, CPU), openTSNE's KL divergence along the way and the settings used."""

    embedding: torch.Tensor
    kl_history: list[tuple[int, float]] = field(default_factory=list)  # (iteration, KL) after exaggeration ends
    kl: float = float("nan")
    perplexity: float = PERPLEXITY
    iterations: int = ITERATIONS


def tsne(
    x: torch.Tensor,
    *,
    perplexity: float = PERPLEXITY,
    pca_dims: int = PCA_DIMS,
    seed: int = 0,
    device: str | torch.device = "cpu",
    on_iter: Callable[[int, int], None] | None = None,
    threads: int | None = None,
) -> TsneResult:
    """The 2-D t-SNE map of ``x`` [N, D] (``device``: where the PCA runs; openTSNE runs on the CPU with
    ``threads``, default torch's number of threads)."""
    from openTSNE import TSNE

    n = int(x.shape[0])
    if not 1.0 <= perplexity < n:
        raise ValueError(f"perplexity {perplexity} must be at least 1 and below the number of points ({n})")
    reduced = pca(x.to(device), pca_dims).float().cpu().numpy()
    history: list[tuple[int, float]] = []
    done = [0]

    def progress(iteration: int, error: float, embedding) -> None:
        done[0] += REPORT_EVERY
        if done[0] > EXAGGERATION_ITERS:
            history.append((done[0], float(error)))
        if on_iter is not None:
            on_iter(min(done[0], ITERATIONS), ITERATIONS)

    mapped = TSNE(
        perplexity=perplexity,
        n_iter=EMBEDDING_ITERS,
        early_exaggeration_iter=EXAGGERATION_ITERS,
        n_jobs=threads or max(1, torch.get_num_threads()),
        random_state=seed,
        callbacks=progress,
        callbacks_every_iters=REPORT_EVERY,
        verbose=False,
    ).fit(reduced)
    kl = float(getattr(mapped, "kl_divergence", history[-1][1] if history else float("nan")))
    return TsneResult(torch.as_tensor(mapped.copy(), dtype=torch.float32), history, kl, perplexity, ITERATIONS)
