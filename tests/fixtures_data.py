"""Tiny datasets in the real on-disk formats, for tests (a few 8-32 px images per class).

Every ``make_*`` writes into ``root`` and returns a :class:`DataFixture`, which is usable as a
path (``os.fspath``, ``str``, ``/``) and also says what a loader should find: the class list and the
labels of the train and test splits in loader order. Example::

    fx = make_imagefolder(tmp_path, classes=3, per_class=4, size=16)
    ds = load_split("imagefolder", fx, "train")
    assert [ds[i][1] for i in range(len(ds))] == fx.train_labels
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

#: (mode, extension, PIL format) cycled through by make_imagefolder: mixed modes and containers.
FOLDER_KINDS = (
    ("RGB", ".jpg", "JPEG"),
    ("L", ".png", "PNG"),
    ("RGBA", ".png", "PNG"),
    ("P", ".gif", "GIF"),
    ("L", ".jpeg", "JPEG"),
    ("RGB", ".bmp", "BMP"),
    ("P", ".png", "PNG"),
    ("RGBA", ".webp", "WEBP"),
)
#: Modes written as JPEG into ``.jpg`` files of the torchvision-style datasets.
JPEG_MODES = ("RGB", "L", "CMYK")
#: Odd sizes (width, height) cycled through when no size is given.
ODD_SIZES = ((8, 8), (13, 9), (17, 31), (32, 20), (9, 27), (24, 11))

Size = int | tuple[int, int] | None


@dataclass(frozen=True)
class DataFixture:
    """Where a fixture dataset was written and what loading it must give."""

    root: Path
    classes: list[str]
    train_labels: list[int] = field(default_factory=list)
    test_labels: list[int] = field(default_factory=list)

    def __fspath__(self) -> str:
        return str(self.root)

    def __str__(self) -> str:
        return str(self.root)

    def __truediv__(self, other: str | Path) -> Path:
        return self.root / other


def _size(size: Size, k: int) -> tuple[int, int]:
    if size is None:
        return ODD_SIZES[k % len(ODD_SIZES)]
    return (size, size) if isinstance(size, int) else size


def make_image(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    """A random-noise image of ``size`` (w, h) in ``mode`` (RGB, L, RGBA, P, CMYK, LA…)."""
    w, h = size
    rgb = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return rgb.convert(mode)


def write_image(path: Path, mode: str, size: tuple[int, int], seed: int, fmt: str | None = None) -> Path:
    """Write a noise image to ``path`` (format from ``fmt`` or the extension); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    make_image(mode, size, seed).save(path, format=fmt)
    return path


def write_jpg(path: Path, k: int, size: Size = None) -> Path:
    """A ``.jpg`` of the k-th mode/size in the cycles (real JPEG, modes RGB / L / CMYK)."""
    return write_image(path, JPEG_MODES[k % len(JPEG_MODES)], _size(size, k), seed=k, fmt="JPEG")


