"""The default dataset, shipped inside the package: 2,040 Fashion-MNIST train images + 2,000 test images.

Class-balanced (204 train / 200 test per class), the size of Flowers-102's training set, so the
tool works with no download at all. Built by ``scripts/build_embedded_dataset.py``; provenance and
licence in ``idmm_tui/data/embedded/NOTICE``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np

from idmm_tui.errors import DatasetNotFoundError

from .base import ArrayDataset, LabeledImages
from .fashion_mnist import CLASSES
from .registry import register_dataset

PATH = Path(__file__).resolve().parent / "embedded" / "fashion_mnist_2040.npz"
#: sha256 of the arrays (see :func:`arrays_sha256`), as printed by scripts/build_embedded_dataset.py.
SHA256 = "6e12e18c8a70487d67800cfc2aaad105f1736fbd33e7a70ad5a2bc89bf5453a9"
KEYS = ("x_train", "y_train", "x_test", "y_test", "src_train", "src_test")


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over each array's name, dtype, shape and bytes, keys sorted (ignores the zip metadata)."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@lru_cache(maxsize=1)
def load_arrays(path: Path = PATH) -> dict[str, np.ndarray]:
    """The shipped arrays, checked against :data:`SHA256` (read-only)."""
    if not path.is_file():
        raise DatasetNotFoundError(f"the embedded dataset file {path} is missing: reinstall idmm")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if sorted(arrays) != sorted(KEYS) or arrays_sha256(arrays) != SHA256:
        raise DatasetNotFoundError(f"the embedded dataset file {path} is corrupt (sha256 mismatch)")
    for a in arrays.values():
        a.setflags(write=False)
    return arrays


@register_dataset(
    "embedded",
    num_classes=10,
    default_root="",
    paper_sizes=(2040, 2000),
    description="Fashion-MNIST subset shipped with idmm: 2,040 train / 2,000 test, no download",
)
def load_embedded(root: Path, split: str, download: bool) -> LabeledImages:
    """The embedded split (``root`` and ``download`` are ignored)."""
    arrays = load_arrays()
    return ArrayDataset(arrays[f"x_{split}"], arrays[f"y_{split}"], CLASSES)
