"""Report layout and statistics on synthetic run facts (no training)."""

from __future__ import annotations

import statistics

import pytest

from idmm_tui.experiments.report import RunFacts, Stat, build, records, to_csv, to_markdown
from idmm_tui.recipe import flatten


def fact(values: dict[str, str], acc: float | None, *, seed: int = 0, status: str = "completed", knn=None):
    return RunFacts(
        name=f"r{len(values)}{acc}{seed}",
        status=status,
        values=values,
        seed=seed,
        recipe={},
        metrics={"test_acc": acc, "knn_acc": knn, "linear_acc": None, "wall_time_s": 10.0},
    )


def test_flatten_tables_and_stage_arrays():
    flat = flatten({"a": {"b": 1}, "finetune": [{"epochs": 2}, {"epochs": 3}], "c": [1, 2]})
    assert flat == {"a.b": 1, "finetune.0.epochs": 2, "finetune.1.epochs": 3, "c": [1, 2]}


def test_stat_mean_and_sample_std():
    stat = Stat([50.0, 52.0, 57.0])
    assert stat.mean == pytest.approx(53.0) and stat.std == pytest.approx(statistics.stdev([50, 52, 57]))
    assert stat.text() == "53.00 ± 3.61 (n=3)"
    assert Stat([40.0]).text() == "40.00" and Stat([40.0]).std is None
    assert Stat([], pending=["running"]).text() == "running"


def test_one_key_gives_metric_columns_with_seeds_averaged():
    facts = [
        fact({"pretrain.method": "idmm"}, 60.0, seed=0, knn=50.0),
        fact({"pretrain.method": "idmm"}, 62.0, seed=1),
        fact({"pretrain.method": "none"}, 55.0),
        fact({"pretrain.method": "simclr"}, None, status="running"),
    ]
    report = build(facts)
    assert report.rows == ["idmm", "none", "simclr"] and report.col_keys == []
    assert report.cols == ["test_acc", "knn_acc", "wall_time_s"]  # no run had a linear probe
    assert report.cells[("idmm", "test_acc")].values == [60.0, 62.0]
    assert report.cells[("simclr", "test_acc")].pending == ["running"]
    assert "| method | test acc | kNN after | wall s |" in to_markdown(report)


def test_two_keys_give_a_method_by_dataset_matrix():
    facts = [
        fact({"data.dataset": d, "pretrain.method": m}, acc)
        for (d, m), acc in {
            ("pets", "idmm"): 70.0,
            ("pets", "none"): 40.0,
            ("dtd", "idmm"): 60.0,
            ("dtd", "none"): 30.0,
        }.items()
    ]
    report = build(facts)
    assert report.row_keys == ["pretrain.method"] and report.col_keys == ["data.dataset"]
    assert report.rows == ["idmm", "none"] and report.cols == ["pets", "dtd"]
    assert report.cells[("none", "dtd")].mean == 30.0
    rotated = build(facts, rows=["data.dataset"])
    assert rotated.rows == ["pets", "dtd"] and rotated.cols == ["idmm", "none"]
    flat = build(facts, layout="rows")
    assert flat.rows[0] == "dataset=pets, method=idmm" and flat.cols[0] == "test_acc"


def test_transfer_sources_become_rows_and_random_init_is_named():
    facts = []
    for src in ("a", "b", "none"):
        for target in ("a", "b"):
            values = {
                "source:data.classes": src,
                "source:pretrain.method": "none" if src == "none" else "idmm",
                "data.classes": target,
            }
            facts.append(fact(values, 50.0))
    report = build(facts)
    assert report.row_keys == ["source:data.classes", "source:pretrain.method"]
    assert report.col_keys == ["data.classes"]
    assert report.rows == ["classes=a, method=idmm", "classes=b, method=idmm", "none (random init)"]


def test_paper_numbers_ride_along_and_reach_csv():
    facts = [fact({"pretrain.method": "idmm"}, 70.0), fact({"pretrain.method": "none"}, 40.0)]
    report = build(facts, paper_lookup=lambda f: 79.9 if f.values["pretrain.method"] == "idmm" else None)
    assert report.paper == {("idmm", "test_acc"): 79.9}
    assert "[paper 79.9]" in to_markdown(report)
    row = next(r for r in records(report) if r["row"] == "idmm" and r["column"] == "test_acc")
    assert row["paper"] == 79.9 and row["mean"] == 70.0
    assert to_csv(report).splitlines()[1].startswith("idmm,test_acc,test_acc,70.0,,1,79.9")


def test_unknown_row_key_is_a_usage_error():
    from idmm_tui.errors import UsageError

    with pytest.raises(UsageError, match="not a varying key"):
        build([fact({"pretrain.method": "idmm"}, 1.0)], rows=["model.backbone"])


def test_a_finished_run_without_a_monitor_shows_a_dash_not_its_status():
    report = build(
        [fact({"pretrain.method": "idmm"}, 60.0, knn=None), fact({"pretrain.method": "dino"}, 61.0, knn=70.0)]
    )
    from idmm_tui.experiments.report import cell_text

    assert cell_text(report, "idmm", "knn_acc") == "–"
    assert cell_text(report, "dino", "knn_acc") == "70.00"


def test_a_method_key_left_unset_differs_from_the_same_method_setting_it():
    """head_weight_decay unset (None, absent from the TOML) vs 0.0 in two IDMM runs: a varying key; a
    SimCLR run lacks it because of its method, which is not a value of its own."""
    from idmm_tui.experiments.report import _values_of

    unset = {"pretrain.method": "idmm", "pretrain.cosine_head": True}
    zero = {"pretrain.method": "idmm", "pretrain.cosine_head": True, "pretrain.head_weight_decay": 0.0}
    simclr = {"pretrain.method": "simclr"}
    assert _values_of("pretrain.head_weight_decay", [unset, zero, simclr]) == {"null", "0.0"}
    assert _values_of("pretrain.head_weight_decay", [zero, simclr]) == {"0.0"}
