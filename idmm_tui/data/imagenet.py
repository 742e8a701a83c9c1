"""ImageNet-style folders and the paper's 10,000-image ImageNet subsets (Sec. 4.3, Tables 6, 7 and 9).

Layout (``<root>`` may also hold it in an ``imagenet/`` sub-folder)::

    <root>/train/<wnid>/<image>   e.g. train/n01440764/n01440764_10026.JPEG (any image extension;
                                  files in nested folders count for their wnid, as in torchvision's ImageFolder)
    <root>/val/<wnid>/<image>     the validation images sorted into class folders (the usual valprep.sh)

Datasets (the test split is always the whole ``val/``; labels index the sorted wnid folders of ``train/``):

* ``imagenet``: every image of ``train/``.
* ``sin10k``: SIN-10k, a balanced subset: 10 training images per class (10,000 for 1,000 classes).
* ``imagenet_random10k``: the paper's "SIN-total 10k": 10,000 images drawn uniformly from the whole of
  ``train/`` without looking at labels, so classes are unbalanced.

The selection is deterministic and part of the dataset's definition (seed :data:`SUBSET_SEED` = 0):

* candidates: per class (sorted wnid folders), the class's image paths in sorted order -- ImageFolder's order;
* ``sin10k``: a class with n images keeps min(10, n) of them, the positions
  ``numpy.random.default_rng([seed, zlib.crc32(wnid)]).choice(n, min(10, n), replace=False)`` (so a class's
  pick depends only on the seed and its own files); a class with fewer than 10 images gives all of them
  and a :class:`SubsetWarning` names it;
* ``imagenet_random10k``: the positions ``numpy.random.default_rng(seed).choice(N, min(10000, N),
  replace=False)`` in the list of all N training images (fewer than 10,000: all of them, with a warning).

Both keep the chosen images in candidate order. ``idmm data subset`` writes a subset (any seed, per-class
count or size) as an ``imagefolder`` tree of symlinks or copies with a ``subset.json`` that lists the exact
files, to inspect, share or train on with ``data.dataset = "imagefolder"``.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from idmm_tui.errors import DatasetNotFoundError, IdmmError, UsageError
from idmm_tui.fsutil import atomic_write_json

from .base import FileListDataset, LabeledImages, find_dir, not_found
from .imagefolder import class_folder_images
from .registry import register_dataset

SUBSET_SEED = 0
PER_CLASS = 10
RANDOM_SIZE = 10_000
#: ``idmm data subset --kind`` -> the registered dataset it reproduces with the default seed and count.
KINDS = {"sin10k": "sin10k", "random10k": "imagenet_random10k"}
SUBSET_FILE = "subset.json"
SUBSET_FORMAT = 1

LAYOUT = (
    "<root>/train/<wnid>/<image> (e.g. train/n01440764/n01440764_10026.JPEG) and <root>/val/<wnid>/<image> "
    "(the valprep.sh layout), or the same inside <root>/imagenet/"
)
HINT = "Point data.root at the folder holding train/ and val/ (ImageNet is not downloaded automatically)."
FLAT_VAL = (
    " If val/ holds the validation images flat (ILSVRC2012_val_*.JPEG), sort them into val/<wnid>/ first "
    "(the usual valprep.sh does)."
)
SELECTION = {
    "sin10k": "per class (sorted wnid folders of train/), the sorted image paths; a class with n images keeps "
    "the positions numpy.random.default_rng([seed, zlib.crc32(wnid)]).choice(n, min(per_class, n), "
    "replace=False), in sorted order",
    "random10k": "all train/ images in ImageFolder order (sorted wnid folders, sorted paths); keeps the positions "
    "numpy.random.default_rng(seed).choice(N, min(size, N), replace=False), in sorted order",
}


class SubsetWarning(UserWarning):
    """A subset came out smaller than asked (classes with too few images, a small train/ folder)."""


def imagenet_base(name: str, root: Path) -> Path:
    """The folder holding ``train/``: ``root`` or ``root/imagenet``; a one-line error naming ``root`` otherwise."""
    base = find_dir(root, "imagenet", "train")
    if base is None:
        raise not_found(name, root, LAYOUT, f"{HINT} Missing folder: {root / 'train'}")
    return base


def split_images(name: str, root: Path, split: str) -> tuple[Path, list[Path], list[int], list[str]]:
    """``(base, files, labels, classes)`` of ``train/`` (split ``"train"``) or ``val/`` (``"test"``)."""
    base = imagenet_base(name, root)
    folder = base / ("train" if split == "train" else "val")
    files, labels, classes = class_folder_images(name, base, base / "train", folder, LAYOUT, HINT)
    if not files:
        flat = FLAT_VAL if folder.name == "val" else ""
        raise not_found(name, base, LAYOUT, f"No images found under {folder}.{flat}")
    return base, files, labels, classes


def balanced_positions(labels: list[int], classes: list[str], per_class: int, seed: int) -> list[int]:
    """SIN-10k's pick: min(per_class, n) positions of each class (``labels`` grouped by class, in order)."""
    counts = Counter(labels)
    picked, start = [], 0
    for label, wnid in enumerate(classes):
        n = counts.get(label, 0)
        if n:
            rng = np.random.default_rng([seed, zlib.crc32(wnid.encode())])
            picked += sorted(start + int(i) for i in rng.choice(n, size=min(per_class, n), replace=False))
        start += n
    return picked


