"""Your own images: ``<root>/train/<class>/*`` and ``<root>/test/<class>/*``.

Any raster file PIL can read is taken, by extension (``.jpg .png .gif .bmp .webp .tif``…, any mode).
The class list is the sorted train class folders; test must use only those classes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import Image

from idmm_tui.errors import DatasetNotFoundError

from .base import FileListDataset, LabeledImages, not_found
from .registry import register_dataset

LAYOUT = "<root>/train/<class>/<image> and <root>/test/<class>/<image> (any PIL-readable image)"
HINT = "Point data.root at the folder holding train/ and test/."


# Formats PIL only identifies (stub plugins) or renders through external tools: not taken.
SKIPPED_FORMATS = frozenset({"BUFR", "GRIB", "HDF5", "WMF", "EPS", "MPEG"})


@lru_cache(maxsize=1)
def image_extensions() -> frozenset[str]:
    """Lower-case file extensions of the raster formats PIL can open."""
    Image.init()
    exts = Image.registered_extensions().items()
    return frozenset(ext for ext, fmt in exts if fmt in Image.OPEN and fmt not in SKIPPED_FORMATS)


def class_dirs(folder: Path) -> list[str]:
    """Sorted names of the visible sub-folders of ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def images_in(folder: Path) -> list[Path]:
    """Sorted image files under ``folder`` (recursive, hidden files skipped)."""
    exts = image_extensions()
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in exts and not any(part.startswith(".") for part in p.parts[-2:])
    )


def class_folder_images(
    name: str, root: Path, train_dir: Path, split_dir: Path, layout: str, hint: str
) -> tuple[list[Path], list[int], list[str]]:
    """Images of ``split_dir/<class>/`` (ImageFolder order) labelled by the sorted class folders of ``train_dir``.

    Returns ``(files, labels, classes)``; ``files`` may be empty. Raises a one-line
    :class:`DatasetNotFoundError` (dataset ``name`` at ``root``) when a folder is missing, ``train_dir``
    has no class folders or ``split_dir`` has a class folder that ``train_dir`` lacks.
    """
    for d in (train_dir, split_dir):
        if not d.is_dir():
            raise not_found(name, root, layout, f"{hint} Missing folder: {d}")
    classes = class_dirs(train_dir)
    if not classes:
        raise not_found(name, root, layout, f"{hint} {train_dir} has no class folders.")
    extra = sorted(set(class_dirs(split_dir)) - set(classes))
    if extra:
        raise DatasetNotFoundError(
            f"{name} at {root}: {split_dir} has class folders not in {train_dir}: {', '.join(extra)}. "
            f"Every {split_dir.name} class must also be a {train_dir.name} class."
        )
    files, labels = [], []
    for label, cls in enumerate(classes):
        if (split_dir / cls).is_dir():
            found = images_in(split_dir / cls)
            files += found
            labels += [label] * len(found)
    return files, labels, classes


@register_dataset(
    "imagefolder",
    num_classes=None,
    default_root="",
    description="Your own images: <root>/train/<class>/* and <root>/test/<class>/*",
)
def load_imagefolder(root: Path, split: str, download: bool) -> LabeledImages:
    """One split of an ImageFolder-style dataset, labels from the train class folders."""
    split_dir = root / split
    files, labels, classes = class_folder_images("imagefolder", root, root / "train", split_dir, LAYOUT, HINT)
    if not files:
        raise not_found("imagefolder", root, LAYOUT, f"{HINT} No images found under {split_dir}.")
    return FileListDataset(files, labels, classes)