def write_lines(path: Path, lines: list[str], newline: str = "\n") -> Path:
    """Write text lines (with a final newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{line}{newline}" for line in lines).encode())
    return path


def make_imagefolder(
    root: Path,
    classes: int = 3,
    per_class: int = 4,
    size: Size = None,
    test_per_class: int | None = None,
    with_test: bool = True,
) -> DataFixture:
    """``root/train/class_<i>/img_<j>.<ext>`` (+ ``root/test/...``), mixed modes and formats."""
    root = Path(root)
    names = [f"class_{i}" for i in range(classes)]
    test_n = max(1, per_class // 2) if test_per_class is None else test_per_class
    counts = {"train": per_class, "test": test_n} if with_test else {"train": per_class}
    labels: dict[str, list[int]] = {"train": [], "test": []}
    k = 0
    for split, n in counts.items():
        for label, name in enumerate(names):
            for j in range(n):
                mode, ext, fmt = FOLDER_KINDS[k % len(FOLDER_KINDS)]
                write_image(root / split / name / f"img_{j:03d}{ext}", mode, _size(size, k), k, fmt)
                labels[split].append(label)
                k += 1
    return DataFixture(root, names, labels["train"], labels["test"])


def make_flowers102(root: Path, classes: int = 3, per_class: int = 6, size: Size = None) -> DataFixture:
    """``root/flowers-102/{jpg/image_%05d.jpg, imagelabels.mat, setid.mat}`` (not the official MD5s).

    Within each class the images go in turn to trnid, valid, tstid; train = trnid then valid.
    """
    from scipy.io import savemat
    from torchvision.datasets import Flowers102

    base = Path(root) / "flowers-102"
    n = classes * per_class
    labels = [(k % classes) + 1 for k in range(n)]  # 1-based, image id k + 1
    sets: dict[str, list[int]] = {"trnid": [], "valid": [], "tstid": []}
    for k in range(n):
        write_jpg(base / "jpg" / f"image_{k + 1:05d}.jpg", k, size)
        sets[("trnid", "valid", "tstid")[(k // classes) % 3]].append(k + 1)
    savemat(base / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    savemat(base / "setid.mat", {key: np.array([ids], dtype=np.uint16) for key, ids in sets.items()})
    train = [labels[i - 1] - 1 for i in sets["trnid"] + sets["valid"]]
    test = [labels[i - 1] - 1 for i in sets["tstid"]]
    return DataFixture(Path(root), list(Flowers102.classes), train, test)


PET_BREEDS = ("Abyssinian", "american_bulldog", "Bengal", "basset_hound", "Birman", "beagle")


def make_pets(root: Path, classes: int = 3, per_class: int = 4, size: Size = None) -> DataFixture:
    """``root/oxford-iiit-pet/{images/<Breed>_<n>.jpg, annotations/{trainval,test}.txt}``.

    First half of each breed's images -> trainval, rest -> test. Cats' breeds are capitalised.
    """
    base = Path(root) / "oxford-iiit-pet"
    rows: dict[str, list[str]] = {"trainval": [], "test": []}
    labels: dict[str, list[int]] = {"trainval": [], "test": []}
    k = 0
    for label, breed in enumerate(PET_BREEDS[:classes]):
        species = 1 if breed[0].isupper() else 2
        for j in range(per_class):
            image_id = f"{breed}_{j + 1}"
            write_jpg(base / "images" / f"{image_id}.jpg", k, size)
            split = "trainval" if j < per_class // 2 else "test"
            rows[split].append(f"{image_id} {label + 1} {species} {j + 1}")
            labels[split].append(label)
            k += 1
    for split, lines in rows.items():
        write_lines(base / "annotations" / f"{split}.txt", lines)
    names = [" ".join(p.title() for p in b.split("_")) for b in PET_BREEDS[:classes]]
    return DataFixture(Path(root), names, labels["trainval"], labels["test"])


DTD_CLASSES = ("banded", "blotchy", "braided", "bubbly", "bumpy")


def make_dtd(root: Path, classes: int = 3, per_class: int = 6, size: Size = None) -> DataFixture:
    """``root/dtd/dtd/{images/<cls>/<cls>_%04d.jpg, labels/{train,val,test}1.txt}``.

    Images go in turn to train1, val1, test1, except that the LAST class has no val1 images (so the
    class list must come from all three files). Train = train1 then val1.
    """
    data = Path(root) / "dtd" / "dtd"
    names = list(DTD_CLASSES[:classes])
    rows: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    labels: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    k = 0
    for label, cls in enumerate(names):
        for j in range(per_class):
            fname = f"{cls}_{j + 1:04d}.jpg"
            write_jpg(data / "images" / cls / fname, k, size)
            split = ("train", "val", "test")[j % 3]
            if split == "val" and label == classes - 1:
                split = "train"
            rows[split].append(f"{cls}/{fname}")
            labels[split].append(label)
            k += 1
    for split, lines in rows.items():
        write_lines(data / "labels" / f"{split}1.txt", lines)
    return DataFixture(Path(root), names, labels["train"] + labels["val"], labels["test"])


AIRCRAFT_VARIANTS = ("707-320", "A300B4", "Cessna 172", "F-16A/B", "DHC-8-100")


def make_aircraft(root: Path, classes: int = 3, per_class: int = 4, size: Size = None) -> DataFixture:
    """``root/fgvc-aircraft-2013b/data/{images/<id>.jpg, variants.txt, images_variant_<split>.txt}``.

    Per variant, images go in turn to train, val, test; trainval = train + val (file order).
    """
    data = Path(root) / "fgvc-aircraft-2013b" / "data"
    names = list(AIRCRAFT_VARIANTS[:classes])
    rows: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    labels: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    k = 0
    for label, variant in enumerate(names):
        for j in range(per_class):
            image_id = f"{1000000 + k:07d}"
            write_jpg(data / "images" / f"{image_id}.jpg", k, size)
            split = ("train", "val", "test")[j % 3]
            rows[split].append(f"{image_id} {variant}")
            labels[split].append(label)
            k += 1
    write_lines(data / "variants.txt", names)
    for split in ("train", "val", "test"):
        write_lines(data / f"images_variant_{split}.txt", rows[split])
    write_lines(data / "images_variant_trainval.txt", rows["train"] + rows["val"])
    return DataFixture(Path(root), names, labels["train"] + labels["val"], labels["test"])


CAR_NAMES = ("AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi R8 Coupe 2012", "BMW M3 Coupe 2012")


def _car_annotations(rows: list[tuple[str, int]]) -> np.ndarray:
    """A MATLAB struct array like ``cars_*_annos.mat``'s ``annotations`` (1-based classes)."""
    fields = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")
    rec = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, (fname, label) in enumerate(rows):
        rec[0, i] = (np.uint8(1), np.uint8(1), np.uint8(7), np.uint8(7), np.uint8(label + 1), fname)
    return rec


