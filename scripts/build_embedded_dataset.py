#!/usr/bin/env python3
"""Build idmm_tui/data/embedded/fashion_mnist_2040.npz, the default ("embedded") dataset.

Source: the Debian package ``dataset-fashion-mnist`` (version 0.0~git20200523.55506a9-1), files
``/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``
(``apt-get install dataset-fashion-mnist``). Fashion-MNIST is (c) 2017 Zalando SE, MIT licence.

Selection, per class, independent of numpy's random generators (so any numpy version gives the
same result): every source index ``i`` gets the key ``sha256(f"idmm-embedded:{SEED}:{split}:{i}")``;
the ``n`` indices with the smallest keys are kept (204 per class from train, 200 per class from
t10k), then sorted by source index. The npz holds ``x_train`` uint8 [2040, 28, 28], ``y_train``
uint8 [2040], ``x_test`` uint8 [2000, 28, 28], ``y_test`` uint8 [2000], and the source indices
``src_train`` / ``src_test`` (int32).

The zip container is not byte-reproducible (timestamps), the arrays are: their sha256 (see
``idmm_tui.data.embedded_set.arrays_sha256``) is

    ARRAYS_SHA256 = 6e12e18c8a70487d67800cfc2aaad105f1736fbd33e7a70ad5a2bc89bf5453a9

Usage: python scripts/build_embedded_dataset.py [--source DIR] [--out FILE] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from idmm_tui.data.embedded_set import PATH, arrays_sha256  # noqa: E402
from idmm_tui.data.fashion_mnist import read_idx  # noqa: E402

SEED = 0
PER_CLASS = {"train": 204, "test": 200}
SOURCE = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def sort_key(split: str, index: int, seed: int = SEED) -> bytes:
    """The pseudo-random, platform-independent ranking key of one source index."""
    return hashlib.sha256(f"idmm-embedded:{seed}:{split}:{index}".encode()).digest()


def balanced_indices(labels: np.ndarray, per_class: int, split: str, seed: int = SEED) -> np.ndarray:
    """``per_class`` source indices of every class (smallest keys), sorted ascending."""
    chosen: list[int] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c).tolist()
        if len(members) < per_class:
            raise ValueError(f"class {c} has only {len(members)} images, {per_class} needed")
        chosen += sorted(members, key=lambda i: sort_key(split, i, seed))[:per_class]
    return np.array(sorted(chosen), dtype=np.int32)


def build_arrays(source: Path = SOURCE, seed: int = SEED) -> dict[str, np.ndarray]:
    """The embedded arrays, from the four gzipped IDX files in ``source``."""
    arrays: dict[str, np.ndarray] = {}
    for split, (img_file, lab_file) in FILES.items():
        images, labels = read_idx(source / img_file), read_idx(source / lab_file)
        idx = balanced_indices(labels, PER_CLASS[split], split, seed)
        arrays[f"x_{split}"] = np.ascontiguousarray(images[idx], dtype=np.uint8)
        arrays[f"y_{split}"] = np.ascontiguousarray(labels[idx], dtype=np.uint8)
        arrays[f"src_{split}"] = idx
    return arrays


def main(argv: list[str] | None = None) -> int:
    """Build (or with --check, only verify) the embedded npz and print the arrays' sha256."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SOURCE, help="folder with the four *-ubyte.gz files")
    ap.add_argument("--out", type=Path, default=PATH, help="npz to write")
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = ap.parse_args(argv)
    arrays = build_arrays(args.source)
    digest = arrays_sha256(arrays)
    if args.check:
        with np.load(args.out, allow_pickle=False) as z:
            shipped = arrays_sha256({k: z[k] for k in z.files})
        print(f"built   sha256 {digest}\nshipped sha256 {shipped}")
        return 0 if shipped == digest else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    sizes = ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in arrays.items())
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): {sizes}")
    print(f"sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
