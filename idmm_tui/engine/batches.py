"""From a dataset split to batches of uint8 images that the batched augmentations consume.

An :class:`ImageBank` holds a split ready for training: either all images decoded once into one
uint8 tensor (small datasets — the usual case for this tool), or a streaming view that decodes
them in DataLoader workers each epoch. Either way a batch is ``(images uint8 [B, C, S, S],
sizes [B, 2] original (h, w), labels [B], instance ids [B])``. Images of any mode and size are
converted to RGB and resized to the square storage size ``S``; their original size travels with
them so that random-resized crops keep the original aspect ratios.

Every image's instance id is its index in the split: what IDMM's N-way head classifies.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from idmm_tui.data.registry import LabeledImages

CACHE_FRACTION_OF_RAM = 0.3
CACHE_MAX_BYTES = 8 << 30


def storage_size(resolution: int) -> int:
    """Square side at which images are kept for a stage at ``resolution``.

    ``resolution / 0.875`` (room for the eval centre crop: 256 for 224) times 1.25 for random crops,
    rounded up to a multiple of 16.
    """
    return int(math.ceil(resolution / 0.875 * 1.25 / 16) * 16)


def pil_to_uint8(image: Image.Image, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Any PIL image -> (uint8 [3, size, size] RGB, original (h, w))."""
    if image.mode != "RGB":
        if image.mode in ("P", "LA", "PA") or "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode == "RGBA":  # composite transparency on white, not black
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image)
        image = image.convert("RGB")
    w, h = image.size
    resized = image.resize((size, size), Image.BILINEAR, reducing_gap=3.0)
    array = np.asarray(resized, dtype=np.uint8).copy()
    return torch.from_numpy(array).permute(2, 0, 1).contiguous(), (h, w)


class _Decoded(Dataset):
    """Index -> (uint8 image, original size, label, index), decoding with PIL."""

    def __init__(self, source: LabeledImages, size: int):
        self.source, self.size = source, size

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        image, label = self.source[index]
        tensor, (h, w) = pil_to_uint8(image, self.size)
        return tensor, torch.tensor([h, w]), int(label), index


@dataclass
class ImageBank:
    """A split ready for batching: cached tensors, or a decoder for streaming."""

    labels: torch.Tensor
    classes: list[str]
    images: torch.Tensor | None = None  # uint8 [N, C, H, W] when cached
    sizes: torch.Tensor | None = None  # [N, 2] original (h, w) when cached
    source: _Decoded | None = None
    num_workers: int = 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batches(self, chunks: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, ...]]:
        """One batch per chunk of instance ids, in that order (see :func:`in_chunks`)."""
        if self.images is not None:
            for idx in chunks:
                yield self.images[idx], self.sizes[idx], self.labels[idx], idx
            return
        loader = DataLoader(
            self.source,
            batch_sampler=[c.tolist() for c in chunks],
            num_workers=self.num_workers,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
        )
        for images, sizes, labels, idx in loader:
            yield images, sizes, labels, idx


def in_chunks(order: torch.Tensor, size: int) -> list[torch.Tensor]:
    """``order`` cut into chunks of ``size`` (the last one smaller): every index once."""
    return list(torch.split(order, size))


def _cache_budget() -> int:
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 8 << 30
    return int(min(CACHE_MAX_BYTES, CACHE_FRACTION_OF_RAM * ram))


def build_bank(
    split: LabeledImages,
    resolution: int,
    *,
    cache: str = "auto",
    num_workers: int = 2,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImageBank:
    """Prepare ``split`` for a stage at ``resolution`` (decoding into memory when it fits)."""
    classes = list(split.classes)
    tensors = getattr(split, "tensors", None)
    if tensors is not None:  # small in-memory dataset of equal-size images: used as is
        images, labels = tensors
        sizes = torch.tensor(images.shape[-2:]).repeat(images.shape[0], 1)
        return ImageBank(labels.long(), classes, images, sizes)
    size = storage_size(resolution)
    decoded = _Decoded(split, size)
    n = len(decoded)
    want_cache = cache == "yes" or (cache == "auto" and n * 3 * size * size <= _cache_budget())
    if not want_cache:
        labels = torch.tensor([_label_of(split, i) for i in range(n)], dtype=torch.long)
        return ImageBank(labels, classes, source=decoded, num_workers=num_workers)
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    sizes = torch.empty(n, 2, dtype=torch.long)
    labels = torch.empty(n, dtype=torch.long)
    loader = DataLoader(decoded, batch_size=64, num_workers=num_workers, shuffle=False)
    done = 0
    for batch, hw, lab, idx in loader:
        images[idx], sizes[idx], labels[idx] = batch, hw, lab
        done += len(idx)
        if on_progress:
            on_progress(done, n)
    return ImageBank(labels, classes, images, sizes)


def _label_of(split: LabeledImages, index: int) -> int:
    targets = getattr(split, "targets", None)
    if targets is not None:
        return int(targets[index])
    return int(split[index][1])
