"""Run-directory bookkeeping and stage planning (no training)."""

from __future__ import annotations

import json

import pytest

from idmm_tui.engine.seeding import derive_seed
from idmm_tui.errors import RunStateError
from idmm_tui.recipe import FinetuneConfig, Recipe
from idmm_tui.runs.store import RunDir, create_run_dir, iter_metrics, list_runs, open_run_dir
from idmm_tui.stages import plan_stages


def test_plan_follows_the_recipe():
    recipe = Recipe(finetune=[FinetuneConfig(resolution=224), FinetuneConfig(resolution=448, epochs=100)])
    assert [(s.name, s.kind) for s in plan_stages(recipe)] == [
        ("pretrain", "pretrain"),
        ("finetune_224", "finetune"),
        ("finetune_448", "finetune"),
    ]
    none = recipe.model_copy(update={"pretrain": recipe.pretrain.model_copy(update={"method": "none"})})
    assert [s.name for s in plan_stages(none)] == ["finetune_224", "finetune_448"]
    assert [s.index for s in plan_stages(none)] == [0, 1]


def test_zero_epoch_stages_are_skipped_and_names_stay_unique():
    recipe = Recipe(finetune=[FinetuneConfig(resolution=32), FinetuneConfig(resolution=32), FinetuneConfig(epochs=0)])
    assert [s.name for s in plan_stages(recipe)] == ["pretrain", "finetune_32", "finetune_32_2"]


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "pretrain", 3) == derive_seed(0, "pretrain", 3)
    seeds = {derive_seed(s, stage, e) for s in (0, 1) for stage in ("a", "b") for e in range(5)}
    assert len(seeds) == 20
    assert 0 <= derive_seed(0, "x") < 2**63


def test_metrics_reader_skips_partial_and_malformed_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\nnot json\n[1, 2]\n\n{"step": 2}\n{"step": 3, "lo')
    assert [m["step"] for m in iter_metrics(path)] == [1, 2]
    assert list(iter_metrics(tmp_path / "missing.jsonl")) == []


def test_truncate_metrics_drops_what_a_resume_will_redo(tmp_path):
    run = RunDir(tmp_path)
    for stage_index, step in [(0, 2), (0, 4), (0, 6), (1, 2), (1, 4)]:
        run.append_metrics({"stage_index": stage_index, "step": step})
    assert run.truncate_metrics(0, 4) == 3
    assert [(m["stage_index"], m["step"]) for m in run.read_metrics()] == [(0, 2), (0, 4)]


def test_run_dirs_are_created_once_and_recognised(tmp_path):
    run = create_run_dir(tmp_path, "a")
    with pytest.raises(RunStateError):
        create_run_dir(tmp_path, "a")
    for bad in ("", "..", "x/y"):
        with pytest.raises(RunStateError):
            create_run_dir(tmp_path, bad)
    with pytest.raises(RunStateError):
        open_run_dir(run.path)  # no summary yet: not (yet) a run
    run.write_summary({"format": "idmm-run/1", "started_at": "1"})
    run.recipe.write_text("seed = 0\n")
    assert open_run_dir(run.path).name == "a"
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "summary.json").write_text(json.dumps({"format": "other"}))
    assert [r.name for r in list_runs(tmp_path)] == ["a"]


def test_weighted_knn_on_separable_features():
    import torch

    from idmm_tui.engine.knn import weighted_knn_accuracy

    torch.manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    labels = torch.arange(3).repeat_interleave(10)
    train = torch.nn.functional.normalize(centres[labels] + 0.05 * torch.randn(30, 8), dim=-1)
    test = torch.nn.functional.normalize(centres[labels] + 0.05 * torch.randn(30, 8), dim=-1)
    assert weighted_knn_accuracy(train, labels, test, labels, k=5) == 100.0
    shuffled = labels[torch.randperm(30)]
    assert weighted_knn_accuracy(train, shuffled, test, labels, k=5) < 80.0