def make_cars(root: Path, classes: int = 3, per_class: int = 4, size: Size = None) -> DataFixture:
    """``root/stanford_cars/{devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_train/,
    cars_test_annos_withlabels.mat, cars_test/}``; first half of each class -> train.

    Needs >= 2 classes and >= 2 images per split (scipy squeezes single records).
    """
    from scipy.io import savemat

    base = Path(root) / "stanford_cars"
    names = list(CAR_NAMES[:classes])
    rows: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    k = 0
    for label in range(classes):
        for j in range(per_class):
            split = "train" if j < per_class // 2 else "test"
            fname = f"{len(rows[split]) + 1:05d}.jpg"
            write_jpg(base / f"cars_{split}" / fname, k, size)
            rows[split].append((fname, label))
            k += 1
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array([names], dtype=object)})
    savemat(base / "devkit" / "cars_train_annos.mat", {"annotations": _car_annotations(rows["train"])})
    savemat(base / "cars_test_annos_withlabels.mat", {"annotations": _car_annotations(rows["test"])})
    return DataFixture(Path(root), names, [lab for _, lab in rows["train"]], [lab for _, lab in rows["test"]])


CUB_CLASSES = (
    "001.Black_footed_Albatross",
    "002.Laysan_Albatross",
    "003.Sooty_Albatross",
    "004.Groove_billed_Ani",
)


def make_cub200(
    root: Path, classes: int = 3, per_class: int = 4, size: Size = None, nested: bool = True
) -> DataFixture:
    """``root/CUB_200_2011/{images.txt, image_class_labels.txt, train_test_split.txt, classes.txt,
    images/<cls>/<file>.jpg}`` (``nested=False``: directly in ``root``). Even j -> train.

    One image per class is a PNG (RGBA) with a ``.jpg`` name, as real datasets sometimes have.
    """
    base = Path(root) / "CUB_200_2011" if nested else Path(root)
    names = list(CUB_CLASSES[:classes])
    images, class_rows, split_rows = [], [], []
    labels: dict[bool, list[int]] = {True: [], False: []}
    k = 0
    for label, cls in enumerate(names):
        for j in range(per_class):
            image_id, rel = k + 1, f"{cls}/{cls.split('.', 1)[1]}_{j:04d}_{k}.jpg"
            if j == 1:
                write_image(base / "images" / rel, "RGBA", _size(size, k), k, "PNG")
            else:
                write_jpg(base / "images" / rel, k, size)
            is_train = j % 2 == 0
            images.append(f"{image_id} {rel}")
            class_rows.append(f"{image_id} {label + 1}")
            split_rows.append(f"{image_id} {int(is_train)}")
            labels[is_train].append(label)
            k += 1
    write_lines(base / "images.txt", images)
    write_lines(base / "image_class_labels.txt", class_rows)
    write_lines(base / "train_test_split.txt", split_rows)
    write_lines(base / "classes.txt", [f"{i + 1} {c}" for i, c in enumerate(names)])
    return DataFixture(Path(root), names, labels[True], labels[False])


