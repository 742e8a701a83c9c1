"""Shared types for datasets: the ``LabeledImages`` protocol, ``DatasetSpec`` and small helpers.

Dataset modules import their helpers from here and ``register_dataset`` from
:mod:`idmm_tui.data.registry`, which imports no dataset module (it discovers them on first use).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from idmm_tui.errors import DatasetNotFoundError

SPLITS = ("train", "test")
DEFAULT_ROOT = "~/.cache/idmm/datasets"


@runtime_checkable
class LabeledImages(Protocol):
    """A split of a labelled image dataset: ``ds[i] -> (PIL image in any mode/size, label)``.

    Small in-memory datasets of equal-size images may also offer ``tensors``:
    ``(uint8 [N, C, H, W] with C in {1, 3}, int64 labels [N])`` (read it with
    ``getattr(ds, "tensors", None)``), and datasets of files ``image_size(i) -> (h, w) | None``,
    read from the file's header (lets the image bank avoid storing small images larger than they are),
    and ``image_path(i) -> Path`` (names a file that cannot be decoded; see :func:`image_path_of`).
    """

    classes: list[str]

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> tuple[Image.Image, int]: ...


Loader = Callable[[Path, str, bool], LabeledImages]


@dataclass(frozen=True)
class DatasetSpec:
    """How to find and load one named dataset."""

    name: str
    num_classes: int | None
    description: str
    default_root: str
    downloadable: bool
    paper_train_size: int | None
    paper_test_size: int | None
    loader: Loader


def not_found(name: str, where: Path | str, layout: str, hint: str) -> DatasetNotFoundError:
    """A one-line 'not found' error naming the dataset, the path looked at, the layout and a hint."""
    return DatasetNotFoundError(f"dataset {name!r} not found at {where}. Expected layout: {layout}. {hint}")


def download_hint(downloadable: bool) -> str:
    """What the user can do about a missing dataset."""
    if downloadable:
        return "Put the files there, or set data.download = true to fetch it."
    return "Put the files there (this dataset cannot be downloaded automatically)."


def dataset_base(root: Path, folder: str, marker: str) -> Path:
    """The directory holding ``folder/marker``: ``root``, or its parent when ``root`` is that ``folder``."""
    if not (root / folder / marker).exists() and root.name == folder and (root / marker).exists():
        return root.parent
    return root


def find_dir(root: Path, folder: str, marker: str) -> Path | None:
    """``root/folder`` or ``root`` itself, whichever holds ``marker`` (None when neither does)."""
    for cand in (root / folder, root):
        if (cand / marker).exists():
            return cand
    return None


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image (mode and size untouched), closing the file.

    Only regular files are opened (a FIFO named ``x.jpg`` would block forever): OSError otherwise."""
    from idmm_tui.fsutil import open_regular

    with open_regular(Path(path)) as handle, Image.open(handle) as img:
        img.load()
        return img


def image_path_of(ds: Any, i: int) -> Path | None:
    """The file of image ``i`` of a dataset, when it says (``image_path``, or the file lists of
    torchvision's datasets); None for in-memory data or when it cannot tell."""
    method = getattr(ds, "image_path", None)
    if callable(method):
        return method(i)
    for attr in ("files", "_image_files", "_images", "images"):
        files = getattr(ds, attr, None)
        if isinstance(files, list) and len(files) == len(ds) and isinstance(files[i] if files else None, str | Path):
            return Path(files[i])
    samples = getattr(ds, "samples", None) or getattr(ds, "_samples", None)
    if isinstance(samples, list) and len(samples) == len(ds) and isinstance(samples[i], tuple):
        return Path(samples[i][0])
    return None


def read_lines(path: Path) -> list[str]:
    """Non-empty, stripped lines of a text file (tolerates CRLF and a UTF-8 BOM)."""
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


