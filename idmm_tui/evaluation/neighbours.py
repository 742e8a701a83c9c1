"""How clustered a labelled point set is: leave-one-out k-nearest-neighbour accuracy.

Each point is classified by a majority vote of its ``k`` nearest *other* points (Euclidean; for
L2-normalised features that is the cosine order), ties going to the nearest neighbour's class. 100 %
means every point sits among its own class; chance is about the largest class's share. It needs no
second split, so it scores a t-SNE embedding (2-D) and the features it was made from alike.
"""

from __future__ import annotations

import torch


def leave_one_out_knn_accuracy(points: torch.Tensor, labels: torch.Tensor, *, k: int = 10, chunk: int = 1024) -> float:
    """Top-1 accuracy (%) of the leave-one-out ``k``-NN majority vote over ``points`` [N, D]."""
    n = points.shape[0]
    if n < 2:
        return 0.0
    k = min(k, n - 1)
    x = points.double()
    classes = int(labels.max()) + 1
    correct = 0
    for start in range(0, n, chunk):
        block = x[start : start + chunk]
        dist = torch.cdist(block, x)
        rows = torch.arange(block.shape[0])
        dist[rows, rows + start] = float("inf")  # not its own neighbour
        order = dist.topk(k, dim=1, largest=False).indices  # nearest first
        neighbour_labels = labels[order]
        # votes, plus a tie-break smaller than one vote that favours nearer neighbours
        weights = 1.0 + torch.linspace(1e-3, 0.0, k, dtype=torch.float64).expand(block.shape[0], k)
        votes = torch.zeros(block.shape[0], classes, dtype=torch.float64).scatter_add_(1, neighbour_labels, weights)
        correct += int((votes.argmax(1) == labels[start : start + chunk]).sum())
    return 100.0 * correct / n
