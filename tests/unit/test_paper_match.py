"""The paper's number appears beside a cell only when the run's setting is the table's (real recipes)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from idmm_tui.experiments.paper_match import paper_number
from idmm_tui.experiments.report import RunFacts
from idmm_tui.launch import resolve_recipe
from idmm_tui.recipe import to_toml

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TABLE_2 = ("finetune.0.epochs=200", "finetune.1.epochs=0")  # Table 2: one 200-epoch stage at 224


def facts(name: str, *overrides: str, source: dict | None = None) -> RunFacts:
    recipe = tomllib.loads(to_toml(resolve_recipe(RECIPES / name, list(overrides))))
    return RunFacts("x", "completed", {}, 0, recipe, {}, source_recipe=source or {})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ((), 85.6),  # flowers.toml is Table 3's protocol: 800 epochs at 224, then 100 at 448
        (TABLE_2, 79.9),
        (("pretrain.method=simclr", *TABLE_2), 71.1),
        (("pretrain.method=none", *TABLE_2), 58.1),
        (("pretrain.epochs=100", *TABLE_2), None),  # fewer epochs than the paper: no claim
        (("finetune.0.resolution=112", *TABLE_2), None),
        (("data.classes=[0,1]", *TABLE_2), None),  # a subset is not Flowers-102
    ],
)
def test_flowers_cells(overrides, expected):
    assert paper_number(facts("flowers.toml", *overrides)) == expected


def test_cpu_demo_has_no_paper_number():
    assert paper_number(facts("demo.toml")) is None


def test_transfer_cell_uses_the_source_runs_dataset_and_method():
    source = tomllib.loads(to_toml(resolve_recipe(RECIPES / "flowers.toml", ["model.backbone=pvt_v2_b0"])))
    target = facts("pets.toml", "model.backbone=pvt_v2_b0", "pretrain.method=none", *TABLE_2, source=source)
    assert paper_number(target) == 83.1  # Table 5: PVTv2-B0, IDMM on Flowers, fine-tuned on Pets
