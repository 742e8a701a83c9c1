"""ImageNet-style folders and the SIN-10k / random-10k subsets, on a tiny fake ImageNet of real JPEGs."""

from __future__ import annotations

import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from idmm_tui.data import imagenet
from idmm_tui.data.registry import get_dataset_spec, load_split
from idmm_tui.errors import DatasetNotFoundError, UsageError
from tests import fixtures_data as fx

# --dist loadgroup: the module's fixtures are built once, so its tests stay on one xdist worker
pytestmark = pytest.mark.xdist_group("test_imagenet_subsets")


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> fx.DataFixture:
    """5 classes x 15 train images (JPEG + PNG, some nested), 2 val images per class."""
    return fx.make_imagenet(tmp_path_factory.mktemp("imagenet"), classes=5, per_class=15)


def labels_of(ds) -> list[int]:
    return [ds[i][1] for i in range(len(ds))]


def wnid_of(path: Path, base: Path) -> str:
    return path.relative_to(base / "train").parts[0]


def test_registered_specs() -> None:
    for name, train in (("imagenet", 1_281_167), ("sin10k", 10_000), ("imagenet_random10k", 10_000)):
        spec = get_dataset_spec(name)
        assert (spec.num_classes, spec.paper_train_size, spec.paper_test_size) == (1000, train, 50_000)
        assert not spec.downloadable and spec.default_root == "~/.cache/idmm/datasets"


def test_full_imagenet_folder(fake) -> None:
    train = load_split("imagenet", fake, "train")
    assert train.classes == fake.classes and labels_of(train) == fake.train_labels
    suffixes = Counter(f.suffix for f in train.files)
    assert suffixes == {".JPEG": 60, ".png": 15}
    assert sum(f.parent.name == "extra" for f in train.files) == 10  # nested folders count for their wnid
    test = load_split("imagenet", fake, "test")
    assert test.classes == fake.classes and labels_of(test) == fake.test_labels
    assert all(f.parent.parent.name == "val" for f in test.files)


def test_sin10k_is_balanced(fake) -> None:
    ds = load_split("sin10k", fake, "train")
    assert len(ds) == 50 and ds.classes == fake.classes
    assert Counter(labels_of(ds)) == {c: 10 for c in range(5)}
    everything = load_split("imagenet", fake, "train").files
    assert len(set(ds.files)) == 50 and set(ds.files) <= set(everything)
    assert ds.files == [f for f in everything if f in set(ds.files)]  # kept in ImageFolder order
    assert all(fake.classes[y] == wnid_of(f, fake.root) for f, y in zip(ds.files, ds.labels, strict=True))


def test_sin10k_follows_its_documented_definition(fake) -> None:
    ds = load_split("sin10k", fake, "train")
    expected = []
    for wnid in fake.classes:
        files = sorted(f for f in load_split("imagenet", fake, "train").files if wnid_of(f, fake.root) == wnid)
        rng = np.random.default_rng([imagenet.SUBSET_SEED, zlib.crc32(wnid.encode())])
        expected += [files[i] for i in sorted(rng.choice(len(files), size=10, replace=False))]
    assert ds.files == expected


def test_random10k_draws_from_everything(fake) -> None:
    with pytest.warns(imagenet.SubsetWarning, match="only 75 images"):
        ds = load_split("imagenet_random10k", fake, "train")
    assert len(ds) == 75  # min(10000, total)
    sub = imagenet.select_subset(fake.root, "random10k", size=20)
    everything = load_split("imagenet", fake, "train").files
    positions = sorted(np.random.default_rng(0).choice(75, size=20, replace=False))
    assert sub.files == [everything[i] for i in positions] and sub.notes() == []
    assert Counter(sub.labels) != {c: 4 for c in range(5)}  # unbalanced: labels are not used
    assert sub.classes == fake.classes  # every class keeps its label, picked or not


