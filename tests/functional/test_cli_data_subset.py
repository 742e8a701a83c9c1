"""`idmm data subset`: an ImageNet subset written as an imagefolder tree + subset.json, through the CLI."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from idmm_tui.data import imagenet
from idmm_tui.data.registry import load_split
from tests import fixtures_data as fx

# --dist loadgroup: the module's fixtures are built once, so its tests stay on one xdist worker
pytestmark = pytest.mark.xdist_group("test_cli_data_subset")


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> fx.DataFixture:
    """5 classes (one with only 4 images) of real JPEG/PNG files, 2 val images per class."""
    return fx.make_imagenet(tmp_path_factory.mktemp("imagenet"), classes=5, per_class=[15, 15, 4, 15, 15])


def tree_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


def test_sin10k_symlinks_match_the_dataset(cli, fake, tmp_path) -> None:
    out = tmp_path / "sin10k"
    result = cli("data", "subset", fake, "--kind", "sin10k", "--out", out)
    assert result.code == 0, result.err
    assert "1 of 5 classes have fewer than 10" in result.err and "n01442764 (4)" in result.err
    assert "44 training images of 5 classes" in result.out and "data.root=" in result.out

    record = json.loads((out / "subset.json").read_text())
    assert (record["kind"], record["seed"], record["per_class"], record["size"]) == ("sin10k", 0, 10, None)
    assert record["source"] == str(fake.root.resolve()) and record["mode"] == "symlink" and record["complete"]
    assert record["dataset"] == "sin10k" and record["test"] == {"source": "val", "count": 10}
    assert record["counts"]["train"] == 44 and record["counts"]["available"] == 64
    assert record["counts"]["short_classes"] == {"n01442764": 4} and record["classes"] == fake.classes

    # the tree holds exactly the images of data.dataset = "sin10k", as links into the source
    with pytest.warns(imagenet.SubsetWarning):
        registered = load_split("sin10k", fake, "train")
    expected = [f.relative_to(fake.root).as_posix() for f in registered.files]
    assert record["files"] == expected
    links = tree_files(out / "train")
    assert sorted(f"train/{k}" for k in links) == sorted(expected)
    assert all(p.is_symlink() and p.resolve() == fake.root.resolve() / "train" / k for k, p in links.items())
    copy = load_split("imagefolder", out, "train")
    assert copy.classes == registered.classes and copy.labels == registered.labels
    assert [f.resolve() for f in copy.files] == [f.resolve() for f in registered.files]
    assert load_split("imagefolder", out, "test").labels == fake.test_labels


def test_random_copy_with_seed_and_size(cli, fake, tmp_path) -> None:
    out = tmp_path / "random"
    result = cli(
        "data", "subset", fake, "--kind", "random10k", "--size", "12", "--seed", "3", "--copy", "--no-val", "--out", out
    )
    assert result.code == 0, result.err
    record = json.loads((out / "subset.json").read_text())
    assert (record["kind"], record["seed"], record["size"], record["mode"]) == ("random10k", 3, 12, "copy")
    assert record["dataset"] is None and record["test"] is None and not (out / "test").exists()
    chosen = imagenet.select_subset(fake.root, "random10k", seed=3, size=12)
    assert record["files"] == [f"train/{r}" for r in chosen.relative_files()]
    for rel in record["files"]:
        assert not (out / rel).is_symlink() and (out / rel).read_bytes() == (fake.root / rel).read_bytes()
    assert sorted(p.name for p in (out / "train").iterdir()) == fake.classes  # every class, picked or not
    ds = load_split("imagefolder", out, "train")
    assert ds.classes == fake.classes and Counter(ds.labels) == Counter(chosen.labels)


def test_rerun_completes_and_refuses_other_specs(cli, fake, tmp_path) -> None:
    out = tmp_path / "sub"
    assert cli("data", "subset", fake, "--kind", "sin10k", "--per-class", "2", "--out", out).code == 0
    again = cli("data", "subset", fake, "--kind", "sin10k", "--per-class", "2", "--out", out)
    assert again.code == 0 and "already complete" in again.out

    victim = out / json.loads((out / "subset.json").read_text())["files"][3]
    victim.unlink()  # an interrupted write: the same command finishes it
    resumed = cli("data", "subset", fake, "--kind", "sin10k", "--per-class", "2", "--out", out)
    assert resumed.code == 0 and "1 files written" in resumed.out and victim.is_symlink()

    before = tree_files(out)
    for args in (["--per-class", "3"], ["--seed", "1", "--per-class", "2"], ["--per-class", "2", "--copy"]):
        refused = cli("data", "subset", fake, "--kind", "sin10k", *args, "--out", out)
        assert refused.code == 2 and "holds another subset" in refused.err
        assert len(refused.err.strip().splitlines()) <= 3
    assert tree_files(out) == before

    other = tmp_path / "other"
    (other / "keep.txt").parent.mkdir()
    (other / "keep.txt").write_text("mine")
    refused = cli("data", "subset", fake, "--kind", "random10k", "--out", other)
    assert refused.code == 2 and "not empty" in refused.err and os.listdir(other) == ["keep.txt"]


def test_errors(cli, fake, tmp_path) -> None:
    missing = cli("data", "subset", tmp_path / "nothing", "--kind", "sin10k", "--out", tmp_path / "o")
    assert missing.code == 3 and str(tmp_path / "nothing" / "train") in missing.err
    assert len(missing.err.strip().splitlines()) <= 3 and not (tmp_path / "o").exists()
    (tmp_path / "bare" / "train").mkdir(parents=True)
    bare = cli("data", "subset", tmp_path / "bare", "--kind", "random10k", "--out", tmp_path / "o")
    assert bare.code == 3 and "has no class folders" in bare.err
    for args in (
        ["--kind", "balanced"],
        ["--kind", "sin10k", "--size", "5"],
        ["--kind", "random10k", "--per-class", "5"],
    ):
        assert cli("data", "subset", fake, *args, "--out", tmp_path / "o").code == 2
    inside = cli("data", "subset", fake, "--kind", "sin10k", "--out", fake.root / "train" / "x")
    assert inside.code == 2 and not (fake.root / "train" / "x").exists()