def random_positions(total: int, size: int, seed: int) -> list[int]:
    """The unbalanced pick: min(size, total) positions drawn uniformly without replacement, sorted."""
    return sorted(int(i) for i in np.random.default_rng(seed).choice(total, size=min(size, total), replace=False))


@dataclass(frozen=True)
class ImageNetSubset:
    """A deterministic subset of an ImageNet-style ``train/`` folder."""

    kind: str  # "sin10k" or "random10k"
    seed: int
    per_class: int | None  # sin10k
    size: int | None  # random10k
    base: Path  # the folder holding train/ and val/
    classes: list[str]  # every wnid folder of train/ (a random subset may miss some)
    files: list[Path]  # the chosen training images, ImageFolder order
    labels: list[int]
    available: int  # images in train/
    short: dict[str, int] = field(default_factory=dict)  # sin10k: wnid -> n for classes under per_class

    def relative_files(self) -> list[str]:
        """The chosen images as POSIX paths relative to ``train/`` (``<wnid>/<file>``)."""
        train = self.base / "train"
        return [f.relative_to(train).as_posix() for f in self.files]

    def notes(self) -> list[str]:
        """Why the subset is smaller than asked, one line each (empty when it is not)."""
        notes = []
        if self.short:
            listed = ", ".join(f"{wnid} ({n})" for wnid, n in list(self.short.items())[:10])
            more = f" and {len(self.short) - 10} more" if len(self.short) > 10 else ""
            notes.append(
                f"{len(self.short)} of {len(self.classes)} classes have fewer than {self.per_class} training images, "
                f"all of which were taken: {listed}{more}; {len(self.files)} images instead of "
                f"{self.per_class * len(self.classes)}"
            )
        if self.size is not None and self.available < self.size:
            notes.append(f"{self.base / 'train'} holds only {self.available} images (< {self.size}): all were taken")
        return notes


def select_subset(
    root: Path,
    kind: str,
    seed: int = SUBSET_SEED,
    per_class: int = PER_CLASS,
    size: int = RANDOM_SIZE,
    name: str | None = None,
) -> ImageNetSubset:
    """Choose the ``kind`` subset (``"sin10k"``: ``per_class`` per class; ``"random10k"``: ``size`` images).

    ``name`` is the dataset named in errors (default: the registered dataset of ``kind``).
    """
    if kind not in KINDS:
        raise UsageError(f"unknown subset kind {kind!r}; known: {', '.join(KINDS)}")
    if per_class < 1 or size < 1:
        raise UsageError(f"per_class and size must be at least 1, got {per_class} and {size}")
    base, files, labels, classes = split_images(name or KINDS[kind], Path(root), "train")
    short: dict[str, int] = {}
    if kind == "sin10k":
        positions = balanced_positions(labels, classes, per_class, seed)
        counts = Counter(labels)
        short = {wnid: counts.get(i, 0) for i, wnid in enumerate(classes) if counts.get(i, 0) < per_class}
    else:
        positions = random_positions(len(files), size, seed)
    return ImageNetSubset(
        kind,
        seed,
        per_class if kind == "sin10k" else None,
        size if kind == "random10k" else None,
        base,
        classes,
        [files[i] for i in positions],
        [labels[i] for i in positions],
        len(files),
        short,
    )