class FileListDataset:
    """Images listed by path with integer labels."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int], classes: list[str]):
        if len(files) != len(labels):
            raise ValueError("files and labels differ in length")
        self.files = list(files)
        self.labels = [int(x) for x in labels]
        self.classes = list(classes)
        self.tensors = None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return open_image(self.files[i]), self.labels[i]

    def image_path(self, i: int) -> Path:
        return Path(self.files[i])

    def image_size(self, i: int) -> tuple[int, int] | None:
        """(height, width) of image ``i`` from its header (no decoding); None when unreadable."""
        from idmm_tui.fsutil import open_regular

        try:
            with open_regular(Path(self.files[i])) as handle, Image.open(handle) as img:
                return img.height, img.width
        except (OSError, ValueError, Image.DecompressionBombError):
            return None


class ArrayDataset:
    """Equal-size uint8 images held in memory; offers the ``tensors`` fast path."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes: list[str]):
        import torch

        if images.ndim == 3:
            images = images[:, None]
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected uint8 [N, C, H, W], C in (1, 3), got {images.dtype} {images.shape}")
        if len(images) != len(labels):
            raise ValueError("images and labels differ in length")
        if not images.flags.writeable or not images.flags.c_contiguous:
            images = images.copy()
        self.classes = list(classes)
        self.tensors = (
            torch.from_numpy(images),
            torch.from_numpy(np.asarray(labels, dtype=np.int64)),
        )

    def __len__(self) -> int:
        return int(self.tensors[1].shape[0])

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        x = self.tensors[0][i].numpy()
        img = Image.fromarray(x[0], "L") if x.shape[0] == 1 else Image.fromarray(x.transpose(1, 2, 0), "RGB")
        return img, int(self.tensors[1][i])


class RelabeledConcat:
    """Several datasets in a row, each label mapped into one shared class list."""

    def __init__(self, parts: Sequence[Any], label_maps: Sequence[Sequence[int] | None], classes: list[str]):
        self.parts = list(parts)
        self.label_maps = list(label_maps)
        self.classes = list(classes)
        self.tensors = None
        self._ends = list(np.cumsum([len(p) for p in self.parts], dtype=np.int64).tolist())

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = bisect.bisect_right(self._ends, i)
        start = self._ends[k - 1] if k else 0
        img, label = self.parts[k][i - start]
        mapping = self.label_maps[k]
        return img, int(mapping[label] if mapping is not None else label)

    def image_path(self, i: int) -> Path | None:
        k = bisect.bisect_right(self._ends, i)
        start = self._ends[k - 1] if k else 0
        return image_path_of(self.parts[k], i - start)


class ClassSubset:
    """The images of some classes of a dataset, relabelled 0..k-1 in the order the classes are given.

    Lets one dataset provide several small ones (e.g. two class-disjoint halves for a transfer
    experiment). Keeps ``tensors`` when the parent has them.
    """

    def __init__(self, parent: LabeledImages, classes: Sequence[int], labels: Sequence[int] | None = None):
        count = len(parent.classes)
        bad = [c for c in classes if not 0 <= c < count]
        if bad or len(set(classes)) != len(classes) or not classes:
            raise ValueError(f"data.classes must be distinct class indices in 0..{count - 1}, got {list(classes)}")
        self.parent = parent
        self.classes = [parent.classes[c] for c in classes]
        new_label = {c: i for i, c in enumerate(classes)}
        if labels is None:
            labels = _labels_of(parent)
        self.indices = [i for i, y in enumerate(labels) if y in new_label]
        self.targets = [new_label[labels[i]] for i in self.indices]
        tensors = getattr(parent, "tensors", None)
        if tensors is not None:
            import torch

            index = torch.as_tensor(self.indices, dtype=torch.long)
            self.tensors = (tensors[0][index], torch.as_tensor(self.targets, dtype=torch.long))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        image, _ = self.parent[self.indices[i]]
        return image, self.targets[i]

    def image_size(self, i: int) -> tuple[int, int] | None:
        size = getattr(self.parent, "image_size", None)
        return size(self.indices[i]) if size is not None else None

    def image_path(self, i: int) -> Path | None:
        return image_path_of(self.parent, self.indices[i])


def _labels_of(ds: LabeledImages) -> list[int]:
    """Every label of ``ds`` (from ``tensors``/``targets`` when present, else by reading each item)."""
    tensors = getattr(ds, "tensors", None)
    if tensors is not None:
        return [int(y) for y in tensors[1]]
    targets = next((t for a in ("targets", "labels", "_labels") if (t := getattr(ds, a, None)) is not None), None)
    if targets is not None and len(targets) == len(ds):
        return [int(y) for y in targets]
    return [int(ds[i][1]) for i in range(len(ds))]
