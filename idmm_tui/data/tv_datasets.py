"""Datasets read by torchvision's own loaders: Flowers-102, Oxford-IIIT Pets, DTD, FGVC-Aircraft, Cars.

torchvision is imported lazily so that listing datasets stays fast. Each loader checks the on-disk
layout itself first, so a missing dataset gives a clear :class:`DatasetNotFoundError`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from idmm_tui.errors import DatasetNotFoundError

from .base import (
    LabeledImages,
    RelabeledConcat,
    dataset_base,
    download_hint,
    not_found,
    read_lines,
)
from .registry import register_dataset

FLOWERS_LAYOUT = "<root>/flowers-102/{jpg/image_00001.jpg..., imagelabels.mat, setid.mat}"
PETS_LAYOUT = "<root>/oxford-iiit-pet/{images/<Breed_N>.jpg, annotations/trainval.txt, annotations/test.txt}"
DTD_LAYOUT = "<root>/dtd/dtd/{images/<class>/<file>.jpg, labels/train1.txt, val1.txt, test1.txt}"
AIRCRAFT_LAYOUT = (
    "<root>/fgvc-aircraft-2013b/data/{images/<id>.jpg, variants.txt, "
    "images_variant_trainval.txt, images_variant_test.txt}"
)
CARS_LAYOUT = (
    "<root>/stanford_cars/{devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_train/, "
    "cars_test_annos_withlabels.mat, cars_test/}"
)


def _build(
    name: str, where: Path, layout: str, make: Callable[[], Any], download: bool, downloadable: bool = True
) -> Any:
    """Run a torchvision constructor, turning its failures into :class:`DatasetNotFoundError`."""
    try:
        return make()
    except DatasetNotFoundError:
        raise
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        if download:
            msg = f"could not download or read dataset {name!r} at {where}: {exc}"
            raise DatasetNotFoundError(msg) from exc
        hint = f"{download_hint(downloadable)} (torchvision: {exc})"
        raise not_found(name, where, layout, hint) from exc


def _require(name: str, paths: list[Path], where: Path, layout: str, downloadable: bool) -> None:
    """Raise a clear error if any of ``paths`` is missing."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        hint = download_hint(downloadable) + f" Missing: {missing[0]}"
        raise not_found(name, where, layout, hint)


@lru_cache(maxsize=1)
def _flowers_class() -> type:
    """Flowers102 that checks only that the files exist (not their MD5) when not downloading."""
    from torchvision.datasets import Flowers102

    class LocalFlowers102(Flowers102):
        """``torchvision.datasets.Flowers102`` without the MD5 check for local files."""

        _skip_md5 = True

        def _check_integrity(self) -> bool:
            if not self._skip_md5:
                return super()._check_integrity()
            files = [self._base_folder / self._file_dict[k][0] for k in ("label", "setid")]
            return self._images_folder.is_dir() and all(f.is_file() for f in files)

        def download(self) -> None:
            self._skip_md5 = False
            super().download()
            self._skip_md5 = True

    return LocalFlowers102


@register_dataset(
    "flowers102",
    num_classes=102,
    downloadable=True,
    paper_sizes=(2040, 6149),
    description="Oxford Flowers-102: train+val / test",
)
def load_flowers102(root: Path, split: str, download: bool) -> LabeledImages:
    """Flowers-102: train = trnid + valid (1020 + 1020), test = tstid (6149)."""
    root = dataset_base(root, "flowers-102", "jpg")
    base = root / "flowers-102"
    if not download:
        paths = [base / "jpg", base / "imagelabels.mat", base / "setid.mat"]
        _require("flowers102", paths, base, FLOWERS_LAYOUT, True)
    cls = _flowers_class()
    names = ("train", "val") if split == "train" else ("test",)
    parts = []
    for i, s in enumerate(names):
        dl = download and i == 0
        make = partial(cls, root, s, download=dl)
        parts.append(_build("flowers102", base, FLOWERS_LAYOUT, make, dl))
    return RelabeledConcat(parts, [None] * len(parts), list(cls.classes))


def _pets_classes(base: Path) -> list[str]:
    """Breed names indexed by label, read from both annotation files (a split may miss a breed).

    Named the way torchvision names them ("american_pit_bull_terrier" -> "American Pit Bull Terrier").
    """
    by_label: dict[int, str] = {}
    for s in ("trainval", "test"):
        path = base / "annotations" / f"{s}.txt"
        for line in read_lines(path) if path.exists() else []:
            if line.startswith("#"):
                continue
            image_id, label = line.split()[:2]
            breed = image_id.rsplit("_", 1)[0]
            by_label.setdefault(int(label) - 1, " ".join(p.title() for p in breed.split("_")))
    n = max(by_label, default=-1) + 1
    return [by_label.get(i, f"class_{i + 1}") for i in range(n)]


