"""Fashion-MNIST from IDX files (``*-ubyte`` or ``*-ubyte.gz``), with the in-memory ``tensors`` path.

Looked for in ``<root>/FashionMNIST/raw/`` (torchvision's layout), then ``<root>`` itself, then the
Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist/``).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from idmm_tui.errors import DatasetNotFoundError

from .base import ArrayDataset, LabeledImages, not_found
from .registry import register_dataset

CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)
LAYOUT = (
    "<root>/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] "
    "(or Debian's dataset-fashion-mnist in /usr/share/datasets/fashion-mnist/)"
)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (optionally gzipped) into a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DatasetNotFoundError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DatasetNotFoundError(f"{path} is truncated: {body.size} of {int(np.prod(shape))} values")
    return body.reshape(shape)


def _find_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists."""
    for cand in (folder / stem, folder / f"{stem}.gz"):
        if cand.is_file():
            return cand
    return None


def find_split_files(root: Path, split: str) -> tuple[Path, Path] | None:
    """(images, labels) files for ``split`` from the first folder that has both, or None."""
    for folder in (root / "FashionMNIST" / "raw", root, *SYSTEM_DIRS):
        found = [_find_file(folder, stem) for stem in FILES[split]]
        if found[0] is not None and found[1] is not None:
            return found[0], found[1]
    return None


def read_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [N, 28, 28], uint8 labels [N]) of one split; raises if not found."""
    files = find_split_files(root, split)
    if files is None:
        hint = "Run `apt-get install dataset-fashion-mnist`, or set data.download = true to fetch it."
        raise not_found("fashion_mnist", root / "FashionMNIST" / "raw", LAYOUT, hint)
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetNotFoundError(f"Fashion-MNIST files {files[0]} and {files[1]} do not match")
    return images, labels


def _download(root: Path) -> None:
    """Fetch the IDX files into ``<root>/FashionMNIST/raw`` with torchvision."""
    from torchvision.datasets import FashionMNIST

    try:
        FashionMNIST(str(root), train=True, download=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise DatasetNotFoundError(f"could not download Fashion-MNIST into {root}: {exc}") from exc


@register_dataset(
    "fashion_mnist",
    num_classes=10,
    downloadable=True,
    paper_sizes=(60000, 10000),
    description="Fashion-MNIST, 10 classes, 28x28 grey: 60k train / 10k test",
)
def load_fashion_mnist(root: Path, split: str, download: bool) -> LabeledImages:
    """Fashion-MNIST (10 classes, 28x28 grey): 60,000 train / 10,000 test."""
    if download and find_split_files(root, split) is None:
        _download(root)
    images, labels = read_split(root, split)
    return ArrayDataset(images, labels, CLASSES)
