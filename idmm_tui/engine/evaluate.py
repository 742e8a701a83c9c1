"""What the loop measures at the end of an epoch: test top-1 (fine-tuning) and kNN accuracy (pretraining)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from idmm_tui.engine.batches import ImageBank, in_chunks
from idmm_tui.engine.distributed import Placement, all_reduce_sum
from idmm_tui.engine.knn import extract_features, weighted_knn_accuracy
from idmm_tui.engine.views import eval_views
from idmm_tui.methods.base import unwrap
from idmm_tui.recipe import FinetuneConfig

Autocast = Callable[[], contextlib.AbstractContextManager]
#: The kNN monitor looks at whole images (resized, no centre crop).
KNN_CROP_PCT = 1.0


@torch.no_grad()
def top1_accuracy(
    module: nn.Module, test: ImageBank, cfg: FinetuneConfig, place: Placement, autocast: Autocast
) -> float:
    """Top-1 accuracy (%) on the whole test split (sharded over ranks), on the centre-cropped test view."""
    module = unwrap(module)  # no DDP hooks: ranks may see different numbers of test batches
    module.eval()
    n = len(test)
    order = torch.arange(n)[place.rank :: place.world_size]
    correct = 0
    batch = max(1, min(2 * cfg.batch_size // place.world_size, 512))
    for images, sizes, labels, _ in test.batches(in_chunks(order, batch)):
        views = eval_views(images.to(place.device), sizes.to(place.device), cfg.resolution, cfg.eval_crop_pct)
        with autocast():
            logits = module(views)
        correct += int((logits.argmax(-1).cpu() == labels.cpu()).sum())
    module.train()
    total_correct, total = all_reduce_sum(place, [float(correct), float(len(order))])
    return 100.0 * total_correct / max(total, 1.0)


def knn_accuracy(
    module: nn.Module, train: ImageBank, test: ImageBank, resolution: int, place: Placement, autocast: Autocast
) -> float:
    """Weighted kNN top-1 (%) of the frozen backbone features: test images vs training images."""
    backbone = unwrap(module).backbone
    feats = [
        extract_features(backbone, bank, resolution, place.device, crop_pct=KNN_CROP_PCT, autocast=autocast())
        for bank in (train, test)
    ]
    return weighted_knn_accuracy(feats[0], train.labels, feats[1], test.labels)