@register_dataset(
    "pets",
    num_classes=37,
    downloadable=True,
    paper_sizes=(3680, 3669),
    description="Oxford-IIIT Pets, 37 breeds: trainval / test",
)
def load_pets(root: Path, split: str, download: bool) -> LabeledImages:
    """Oxford-IIIT Pets (37 breeds): trainval / test."""
    from torchvision.datasets import OxfordIIITPet

    root = dataset_base(root, "oxford-iiit-pet", "images")
    base = root / "oxford-iiit-pet"
    if not download:
        paths = [base / "images", base / "annotations" / "trainval.txt", base / "annotations" / "test.txt"]
        _require("pets", paths, base, PETS_LAYOUT, True)
    s = "trainval" if split == "train" else "test"
    ds = _build("pets", base, PETS_LAYOUT, lambda: OxfordIIITPet(root, split=s, download=download), download)
    return RelabeledConcat([ds], [None], _pets_classes(base))


@register_dataset(
    "dtd",
    num_classes=47,
    downloadable=True,
    paper_sizes=(3760, 1880),
    description="Describable Textures, partition 1: train1+val1 / test1",
)
def load_dtd(root: Path, split: str, download: bool) -> LabeledImages:
    """DTD partition 1: train = train1 + val1, test = test1; classes = union over the three files."""
    from torchvision.datasets import DTD

    root = dataset_base(root, "dtd", "dtd")
    base = root / "dtd" / "dtd"
    if not download:
        labels = base / "labels"
        paths = [base / "images", labels / "train1.txt", labels / "val1.txt", labels / "test1.txt"]
        _require("dtd", paths, base, DTD_LAYOUT, True)
    every = {}
    for i, s in enumerate(("train", "val", "test")):
        dl = download and i == 0
        every[s] = _build("dtd", base, DTD_LAYOUT, partial(DTD, root, s, partition=1, download=dl), dl)
    classes = sorted({c for ds in every.values() for c in ds.classes})
    index = {c: i for i, c in enumerate(classes)}
    parts = [every["train"], every["val"]] if split == "train" else [every["test"]]
    return RelabeledConcat(parts, [[index[c] for c in p.classes] for p in parts], classes)


@register_dataset(
    "aircraft",
    num_classes=100,
    downloadable=True,
    paper_sizes=(6667, 3333),
    description="FGVC-Aircraft, 100 variants: trainval / test",
)
def load_aircraft(root: Path, split: str, download: bool) -> LabeledImages:
    """FGVC-Aircraft, 100 variants: trainval / test."""
    from torchvision.datasets import FGVCAircraft

    root = dataset_base(root, "fgvc-aircraft-2013b", "data")
    base = root / "fgvc-aircraft-2013b"
    s = "trainval" if split == "train" else "test"
    if not download:
        data = base / "data"
        paths = [data / "images", data / "variants.txt", data / f"images_variant_{s}.txt"]
        _require("aircraft", paths, base, AIRCRAFT_LAYOUT, True)

    def make() -> Any:
        return FGVCAircraft(root, split=s, annotation_level="variant", download=download)

    ds = _build("aircraft", base, AIRCRAFT_LAYOUT, make, download)
    return RelabeledConcat([ds], [None], list(ds.classes))


@register_dataset(
    "cars",
    num_classes=196,
    downloadable=False,
    paper_sizes=(8144, 8041),
    description="Stanford Cars: train / test (local files only)",
)
def load_cars(root: Path, split: str, download: bool) -> LabeledImages:
    """Stanford Cars (196 classes): train / test. The official URL is gone: never downloads."""
    from torchvision.datasets import StanfordCars

    root = dataset_base(root, "stanford_cars", "devkit")
    base = root / "stanford_cars"
    if split == "train":
        annos = base / "devkit" / "cars_train_annos.mat"
    else:
        annos = base / "cars_test_annos_withlabels.mat"
    images = base / ("cars_train" if split == "train" else "cars_test")
    hint = (
        "Stanford Cars can no longer be downloaded (the official URL is gone; "
        "data.download cannot fetch it): get a copy and put the files there."
    )
    missing = [p for p in (base / "devkit" / "cars_meta.mat", annos, images) if not p.exists()]
    if missing:
        raise not_found("cars", base, CARS_LAYOUT, f"{hint} Missing: {missing[0]}")
    make = partial(StanfordCars, root, split=split, download=False)
    ds = _build("cars", base, CARS_LAYOUT, make, download=False, downloadable=False)
    return RelabeledConcat([ds], [None], [str(c) for c in ds.classes])
