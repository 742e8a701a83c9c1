"""The image bank stores training images large enough that the smallest crop is cut from real pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from idmm_tui.data.base import FileListDataset
from idmm_tui.engine.batches import build_bank, eval_storage_size, in_chunks, largest_side, train_storage_size


def _photos(tmp_path: Path, sizes: list[tuple[int, int]]) -> FileListDataset:
    files = []
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        path = tmp_path / f"img{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, quality=90)
        files.append(path)
    return FileListDataset(files, [i % 2 for i in range(len(files))], ["a", "b"])


def test_storage_sizes_follow_the_smallest_crop():
    assert train_storage_size(112, 0.05) == 512  # 112 / sqrt(0.05) = 500.9
    assert train_storage_size(224, 0.08) == 800  # 224 / sqrt(0.08) = 792.0
    assert eval_storage_size(224, 0.875) == 320 and eval_storage_size(112, 0.875) == 160


def test_a_600x400_photo_for_the_112px_stage_keeps_at_least_500px_on_its_short_side(tmp_path):
    split = _photos(tmp_path, [(600, 400)])
    bank = build_bank(split, train_storage_size(112, 0.05), cache="yes", num_workers=0)
    assert min(bank.images.shape[-2:]) >= 500
    assert bank.sizes[0].tolist() == [400, 600]  # crops are drawn in the original frame


def test_small_images_are_not_stored_larger_than_they_are(tmp_path):
    split = _photos(tmp_path, [(40, 30), (24, 36)])
    assert largest_side(split) == 40
    bank = build_bank(split, train_storage_size(16, 0.05), cache="yes", num_workers=0)
    assert tuple(bank.images.shape[-2:]) == (48, 48)  # 40 rounded up to 16, not 80
    images, sizes, labels, ids = next(bank.batches(in_chunks(torch.arange(2), 2)))
    assert images.dtype == torch.uint8 and sizes.tolist() == [[30, 40], [36, 24]]


def test_bank_describes_its_size_and_place(tmp_path):
    bank = build_bank(_photos(tmp_path, [(64, 48)] * 3), 64, cache="yes", num_workers=0)
    assert bank.describe() == "3 images stored at 64x64 px (0.00 GiB) in host memory"
    assert bank.place(torch.device("cpu")) is bank and bank.where() == "host memory"
    streamed = build_bank(_photos(tmp_path, [(64, 48)] * 3), 64, cache="no", num_workers=0)
    assert streamed.where().startswith("streamed") and streamed.nbytes == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.cuda
def test_bank_moves_to_the_gpu_when_it_fits(tmp_path):
    bank = build_bank(_photos(tmp_path, [(64, 48)] * 3), 64, cache="yes", num_workers=0).place(torch.device("cuda"))
    assert bank.where() == "GPU memory"
    images, sizes, labels, _ = next(bank.batches(in_chunks(torch.arange(3), 2)))
    assert images.is_cuda and not labels.is_cuda