# ---------------------------------------------------------------------------------------------
# registered datasets


@register_dataset(
    "imagenet",
    num_classes=1000,
    paper_sizes=(1_281_167, 50_000),
    description="ImageNet-style folder: train/<wnid>/* for training, val/<wnid>/* for testing (local files)",
)
def load_imagenet(root: Path, split: str, download: bool) -> LabeledImages:
    """The whole ImageNet-style folder: ``train/`` or ``val/``."""
    _, files, labels, classes = split_images("imagenet", root, split)
    return FileListDataset(files, labels, classes)


def _load_subset(kind: str, root: Path, split: str) -> LabeledImages:
    name = KINDS[kind]
    if split != "train":
        _, files, labels, classes = split_images(name, root, split)
        return FileListDataset(files, labels, classes)
    subset = select_subset(root, kind, name=name)
    for note in subset.notes():
        warnings.warn(f"{name}: {note}", SubsetWarning, stacklevel=3)
    return FileListDataset(subset.files, subset.labels, subset.classes)


@register_dataset(
    "sin10k",
    num_classes=1000,
    paper_sizes=(10_000, 50_000),
    description="SIN-10k (paper Sec. 4.3): 10 train images per class of an ImageNet folder, seed 0; test val/",
)
def load_sin10k(root: Path, split: str, download: bool) -> LabeledImages:
    """SIN-10k: 10 training images per class (seed 0); test = the whole ``val/``."""
    return _load_subset("sin10k", root, split)


@register_dataset(
    "imagenet_random10k",
    num_classes=1000,
    paper_sizes=(10_000, 50_000),
    description="SIN-total 10k: 10,000 train images drawn at random from an ImageNet folder (unbalanced), seed 0; "
    "test val/",
)
def load_random10k(root: Path, split: str, download: bool) -> LabeledImages:
    """10,000 training images drawn at random from the whole ``train/`` (seed 0); test = the whole ``val/``."""
    return _load_subset("random10k", root, split)


# ---------------------------------------------------------------------------------------------
# idmm data subset: the subset as an imagefolder tree


@dataclass(frozen=True)
class SubsetTree:
    """What :func:`write_subset` writes: ``(source, destination)`` pairs and the ``subset.json`` record."""

    out: Path
    pairs: list[tuple[Path, Path]]
    folders: list[Path]
    record: dict[str, Any]


#: The keys of ``subset.json`` that say which subset a folder holds (a rerun must match them all).
SPEC_KEYS = ("kind", "seed", "per_class", "size", "source", "mode", "test")


def plan_subset(subset: ImageNetSubset, out: Path, *, copy: bool = False, with_val: bool = True) -> SubsetTree:
    """The tree for ``subset`` under ``out``: ``train/<wnid>/…`` (a folder for every class, so the class list
    and labels are ImageNet's even where a random subset took no image of a class) and, when ``with_val`` and
    ``val/`` exists, ``test/<wnid>/…`` for the whole ``val/``."""
    out = Path(out)
    rel = subset.relative_files()
    pairs = [(src, out / "train" / r) for src, r in zip(subset.files, rel, strict=True)]
    folders = [out / "train" / wnid for wnid in subset.classes]
    test = None
    if with_val and (subset.base / "val").is_dir():
        try:
            _, val_files, _, _ = split_images(KINDS[subset.kind], subset.base, "test")
        except DatasetNotFoundError as exc:
            raise DatasetNotFoundError(f"{exc} Or leave val/ out with --no-val.") from None
        val = subset.base / "val"
        pairs += [(src, out / "test" / src.relative_to(val)) for src in val_files]
        folders += sorted({out / "test" / src.relative_to(val).parts[0] for src in val_files})
        test = {"source": "val", "count": len(val_files)}
    per_class = Counter(r.split("/", 1)[0] for r in rel)
    record = {
        "format": SUBSET_FORMAT,
        "kind": subset.kind,
        "seed": subset.seed,
        "per_class": subset.per_class,
        "size": subset.size,
        "source": str(subset.base),
        "mode": "copy" if copy else "symlink",
        "test": test,
        "dataset": _same_as_registered(subset),
        "selection": SELECTION[subset.kind],
        "numpy": np.__version__,
        "counts": {
            "classes": len(subset.classes),
            "train": len(subset.files),
            "available": subset.available,
            "per_class": {wnid: per_class.get(wnid, 0) for wnid in subset.classes},
            "short_classes": dict(subset.short),
        },
        "notes": subset.notes(),
        "classes": list(subset.classes),
        "files": [f"train/{r}" for r in rel],
        "complete": False,
    }
    return SubsetTree(out, pairs, folders, record)


