"""Weighted k-nearest-neighbour accuracy on frozen features: a label-free pretraining monitor.

The labels are used only to *measure* the representation, never to train it: each test image
votes with its ``k`` most cosine-similar training images, weighted by ``exp(sim / T)`` (the
protocol of Wu et al. 2018 and DINO, k = 20, T = 0.07).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from idmm_tui.engine.batches import ImageBank, in_chunks
from idmm_tui.engine.views import eval_views


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    bank: ImageBank,
    resolution: int,
    device: torch.device,
    *,
    crop_pct: float = 1.0,
    batch_size: int = 256,
    autocast: contextlib.AbstractContextManager | None = None,
) -> torch.Tensor:
    """L2-normalised pooled features of every image of ``bank`` (in bank order), on the CPU."""
    was_training = backbone.training
    backbone.eval()
    out = []
    for images, sizes, _, _ in bank.batches(in_chunks(torch.arange(len(bank)), batch_size)):
        views = eval_views(images.to(device), sizes.to(device), resolution, crop_pct)
        with autocast or contextlib.nullcontext():
            feats = backbone(views)
        out.append(F.normalize(feats.float(), dim=-1).cpu())
    backbone.train(was_training)
    return torch.cat(out)


def weighted_knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> float:
    """Top-1 accuracy (%) of the temperature-weighted kNN vote (features already normalised)."""
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, train_features.shape[0])
    correct = 0
    for start in range(0, test_features.shape[0], chunk):
        sims = test_features[start : start + chunk] @ train_features.T
        top, index = sims.topk(k, dim=1)
        votes = torch.zeros(top.shape[0], num_classes).scatter_add_(1, train_labels[index], (top / temperature).exp())
        correct += int((votes.argmax(1) == test_labels[start : start + chunk]).sum())
    return 100.0 * correct / max(1, test_features.shape[0])
