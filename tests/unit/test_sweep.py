"""Sweep expansion: axes parsing, cell names, seeds, transfer grids (no training here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from idmm_tui.errors import UsageError
from idmm_tui.experiments.sweep import (
    Axis,
    SweepSpec,
    check_axes,
    expand,
    parse_axis,
    parse_seeds,
    split_values,
)


def test_split_values_keeps_brackets_and_quotes_together():
    assert split_values("a,b") == ["a", "b"]
    assert split_values("[0,1,2],[3,4]") == ["[0,1,2]", "[3,4]"]
    assert split_values('"x,y",z') == ['"x,y"', "z"]
    assert split_values(" 1e-3 , 5e-4 ") == ["1e-3", "5e-4"]


def test_parse_axis_and_its_errors():
    assert parse_axis("pretrain.method=idmm,simclr") == Axis("pretrain.method", ("idmm", "simclr"))
    for bad in ("pretrain.method", "=a,b", "pretrain.method=", "a=x,,y"):
        with pytest.raises(UsageError):
            parse_axis(bad)
    with pytest.raises(UsageError, match="repeated"):
        check_axes([parse_axis("a=x,x")])
    with pytest.raises(UsageError, match="--seeds"):
        parse_axis("seed=0,1")
    with pytest.raises(UsageError, match="given twice"):
        check_axes([Axis("a", ("1",)), Axis("a", ("2",))])


def test_parse_seeds():
    assert parse_seeds(None) is None
    assert parse_seeds("0,1,2") == [0, 1, 2]
    for bad in ("a", "1,1", "-1"):
        with pytest.raises(UsageError):
            parse_seeds(bad)


def test_grid_cells_seed_major_with_stable_names(tmp_path: Path):
    spec = SweepSpec(
        recipe="r.toml",
        axes=[parse_axis("pretrain.method=idmm,none"), parse_axis("data.dataset=pets,dtd")],
        seeds=[0, 1],
        overrides=["x=1"],
    )
    cells = expand(spec, "g", tmp_path)
    assert [c.name for c in cells[:4]] == [
        "g.method-idmm.dataset-pets.s0",
        "g.method-idmm.dataset-dtd.s0",
        "g.method-none.dataset-pets.s0",
        "g.method-none.dataset-dtd.s0",
    ]
    assert len(cells) == 8 and len({c.name for c in cells}) == 8
    assert cells[0].overrides == ("x=1", "pretrain.method=idmm", "data.dataset=pets", "seed=0")
    assert cells[0].values == {"pretrain.method": "idmm", "data.dataset": "pets", "seed": "0"}


def test_names_disambiguate_keys_with_the_same_last_part(tmp_path: Path):
    spec = SweepSpec(recipe="r.toml", axes=[parse_axis("pretrain.lr=1e-3,5e-4"), parse_axis("finetune.0.lr=1e-3")])
    names = [c.name for c in expand(spec, "g", tmp_path)]
    assert names[0] == "g.pretrain-lr-1e-3.finetune-0-lr-1e-3"


def test_values_that_only_differ_in_unsafe_characters_are_refused(tmp_path: Path):
    spec = SweepSpec(recipe="r.toml", axes=[parse_axis("data.root=/a/x y,/b/x?y")])
    with pytest.raises(UsageError, match="share a run name"):
        expand(spec, "g", tmp_path)


def test_transfer_sweep_pretrains_each_source_once_then_fine_tunes_on_each_target(tmp_path: Path):
    spec = SweepSpec(
        recipe="r.toml",
        axes=[parse_axis("data.dataset=pets,dtd")],
        sources=[parse_axis("data.dataset=flowers102,pets"), parse_axis("pretrain.method=idmm,none")],
    )
    cells = expand(spec, "t", tmp_path)
    sources = [c for c in cells if c.role == "source"]
    targets = [c for c in cells if c.role == "run"]
    # 'none' sources need no pretraining run; sources come first
    assert [c.name for c in sources] == ["t.src.dataset-flowers102.method-idmm", "t.src.dataset-pets.method-idmm"]
    assert cells[: len(sources)] == sources
    assert sources[0].overrides[-1] == "finetune=[]"
    assert len(targets) == 2 * 2 + 2  # two pretrained sources and one random-init row, times two targets
    first = targets[0]
    assert first.values == {
        "source:data.dataset": "flowers102",
        "source:pretrain.method": "idmm",
        "data.dataset": "pets",
    }
    assert f'init="{tmp_path.absolute() / sources[0].name}"' in first.overrides
    assert "pretrain.method=none" in first.overrides
    random_init = [c for c in targets if c.values["source:pretrain.method"] == "none"]
    assert [c.name for c in random_init] == ["t.from-none.dataset-pets", "t.from-none.dataset-dtd"]
    assert random_init[0].values["source:data.dataset"] == "none"
    assert all('init=""' in c.overrides for c in random_init)


def test_zipped_axes_make_ablation_rows(tmp_path: Path):
    axes = [parse_axis("pretrain.label_smoothing=0,0.1,0.1"), parse_axis("pretrain.cutmix_alpha=0,0,0.5")]
    check_axes(axes, zipped=True)  # repeated values are fine when zipped
    cells = expand(SweepSpec(recipe="r.toml", axes=axes, zipped=True), "abl", tmp_path)
    assert [c.values for c in cells] == [
        {"pretrain.label_smoothing": "0", "pretrain.cutmix_alpha": "0"},
        {"pretrain.label_smoothing": "0.1", "pretrain.cutmix_alpha": "0"},
        {"pretrain.label_smoothing": "0.1", "pretrain.cutmix_alpha": "0.5"},
    ]
    with pytest.raises(UsageError, match="same number of values"):
        expand(SweepSpec(recipe="r.toml", axes=[axes[0], parse_axis("a=1,2")], zipped=True), "abl", tmp_path)
    with pytest.raises(UsageError, match="same values"):
        check_axes([parse_axis("a=1,1"), parse_axis("b=2,2")], zipped=True)
    assert SweepSpec.from_json(SweepSpec(recipe="r", axes=axes, zipped=True).to_json()).zipped