def test_selection_is_deterministic_and_seeded(fake) -> None:
    assert load_split("sin10k", fake, "train").files == load_split("sin10k", str(fake), "train").files
    for kind, extra in (("sin10k", {}), ("random10k", {"size": 20})):
        first = imagenet.select_subset(fake.root, kind, seed=0, **extra)
        assert imagenet.select_subset(fake.root, kind, seed=0, **extra).files == first.files
        other = imagenet.select_subset(fake.root, kind, seed=1, **extra)
        assert other.files != first.files and len(other.files) == len(first.files)
    fewer = imagenet.select_subset(fake.root, "sin10k", per_class=3)
    assert Counter(fewer.labels) == {c: 3 for c in range(5)}


def test_class_pick_depends_only_on_its_own_files(fake, tmp_path) -> None:
    """Dropping a class leaves every other class's SIN-10k images unchanged."""
    small = fx.make_imagenet(tmp_path, classes=4, per_class=15)
    assert small.classes == fake.classes[:4]
    picked = [f.relative_to(small.root) for f in load_split("sin10k", small, "train").files]
    assert picked == [f.relative_to(fake.root) for f in load_split("sin10k", fake, "train").files][:40]


def test_classes_with_too_few_images(tmp_path) -> None:
    data = fx.make_imagenet(tmp_path, classes=4, per_class=[15, 4, 0, 10], with_val=False)
    with pytest.warns(imagenet.SubsetWarning, match=r"2 of 4 classes.*n01441764 \(4\), n01442764 \(0\)"):
        ds = load_split("sin10k", data, "train")
    assert Counter(labels_of(ds)) == {0: 10, 1: 4, 3: 10} and ds.classes == data.classes
    sub = imagenet.select_subset(data.root, "sin10k")
    assert sub.short == {data.classes[1]: 4, data.classes[2]: 0}


def test_val_split(fake) -> None:
    for name in ("sin10k", "imagenet_random10k"):
        test = load_split(name, fake, "test")
        assert test.classes == fake.classes and labels_of(test) == fake.test_labels
        img, _ = test[0]
        img.load()


def test_root_may_hold_an_imagenet_folder(tmp_path) -> None:
    data = fx.make_imagenet(tmp_path / "imagenet", classes=2, per_class=3, val_per_class=1)
    with pytest.warns(imagenet.SubsetWarning, match="fewer than 10"):  # 3 < 10: all of them
        assert labels_of(load_split("sin10k", tmp_path, "train")) == data.train_labels


def test_missing_folders(tmp_path) -> None:
    for name in ("imagenet", "sin10k", "imagenet_random10k"):
        with pytest.raises(DatasetNotFoundError) as err:
            load_split(name, tmp_path / "nothing", "train")
        assert str(tmp_path / "nothing" / "train") in str(err.value) and "Expected layout" in str(err.value)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="has no class folders"):
        load_split("sin10k", tmp_path / "empty", "train")


def test_val_problems_are_named(tmp_path) -> None:
    data = fx.make_imagenet(tmp_path, classes=2, per_class=3, with_val=False)
    with pytest.raises(DatasetNotFoundError, match="Missing folder: .*val"):
        load_split("sin10k", data, "test")
    fx.write_jpg(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG", 0, 8)  # not sorted into classes
    with pytest.raises(DatasetNotFoundError, match="valprep"):
        load_split("sin10k", data, "test")
    fx.write_jpg(tmp_path / "val" / "n09999999" / "ILSVRC2012_val_00000002.JPEG", 1, 8)
    with pytest.raises(DatasetNotFoundError, match="n09999999"):
        load_split("imagenet", data, "test")
    with pytest.warns(imagenet.SubsetWarning):
        assert len(load_split("sin10k", data, "train")) == 6  # training does not need val/


def test_bad_counts_rejected(fake) -> None:
    with pytest.raises(UsageError):
        imagenet.select_subset(fake.root, "sin10k", per_class=0)
    with pytest.raises(UsageError):
        imagenet.select_subset(fake.root, "balanced", per_class=0)