INDOOR_CLASSES = ("airport_inside", "artstudio", "bakery", "bar", "bathroom")


def make_indoor67(
    root: Path, classes: int = 3, per_class: int = 4, size: Size = None, nested: bool = True
) -> DataFixture:
    """``root/indoor67/{Images/<cls>/<file>.jpg, TrainImages.txt, TestImages.txt}`` (``nested=False``:
    directly in ``root``). Last image of each class -> test. TestImages.txt has CRLF line ends.
    """
    base = Path(root) / "indoor67" if nested else Path(root)
    names = list(INDOOR_CLASSES[:classes])
    rows: dict[str, list[str]] = {"train": [], "test": []}
    labels: dict[str, list[int]] = {"train": [], "test": []}
    k = 0
    for label, cls in enumerate(names):
        for j in range(per_class):
            rel = f"{cls}/{cls}_{j:04d}.jpg"
            if j == 0:
                write_image(base / "Images" / rel, "P", _size(size, k), k, "GIF")
            else:
                write_jpg(base / "Images" / rel, k, size)
            split = "test" if j == per_class - 1 else "train"
            rows[split].append(rel)
            labels[split].append(label)
            k += 1
    write_lines(base / "TrainImages.txt", rows["train"])
    write_lines(base / "TestImages.txt", rows["test"], newline="\r\n")
    return DataFixture(Path(root), names, labels["train"], labels["test"])


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file (gzipped when ``path`` ends in ``.gz``)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())
    return path


def make_fashion_mnist(
    root: Path, n_train: int = 20, n_test: int = 10, gz: bool = True, subdir: str = "FashionMNIST/raw"
) -> DataFixture:
    """The four Fashion-MNIST IDX files in ``root/<subdir>`` (labels cycle 0..9), 28x28 noise images."""
    from idmm_tui.data.fashion_mnist import CLASSES, FILES

    folder = Path(root) / subdir if subdir else Path(root)
    rng = np.random.default_rng(0)
    labels = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels[split] = [i % 10 for i in range(n)]
        img_stem, lab_stem = FILES[split]
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{img_stem}{suffix}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{lab_stem}{suffix}", np.array(labels[split], dtype=np.uint8))
    return DataFixture(Path(root), list(CLASSES), labels["train"], labels["test"])


def imagenet_wnids(classes: int) -> list[str]:
    """``classes`` WordNet-id-like folder names (``n01440764`` …), sorted."""
    return [f"n{1440764 + 1000 * i:08d}" for i in range(classes)]


def make_imagenet(
    root: Path,
    classes: int = 5,
    per_class: int | list[int] = 15,
    val_per_class: int = 2,
    size: Size = 8,
    with_val: bool = True,
) -> DataFixture:
    """``root/train/<wnid>/<wnid>_<n>.JPEG`` and ``root/val/<wnid>/ILSVRC2012_val_<8 digits>.JPEG`` (valprep).

    ``per_class``: images per class, or one count per class (0 = an empty class folder). Real JPEGs
    (modes RGB / L / CMYK), except that every 5th train image is a ``.png`` and every 7th sits in a
    nested ``<wnid>/extra/`` folder (torchvision's ImageFolder takes both).
    """
    root = Path(root)
    names = imagenet_wnids(classes)
    counts = per_class if isinstance(per_class, list) else [per_class] * classes
    labels: dict[str, list[int]] = {"train": [], "test": []}
    k = 0
    for label, wnid in enumerate(names):
        (root / "train" / wnid).mkdir(parents=True, exist_ok=True)
        for j in range(counts[label]):
            folder = root / "train" / wnid / ("extra" if j % 7 == 6 else "")
            if j % 5 == 4:
                write_image(folder / f"{wnid}_{j + 1}.png", "RGB", _size(size, k), k, "PNG")
            else:
                write_jpg(folder / f"{wnid}_{j + 1}.JPEG", k, size)
            labels["train"].append(label)
            k += 1
    if with_val:
        for label, wnid in enumerate(names):
            for _ in range(val_per_class):
                write_jpg(root / "val" / wnid / f"ILSVRC2012_val_{len(labels['test']) + 1:08d}.JPEG", k, size)
                labels["test"].append(label)
                k += 1
    return DataFixture(root, names, labels["train"], labels["test"])