def _same_as_registered(subset: ImageNetSubset) -> str | None:
    """The registered dataset whose training images these are (default seed and count), else None."""
    default = (SUBSET_SEED, PER_CLASS) if subset.kind == "sin10k" else (SUBSET_SEED, RANDOM_SIZE)
    chosen = (subset.seed, subset.per_class if subset.kind == "sin10k" else subset.size)
    return KINDS[subset.kind] if chosen == default else None


def describe(record: dict[str, Any]) -> str:
    """One line naming a subset record's spec."""
    get = record.get
    count = f"per_class={get('per_class')}" if get("kind") == "sin10k" else f"size={get('size')}"
    test = "with val" if get("test") else "no val"
    return f"{get('kind')} seed={get('seed')} {count} from {get('source')} ({get('mode')}, {test})"


def check_out(out: Path, record: dict[str, Any]) -> bool:
    """May ``record``'s tree be written to ``out``? True when ``out`` already holds (part of) the same subset.

    An empty or absent folder is fine; anything else must be a previous ``idmm data subset`` of the same spec
    and file list (an interrupted write is then completed).
    """
    for folder in ("train", "val"):
        if out.resolve().is_relative_to(Path(record["source"]) / folder):
            raise UsageError(f"--out {out} is inside the source's {folder}/ folder: choose a folder outside it")
    if not out.exists():
        return False
    if not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    if not any(out.iterdir()):
        return False
    try:
        old = json.loads((out / SUBSET_FILE).read_text(encoding="utf-8"))
        if not isinstance(old, dict):
            raise ValueError
    except (OSError, ValueError):
        raise UsageError(
            f"--out {out} is not empty and holds no {SUBSET_FILE} from `idmm data subset`: choose a new or empty folder"
        ) from None
    if any(old.get(k) != record[k] for k in SPEC_KEYS):
        raise UsageError(
            f"--out {out} holds another subset ({describe(old)}), not {describe(record)}: "
            "choose another folder or delete it first"
        )
    if old.get("files") != record["files"]:
        raise UsageError(
            f"--out {out} holds {describe(old)} with a different file list (the source folder changed since): "
            "choose another folder or delete it first"
        )
    return True


def _place(src: Path, dst: Path, copy: bool) -> bool:
    """Link or copy ``src`` to ``dst`` unless it is already there; True when something was written."""
    if copy:
        if dst.is_file() and not dst.is_symlink() and dst.stat().st_size == src.stat().st_size:
            return False
        if dst.is_symlink():
            dst.unlink()
        shutil.copyfile(src, dst)
        return True
    if dst.is_symlink() and os.readlink(dst) == str(src):
        return False
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    try:
        dst.symlink_to(src)
    except OSError as exc:
        raise IdmmError(f"cannot create the symlink {dst}: {exc.strerror or exc}; use --copy") from None
    return True


def write_subset(tree: SubsetTree, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write ``tree`` (refusing a non-empty folder that holds anything else, see :func:`check_out`).

    ``subset.json`` is written first with ``"complete": false`` and rewritten with ``true`` at the end, so an
    interrupted write is recognised and completed by the same command. ``progress(done, total)`` is called
    as files are placed. Returns the final record, with ``"written"`` (files this call placed) and ``"resumed"``.
    """
    out, record, copy = tree.out, dict(tree.record), tree.record["mode"] == "copy"
    resumed = check_out(out, record)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / SUBSET_FILE, record)
    for folder in tree.folders:
        folder.mkdir(parents=True, exist_ok=True)
    made = set(tree.folders)
    total, written = len(tree.pairs), 0
    if progress:
        progress(0, total)
    for done, (src, dst) in enumerate(tree.pairs, 1):
        if dst.parent not in made:  # nested folders inside a class
            dst.parent.mkdir(parents=True, exist_ok=True)
            made.add(dst.parent)
        written += _place(src, dst, copy)
        if progress:
            progress(done, total)
    record["complete"] = True
    atomic_write_json(out / SUBSET_FILE, record)
    return {**record, "written": written, "resumed": resumed}
