"""Datasets torchvision has no class for, read from their official split files: CUB-200-2011, Indoor67."""

from __future__ import annotations

from pathlib import Path

from idmm_tui.errors import DatasetNotFoundError

from .base import FileListDataset, LabeledImages, find_dir, not_found, read_lines
from .registry import register_dataset

CUB_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt")
CUB_LAYOUT = (
    "<root>/CUB_200_2011/{images.txt, image_class_labels.txt, train_test_split.txt, classes.txt, "
    "images/<class>/<file>.jpg} (or <root> = the CUB_200_2011 folder itself)"
)
INDOOR_LAYOUT = (
    "<root>/indoor67/{Images/<class>/<file>.jpg, TrainImages.txt, TestImages.txt} (or <root> = the folder holding them)"
)
NO_DOWNLOAD = "Put the files there (this dataset is not downloaded automatically)."


def _id_table(path: Path) -> dict[int, str]:
    """``"<int id> <value>"`` lines -> {id: value}."""
    table = {}
    for line in read_lines(path):
        key, _, value = line.partition(" ")
        table[int(key)] = value.strip()
    return table


def _check_files(name: str, files: list[Path], base: Path, layout: str) -> None:
    """Fail clearly when listed images are missing (reports the first and the count)."""
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise not_found(name, base, layout, f"{len(missing)} listed image(s) missing, e.g. {missing[0]}.")


@register_dataset(
    "cub200",
    num_classes=200,
    paper_sizes=(5994, 5794),
    description="Caltech-UCSD Birds-200-2011: official train/test split (local files)",
)
def load_cub200(root: Path, split: str, download: bool) -> LabeledImages:
    """CUB-200-2011 (200 bird species): train_test_split.txt (1 = train, 0 = test)."""
    base = find_dir(root, "CUB_200_2011", "images.txt")
    if base is None:
        raise not_found("cub200", root / "CUB_200_2011", CUB_LAYOUT, NO_DOWNLOAD)
    absent = [f for f in CUB_FILES if not (base / f).is_file()]
    if absent:
        raise not_found("cub200", base, CUB_LAYOUT, f"{NO_DOWNLOAD} Missing: {base / absent[0]}")
    images = _id_table(base / "images.txt")
    labels = {k: int(v) - 1 for k, v in _id_table(base / "image_class_labels.txt").items()}
    is_train = {k: v.split()[0] == "1" for k, v in _id_table(base / "train_test_split.txt").items()}
    class_table = _id_table(base / "classes.txt")
    classes = [class_table[k] for k in sorted(class_table)]
    want = split == "train"
    ids = [i for i in sorted(images) if is_train.get(i) == want]
    files = [base / "images" / images[i] for i in ids]
    _check_files("cub200", files, base, CUB_LAYOUT)
    bad = [i for i in ids if not 0 <= labels.get(i, -1) < len(classes)]
    if bad:
        msg = f"cub200 at {base}: image {bad[0]} has no valid class in image_class_labels.txt"
        raise DatasetNotFoundError(msg)
    return FileListDataset(files, [labels[i] for i in ids], classes)


@register_dataset(
    "indoor67",
    num_classes=67,
    paper_sizes=(5360, 1340),
    description="MIT Indoor67 scenes: TrainImages.txt / TestImages.txt (local files)",
)
def load_indoor67(root: Path, split: str, download: bool) -> LabeledImages:
    """MIT Indoor67: TrainImages.txt / TestImages.txt (lines ``<class>/<file>``); classes from both files."""
    base = find_dir(root, "indoor67", "TrainImages.txt")
    if base is None:
        raise not_found("indoor67", root / "indoor67", INDOOR_LAYOUT, NO_DOWNLOAD)
    lists = {}
    for s, fname in (("train", "TrainImages.txt"), ("test", "TestImages.txt")):
        if not (base / fname).is_file():
            raise not_found("indoor67", base, INDOOR_LAYOUT, f"{NO_DOWNLOAD} Missing: {base / fname}")
        lists[s] = [line.replace("\\", "/") for line in read_lines(base / fname)]
    classes = sorted({line.split("/", 1)[0] for rows in lists.values() for line in rows})
    index = {c: i for i, c in enumerate(classes)}
    rows = lists[split]
    files = [base / "Images" / line for line in rows]
    _check_files("indoor67", files, base, INDOOR_LAYOUT)
    return FileListDataset(files, [index[line.split("/", 1)[0]] for line in rows], classes)
