"""Recipes: validation, ``base`` inheritance, ``--set`` overrides, defaults and the TOML round trip."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from idmm_tui.errors import RecipeError, UsageError
from idmm_tui.launch import resolve_recipe
from idmm_tui.recipe import (
    FinetuneConfig,
    Recipe,
    apply_override,
    deep_merge,
    fill_defaults,
    load_raw,
    load_recipe,
    parse_override,
    parse_saved_recipe,
    to_toml,
    validate,
)

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "recipes").glob("*.toml"))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# defaults and validation


def test_defaults_validate():
    recipe = validate({}, "defaults")
    assert recipe == Recipe()
    assert recipe.data.dataset == "embedded"
    assert recipe.pretrain.method == "idmm"
    assert recipe.pretrain.lr is None and recipe.pretrain.warmup_epochs is None
    assert len(recipe.finetune) == 1 and recipe.finetune[0].epochs == 200
    assert recipe.pretrain.global_scale == (0.14, 1.0) and recipe.pretrain.local_scale == (0.05, 0.4)
    assert recipe.pretrain.label_smoothing == 0.1


def test_empty_file_loads_defaults(tmp_path):
    assert load_recipe(_write(tmp_path / "empty.toml", "")) == Recipe()


def test_unknown_key_names_key_file_and_suggestion(tmp_path):
    path = _write(tmp_path / "typo.toml", "[pretrain]\nepoch = 3\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert "pretrain.epoch" in msg
    assert str(path) in msg
    assert "unknown key" in msg
    assert "'epochs'" in msg  # did you mean
    assert isinstance(info.value, UsageError)


def test_unknown_key_in_a_stage_suggests(tmp_path):
    path = _write(tmp_path / "typo.toml", "[[finetune]]\nresolutoin = 32\n")
    with pytest.raises(RecipeError, match=r"finetune\.0\.resolutoin: unknown key.*'resolution'"):
        load_recipe(path)
    path = _write(tmp_path / "top.toml", "sed = 3\n")
    with pytest.raises(RecipeError, match=r"sed: unknown key.*'seed'"):
        load_recipe(path)


BAD_VALUES = [
    ('[pretrain]\nepochs = "ten"\n', "pretrain.epochs"),
    ("seed = -1\n", "seed"),
    ("[pretrain]\nlabel_smoothing = 1.5\n", "pretrain.label_smoothing"),
    ("[model]\ndrop_path = 1.0\n", "model.drop_path"),
    ('device = "tpu"\n', "device"),
    ("[[finetune]]\nepochs = 5\n[[finetune]]\nresolution = 4\n", "finetune.1.resolution"),
    ("[pretrain]\nglobal_scale = [0.5, 0.1]\n", "global_scale"),
    ("[pretrain]\nepochs = 2\nwarmup_epochs = 3\n", "warmup_epochs"),
]


@pytest.mark.parametrize("text, key", BAD_VALUES, ids=[key for _, key in BAD_VALUES])
def test_bad_values_name_the_key(tmp_path, text, key):
    path = _write(tmp_path / "bad.toml", text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert key in str(info.value)
    assert str(path) in str(info.value)


def test_unreadable_recipes(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "missing.toml")
    with pytest.raises(RecipeError, match="invalid TOML"):
        load_recipe(_write(tmp_path / "broken.toml", "seed = = 3\n"))


# --------------------------------------------------------------------------------------------
# inheritance


def test_base_inheritance_merges_tables_replaces_arrays(tmp_path, monkeypatch):
    _write(
        tmp_path / "base.toml",
        'name = "base"\nseed = 3\n[pretrain]\nepochs = 10\nlr = 0.01\n'
        "[[finetune]]\nepochs = 5\n[[finetune]]\nepochs = 6\nresolution = 64\n",
    )
    child = _write(
        tmp_path / "sub" / "child.toml",
        'base = "../base.toml"\nname = "child"\n[pretrain]\nepochs = 20\n[[finetune]]\nepochs = 7\n',
    )
    monkeypatch.chdir(tmp_path.parent)  # the base is found relative to the child, not the cwd
    recipe = load_recipe(child)
    assert recipe.name == "child"
    assert recipe.seed == 3  # inherited
    assert recipe.pretrain.epochs == 20  # overridden
    assert recipe.pretrain.lr == 0.01  # merged from the base's table
    assert [s.epochs for s in recipe.finetune] == [7]  # the array replaces the base's whole
    assert recipe.finetune[0].resolution == FinetuneConfig().resolution
    assert "base" not in load_raw(child)


def test_base_chain_and_relative_paths(tmp_path, monkeypatch):
    _write(tmp_path / "a" / "root.toml", "seed = 1\n[data]\nnum_workers = 0\n")
    _write(tmp_path / "a" / "b" / "mid.toml", 'base = "../root.toml"\nseed = 2\n[model]\ndrop_path = 0.2\n')
    leaf = _write(tmp_path / "c" / "leaf.toml", 'base = "../a/b/mid.toml"\n[model]\nbackbone = "vit_nano_p2"\n')
    monkeypatch.chdir(tmp_path / "a")
    recipe = load_recipe(leaf)
    assert recipe.seed == 2
    assert recipe.data.num_workers == 0
    assert recipe.model.drop_path == 0.2 and recipe.model.backbone == "vit_nano_p2"


def test_inheritance_cycle_is_an_error(tmp_path):
    _write(tmp_path / "a.toml", 'base = "b.toml"\nseed = 1\n')
    _write(tmp_path / "b.toml", 'base = "a.toml"\nseed = 2\n')
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "a.toml")
    _write(tmp_path / "self.toml", 'base = "self.toml"\n')
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "self.toml")


def test_bad_base_references(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(_write(tmp_path / "orphan.toml", 'base = "nowhere.toml"\n'))
    with pytest.raises(RecipeError, match="base"):
        load_recipe(_write(tmp_path / "numeric.toml", "base = 3\n"))


def test_deep_merge_does_not_alias():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": [{"k": 1}]}
    over = {"a": {"y": [3]}, "c": {"z": 1}}
    out = deep_merge(base, over)
    assert out == {"a": {"x": 1, "y": [3]}, "b": [{"k": 1}], "c": {"z": 1}}
    out["b"][0]["k"] = 99
    out["c"]["z"] = 5
    assert base["b"][0]["k"] == 1 and over["c"]["z"] == 1


# --------------------------------------------------------------------------------------------
# --set overrides


@pytest.mark.parametrize(
    "item, parts, value",
    [
        ("pretrain.epochs=10", ["pretrain", "epochs"], 10),
        ("pretrain.lr=1e-3", ["pretrain", "lr"], 1e-3),
        ("pretrain.lr = 0.5", ["pretrain", "lr"], 0.5),
        ("data.download=true", ["data", "download"], True),
        ("data.dataset=flowers102", ["data", "dataset"], "flowers102"),
        ('data.dataset="flowers102"', ["data", "dataset"], "flowers102"),
        ("data.root=/data/my flowers", ["data", "root"], "/data/my flowers"),
        ("name=a=b", ["name"], "a=b"),
        ("pretrain.global_scale=[0.1, 1.0]", ["pretrain", "global_scale"], [0.1, 1.0]),
        ("finetune.0.epochs=3", ["finetune", "0", "epochs"], 3),
    ],
)
def test_parse_override(item, parts, value):
    got_parts, got_value = parse_override(item)
    assert got_parts == parts
    assert got_value == value
    assert type(got_value) is type(value)


@pytest.mark.parametrize("item", ["nokey", "=3", " =3"])
def test_parse_override_needs_key_and_value(item):
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        parse_override(item)


def test_apply_override_tables_and_arrays():
    raw = {"pretrain": {"epochs": 5}, "finetune": [{"epochs": 1}]}
    apply_override(raw, ["pretrain", "lr"], 0.1, shown="x")
    apply_override(raw, ["model", "backbone"], "vit_nano_p2", shown="x")  # a new table
    apply_override(raw, ["finetune", "0", "epochs"], 3, shown="x")
    apply_override(raw, ["finetune", "1", "epochs"], 4, shown="x")  # index len(array): a new stage
    assert raw == {
        "pretrain": {"epochs": 5, "lr": 0.1},
        "model": {"backbone": "vit_nano_p2"},
        "finetune": [{"epochs": 3}, {"epochs": 4}],
    }
    with pytest.raises(RecipeError, match="out of range"):
        apply_override(raw, ["finetune", "5", "epochs"], 1, shown="finetune.5.epochs=1")
    with pytest.raises(RecipeError, match="use a number"):
        apply_override(raw, ["finetune", "last", "epochs"], 1, shown="finetune.last.epochs=1")
    with pytest.raises(RecipeError, match="not a table or array"):
        apply_override(raw, ["pretrain", "epochs", "x"], 1, shown="pretrain.epochs.x=1")


def test_load_recipe_with_overrides(tmp_path):
    path = _write(tmp_path / "r.toml", "seed = 1\n[pretrain]\nepochs = 40\n[[finetune]]\nepochs = 20\n")
    recipe = load_recipe(
        path,
        [
            "seed=7",
            "pretrain.epochs=10",
            "pretrain.lr=2e-4",
            "pretrain.global_scale=[0.2, 1.0]",
            "data.download=true",
            "data.dataset=flowers102",
            "model.backbone=vit_nano_p2",
            "finetune.0.epochs=3",
            "finetune.1.epochs=2",
            "finetune.1.resolution=48",
        ],
    )
    assert recipe.seed == 7
    assert recipe.pretrain.epochs == 10 and recipe.pretrain.lr == 2e-4
    assert recipe.pretrain.global_scale == (0.2, 1.0)
    assert recipe.data.download is True and recipe.data.dataset == "flowers102"
    assert recipe.model.backbone == "vit_nano_p2"
    assert [(s.epochs, s.resolution) for s in recipe.finetune] == [(3, 224), (2, 48)]
    # a new stage gets the defaults for everything else
    assert recipe.finetune[1].mixup_alpha == FinetuneConfig().mixup_alpha


def test_override_into_default_finetune(tmp_path):
    # the file has no [[finetune]]: index 0 starts the array
    recipe = load_recipe(_write(tmp_path / "r.toml", ""), ["finetune.0.epochs=3"])
    assert [s.epochs for s in recipe.finetune] == [3]


def test_override_errors(tmp_path):
    path = _write(tmp_path / "r.toml", "[[finetune]]\nepochs = 2\n")
    with pytest.raises(RecipeError, match="out of range"):
        load_recipe(path, ["finetune.2.epochs=1"])
    with pytest.raises(RecipeError) as info:
        load_recipe(path, ["pretrain.epoch=3"])
    msg = str(info.value)
    assert "pretrain.epoch" in msg and "'epochs'" in msg and str(path) in msg and "--set" in msg
    with pytest.raises(RecipeError, match="pretrain.epochs"):
        load_recipe(path, ["pretrain.epochs=abc"])
    with pytest.raises(RecipeError, match="seed"):
        load_recipe(path, ["seed=-1"])
    with pytest.raises(RecipeError, match=r"finetune\.0\.label_smoothing"):
        load_recipe(path, ["finetune.0.label_smoothing=2.0"])


# --------------------------------------------------------------------------------------------
# defaults from the backbone, TOML round trip


def test_fill_defaults_only_fills_unset_and_clips_warmup():
    recipe = validate(
        {
            "pretrain": {"epochs": 40, "lr": 1e-3},
            "finetune": [{"epochs": 20, "warmup_epochs": 1.0}, {"epochs": 3}, {"epochs": 0}],
        },
        "t",
    )
    out = fill_defaults(recipe, lr=5e-4, warmup_epochs=10)
    assert out.pretrain.lr == 1e-3  # set: kept
    assert out.pretrain.warmup_epochs == 10.0  # unset: filled
    assert out.finetune[0].lr == 5e-4 and out.finetune[0].warmup_epochs == 1.0
    assert out.finetune[1].warmup_epochs == 3.0  # clipped to the stage's 3 epochs
    assert out.finetune[2].warmup_epochs == 0.0
    # the input is untouched
    assert recipe.pretrain.warmup_epochs is None and recipe.finetune[1].lr is None


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"name": "x", "seed": 5, "pretrain": {"epochs": 3, "lr": 1e-3, "global_scale": [0.2, 0.9]}},
        {"finetune": [{"epochs": 2, "resolution": 32, "warmup_epochs": 0.5}, {"epochs": 1, "lr": 5e-5}]},
        {"finetune": [], "data": {"root": "/tmp/x y", "cache": "no"}, "amp": "off"},
    ],
)
def test_to_toml_round_trip(raw):
    recipe = validate(raw, "t")
    for r in (recipe, fill_defaults(recipe, 5e-4, 2.0)):
        text = to_toml(r)
        back = validate(tomllib.loads(text), "round-trip")
        assert back == r
        assert to_toml(back) == text


# --------------------------------------------------------------------------------------------
# shipped recipes


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipes_resolve(path):
    recipe = resolve_recipe(path)
    assert recipe.pretrain.lr is not None and recipe.pretrain.warmup_epochs is not None
    assert all(s.lr is not None and s.warmup_epochs is not None for s in recipe.finetune)
    # resolving is idempotent through the saved TOML
    assert validate(tomllib.loads(to_toml(recipe)), str(path)) == recipe


def test_recipes_exist():
    assert RECIPES, "no recipes/*.toml found"


def test_resolve_recipe_rejects_unknown_names(tmp_path):
    path = _write(tmp_path / "r.toml", "")
    with pytest.raises(UsageError, match="vit_micro_p4"):
        resolve_recipe(path, ["model.backbone=vit_micro_p5"])
    with pytest.raises(UsageError):
        resolve_recipe(path, ["data.dataset=no_such_dataset"])
    with pytest.raises(UsageError):
        resolve_recipe(path, ["pretrain.method=no_such_method"])


# --- per-method settings ([pretrain] is validated by the chosen method's model) ----------------


def test_method_tables_fill_in_what_pretrain_leaves_unset():
    raw = {
        "pretrain": {
            "method": "dino",
            "momentum": 0.5,
            "dino": {"dino_out": 64, "momentum": 0.9},
            "mocov2": {"queue_size": 32},
        }
    }
    cfg = validate(raw, "t").pretrain
    assert type(cfg).__name__ == "DINOConfig"
    assert (cfg.dino_out, cfg.momentum) == (64, 0.5)  # [pretrain] wins over [pretrain.dino]
    assert not hasattr(cfg, "queue_size")  # another method's table does not apply


def test_a_table_of_a_method_not_chosen_is_still_checked():
    with pytest.raises(RecipeError, match=r"pretrain\.dino\.dino_outt: unknown key \(did you mean 'dino_out'"):
        validate({"pretrain": {"method": "idmm", "dino": {"dino_outt": 3}}}, "t")
    with pytest.raises(RecipeError, match=r"pretrain\.mocov2\.queue_size"):
        validate({"pretrain": {"mocov2": {"queue_size": -1}}}, "t")


def test_random_init_accepts_any_methods_keys_but_not_typos():
    assert (
        validate({"pretrain": {"method": "none", "label_smoothing": 0.1, "dino_out": 8}}, "t").pretrain.method == "none"
    )
    with pytest.raises(RecipeError, match="pretrain.labl_smoothing: unknown key"):
        validate({"pretrain": {"method": "none", "labl_smoothing": 0.1}}, "t")


def test_saved_recipe_keeps_the_methods_own_keys_in_its_table_and_can_switch_method():
    recipe = validate({"pretrain": {"method": "idmm", "cutmix_alpha": 0.0, "epochs": 3}}, "t")
    text = to_toml(recipe)
    saved = tomllib.loads(text)
    assert saved["pretrain"]["idmm"]["cutmix_alpha"] == 0.0 and "cutmix_alpha" not in saved["pretrain"]
    assert validate(tomllib.loads(text), "round-trip") == recipe
    saved["pretrain"]["method"] = "simclr"  # e.g. `idmm run RUN/recipe.toml --set pretrain.method=simclr`
    assert validate(saved, "switched").pretrain.epochs == 3


def test_recipes_saved_by_0_1_still_parse():
    """0.1 wrote every method's keys into one flat [pretrain] table; the run's own method kept its values."""
    old = (
        '[pretrain]\nmethod = "simclr"\nepochs = 3\nlabel_smoothing = 0.1\ncutmix_alpha = 0.5\nhead_bias = true\n'
        'proj_dim = 16\nqueue_size = 2048\nmomentum = 0.99\ndino_out = 65536\noptimizer = "sgd"\n'
    )
    recipe = parse_saved_recipe(old, "old")
    assert (recipe.pretrain.method, recipe.pretrain.proj_dim, recipe.pretrain.epochs) == ("simclr", 16, 3)
    with pytest.raises(RecipeError, match="queue_size"):  # the same text is no longer a valid *new* recipe
        validate(tomllib.loads(old), "new")
