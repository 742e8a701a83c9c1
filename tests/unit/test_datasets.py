"""Dataset registry and loaders, on tiny real-format fixtures (tests/fixtures_data.py)."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from idmm_tui.data import embedded_set, fashion_mnist
from idmm_tui.data.registry import (
    dataset_names,
    get_dataset_spec,
    load_split,
    register_dataset,
)
from idmm_tui.errors import DatasetNotFoundError, UnknownNameError
from tests import fixtures_data as fx

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "build_embedded_dataset.py"

PAPER_SIZES = {  # METHOD.md Table 1: classes, train, test
    "flowers102": (102, 2040, 6149),
    "pets": (37, 3680, 3669),
    "dtd": (47, 3760, 1880),
    "indoor67": (67, 5360, 1340),
    "cub200": (200, 5994, 5794),
    "aircraft": (100, 6667, 3333),
    "cars": (196, 8144, 8041),
}

EXPECTED_DIR = {
    "flowers102": "flowers-102",
    "pets": "oxford-iiit-pet",
    "dtd": "dtd",
    "aircraft": "fgvc-aircraft-2013b",
    "cars": "stanford_cars",
    "cub200": "CUB_200_2011",
    "indoor67": "indoor67",
}

MAKERS = {
    "flowers102": fx.make_flowers102,
    "pets": fx.make_pets,
    "dtd": fx.make_dtd,
    "aircraft": fx.make_aircraft,
    "cars": fx.make_cars,
    "cub200": fx.make_cub200,
    "indoor67": fx.make_indoor67,
    "imagefolder": fx.make_imagefolder,
}


def labels_of(ds) -> list[int]:
    return [ds[i][1] for i in range(len(ds))]


def check_split(ds, classes: list[str], labels: list[int]) -> None:
    assert ds.classes == classes
    assert len(ds) == len(labels)
    assert labels_of(ds) == labels
    img, label = ds[0]
    assert isinstance(img, Image.Image) and isinstance(label, int)
    assert getattr(ds, "tensors", None) is None


# --- registry ------------------------------------------------------------------------------------


def test_all_names_registered() -> None:
    assert dataset_names() == sorted(
        [
            "flowers102",
            "pets",
            "dtd",
            "aircraft",
            "cars",
            "cub200",
            "indoor67",
            "imagefolder",
            "fashion_mnist",
            "embedded",
            "imagenet",
            "sin10k",
            "imagenet_random10k",
        ]
    )
    for name in dataset_names():
        spec = get_dataset_spec(name)
        assert spec.name == name and spec.description and "\n" not in spec.description


@pytest.mark.parametrize("name", sorted(PAPER_SIZES))
def test_paper_sizes(name: str) -> None:
    spec = get_dataset_spec(name)
    assert (spec.num_classes, spec.paper_train_size, spec.paper_test_size) == PAPER_SIZES[name]
    assert spec.default_root == "~/.cache/idmm/datasets"


def test_download_flags() -> None:
    downloadable = {n for n in dataset_names() if get_dataset_spec(n).downloadable}
    assert downloadable == {"flowers102", "pets", "dtd", "aircraft", "fashion_mnist"}
    assert get_dataset_spec("imagefolder").num_classes is None
    assert get_dataset_spec("embedded").default_root == ""


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(UnknownNameError) as err:
        get_dataset_spec("flowers")
    assert "'flowers102'" in str(err.value) and err.value.kind == "dataset"
    with pytest.raises(UnknownNameError):
        load_split("cub", None, "train")


def test_unknown_split() -> None:
    with pytest.raises(UnknownNameError, match="split"):
        load_split("embedded", None, "val")


def test_register_duplicate_rejected() -> None:
    spec = get_dataset_spec("embedded")
    same = dict(
        num_classes=spec.num_classes,
        description=spec.description,
        default_root=spec.default_root,
        paper_sizes=(spec.paper_train_size, spec.paper_test_size),
    )
    assert register_dataset("embedded", **same)(spec.loader) is spec.loader  # same spec again: no-op
    assert get_dataset_spec("embedded") == spec
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("embedded", num_classes=1, description="x", default_root="")(spec.loader)


# --- every on-disk format ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_load_fixture(name: str, tmp_path: Path) -> None:
    data = MAKERS[name](tmp_path)
    check_split(load_split(name, tmp_path, "train"), data.classes, data.train_labels)
    check_split(load_split(name, str(tmp_path), "test"), data.classes, data.test_labels)


def test_flowers_train_is_trnid_plus_valid(tmp_path: Path) -> None:
    from scipy.io import loadmat

    fx.make_flowers102(tmp_path, classes=2, per_class=6)
    ids = loadmat(tmp_path / "flowers-102" / "setid.mat", squeeze_me=True)
    train = load_split("flowers102", tmp_path, "train")
    test = load_split("flowers102", tmp_path, "test")
    assert len(train) == len(ids["trnid"]) + len(ids["valid"]) == 8
    assert len(test) == len(ids["tstid"]) == 4
    assert len(train.classes) == 102 and train.classes[0] == "pink primrose"
    assert train[0][0].mode == "RGB"


@pytest.mark.parametrize("name", ["flowers102", "pets", "dtd", "aircraft", "cars"])
def test_root_may_be_the_dataset_folder(name: str, tmp_path: Path) -> None:
    data = MAKERS[name](tmp_path)
    assert labels_of(load_split(name, tmp_path / EXPECTED_DIR[name], "test")) == data.test_labels


def test_dtd_class_missing_from_val(tmp_path: Path) -> None:
    data = fx.make_dtd(tmp_path, classes=3, per_class=6)
    train = load_split("dtd", tmp_path, "train")
    assert train.classes == ["banded", "blotchy", "braided"]
    assert Counter(labels_of(train)) == Counter(data.train_labels) == {0: 4, 1: 4, 2: 4}


@pytest.mark.parametrize("name", ["cub200", "indoor67"])
def test_parsed_root_variants(name: str, tmp_path: Path) -> None:
    flat = MAKERS[name](tmp_path / "flat", nested=False)
    check_split(load_split(name, tmp_path / "flat", "train"), flat.classes, flat.train_labels)
    nested = MAKERS[name](tmp_path / "nested")
    inner = "CUB_200_2011" if name == "cub200" else "indoor67"
    check_split(load_split(name, tmp_path / "nested" / inner, "test"), nested.classes, nested.test_labels)


def test_parsed_missing_image_named(tmp_path: Path) -> None:
    fx.make_indoor67(tmp_path)
    victim = tmp_path / "indoor67" / "Images" / "bakery" / "bakery_0001.jpg"  # a train image
    victim.unlink()
    assert len(load_split("indoor67", tmp_path, "test")) == 3
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(victim))):
        load_split("indoor67", tmp_path, "train")


def test_imagefolder_modes_and_sizes(tmp_path: Path) -> None:
    data = fx.make_imagefolder(tmp_path, classes=3, per_class=8)
    ds = load_split("imagefolder", data, "train")
    assert ds.classes == ["class_0", "class_1", "class_2"]
    modes = {ds[i][0].mode for i in range(len(ds))}
    sizes = {ds[i][0].size for i in range(len(ds))}
    assert {"RGB", "L", "RGBA", "P"} <= modes and len(sizes) > 3


def test_imagefolder_fixed_size_and_test_mapping(tmp_path: Path) -> None:
    fx.make_imagefolder(tmp_path, classes=3, per_class=2, size=16)
    for d in (tmp_path / "test" / "class_1").iterdir():  # test lacks one class: mapping unchanged
        d.unlink()
    (tmp_path / "test" / "class_1").rmdir()
    test = load_split("imagefolder", tmp_path, "test")
    assert test.classes == ["class_0", "class_1", "class_2"]
    assert labels_of(test) == [0, 2]
    assert test[0][0].size == (16, 16)


def test_imagefolder_errors(tmp_path: Path) -> None:
    fx.make_imagefolder(tmp_path, with_test=False)
    with pytest.raises(DatasetNotFoundError, match="test") as err:
        load_split("imagefolder", tmp_path, "test")
    assert str(tmp_path) in str(err.value)
    fx.write_image(tmp_path / "test" / "zebra" / "a.png", "RGB", (8, 8), 0)
    with pytest.raises(DatasetNotFoundError, match="zebra"):
        load_split("imagefolder", tmp_path, "test")


def test_imagefolder_skips_non_images(tmp_path: Path) -> None:
    data = fx.make_imagefolder(tmp_path, classes=2, per_class=2)
    (tmp_path / "train" / "class_0" / "notes.txt").write_text("hi")
    (tmp_path / "train" / "class_0" / ".hidden.png").write_bytes(b"")
    assert labels_of(load_split("imagefolder", tmp_path, "train")) == data.train_labels


# --- Fashion-MNIST and the embedded set ----------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_fixture(gz: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", ())
    data = fx.make_fashion_mnist(tmp_path, n_train=20, n_test=10, gz=gz)
    train = load_split("fashion_mnist", tmp_path, "train")
    x, y = train.tensors
    assert x.shape == (20, 1, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert y.tolist() == data.train_labels and train.classes[0] == "T-shirt/top"
    img, label = train[3]
    assert img.mode == "L" and img.size == (28, 28) and label == 3
    assert np.array_equal(np.asarray(img), x[3, 0].numpy())
    assert len(load_split("fashion_mnist", tmp_path, "test")) == 10


def test_fashion_mnist_system_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fx.make_fashion_mnist(tmp_path / "sys", n_train=12, n_test=6, subdir="")
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", (tmp_path / "sys",))
    assert len(load_split("fashion_mnist", tmp_path / "empty", "test")) == 6
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIRS", ())
    with pytest.raises(DatasetNotFoundError) as err:
        load_split("fashion_mnist", tmp_path / "empty", "test")
    assert str(tmp_path / "empty" / "FashionMNIST" / "raw") in str(err.value)
    assert "data.download = true" in str(err.value)


def test_embedded_split_sizes() -> None:
    train, test = load_split("embedded", None, "train"), load_split("embedded", "", "test")
    for ds, n, per in ((train, 2040, 204), (test, 2000, 200)):
        x, y = ds.tensors
        assert len(ds) == n and x.shape == (n, 1, 28, 28) and x.dtype == torch.uint8
        assert y.dtype == torch.int64 and Counter(y.tolist()) == {c: per for c in range(10)}
        assert ds.classes == fashion_mnist.CLASSES
    img, label = train[5]
    assert img.mode == "L" and img.size == (28, 28) and label == int(train.tensors[1][5])


def test_embedded_file_matches_documented_sha() -> None:
    path = embedded_set.PATH
    assert path.is_file() and path.stat().st_size < 4_000_000
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    assert embedded_set.arrays_sha256(arrays) == embedded_set.SHA256
    documented = re.search(r"ARRAYS_SHA256 = ([0-9a-f]{64})", SCRIPT.read_text()).group(1)
    assert documented == embedded_set.SHA256
    notice = (path.parent / "NOTICE").read_text()
    assert embedded_set.SHA256 in notice and "dataset-fashion-mnist" in notice
    assert "MIT License" in (path.parent / "LICENSE").read_text()
    assert len(set(arrays["src_train"].tolist())) == 2040


@pytest.mark.skipif(not fashion_mnist.SYSTEM_DIRS[0].is_dir(), reason="dataset-fashion-mnist not installed")
def test_embedded_rebuild_is_identical() -> None:
    spec = importlib.util.spec_from_file_location("build_embedded_dataset", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first, second = module.build_arrays(), module.build_arrays()
    assert embedded_set.arrays_sha256(first) == embedded_set.arrays_sha256(second) == embedded_set.SHA256


# --- missing data --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED_DIR))
def test_missing_dataset_message(name: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        load_split(name, tmp_path, "train")
    msg = str(err.value)
    assert str(tmp_path / EXPECTED_DIR[name]) in msg and "Expected layout" in msg
    assert ("data.download = true" in msg) == get_dataset_spec(name).downloadable


def test_cars_never_downloads(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="can no longer be downloaded"):
        load_split("cars", tmp_path, "test", download=True)


def test_default_root_and_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    data = fx.make_cub200(tmp_path / ".cache" / "idmm" / "datasets")
    assert labels_of(load_split("cub200", None, "train")) == data.train_labels
    assert len(load_split("cub200", "~/.cache/idmm/datasets", "test")) == len(data.test_labels)
