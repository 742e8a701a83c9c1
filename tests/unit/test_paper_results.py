"""The paper's numbers (``idmm_tui/experiments/paper_results.toml``): parse, names, spot values, keys."""

from __future__ import annotations

import tomllib
from collections import Counter

import pytest

from idmm_tui.data.registry import dataset_names
from idmm_tui.experiments.paper import (
    EXTRA_DATASETS,
    EXTRA_METHODS,
    EXTRA_SOURCES,
    PAPER_RESULTS_FILE,
    PaperResult,
    find,
    load_paper_results,
)
from idmm_tui.methods import method_names
from idmm_tui.models.registry import backbone_names

# --dist loadgroup: the module's fixtures are built once, so its tests stay on one xdist worker
pytestmark = pytest.mark.xdist_group("test_paper_results")

# numbers per table: 7 rows x 7 datasets; 5 backbones x 4 rows x 7; 2 x 2 x 2; (7 x 3 + 1) x 7;
# (4 + 4 + 2) x 7; 10 rows; 5 rows; 4 rows x 4 datasets
EXPECTED_COUNTS = {"2": 49, "3": 140, "4": 8, "5": 154, "6": 70, "7": 10, "8": 5, "9": 16}


@pytest.fixture(scope="module")
def results() -> list[PaperResult]:
    return load_paper_results()


def one(results, **kw) -> PaperResult:
    stage = kw.pop("stage", None)
    hits = [r for r in find(results, **kw) if stage is None or r.stage == stage]
    assert len(hits) == 1, (kw, hits)
    return hits[0]


def test_file_parses_and_counts(results):
    with PAPER_RESULTS_FILE.open("rb") as fh:
        raw = tomllib.load(fh)
    assert len(raw["result"]) == len(results) == sum(EXPECTED_COUNTS.values())
    assert Counter(r.table for r in results) == EXPECTED_COUNTS


def test_cached_but_fresh_list(results):
    again = load_paper_results()
    assert again == results and again is not results
    again.clear()
    assert len(load_paper_results()) == len(results)


def test_names_are_registered_or_documented_extras(results):
    backbones, datasets, methods = set(backbone_names()), set(dataset_names()), set(method_names())
    for r in results:
        assert r.backbone in backbones, r
        assert r.method in methods | EXTRA_METHODS, r
        assert r.dataset in datasets | EXTRA_DATASETS, r
        assert r.source in datasets | EXTRA_SOURCES, r
    used = {r.method for r in results} | {r.dataset for r in results} | {r.source for r in results}
    assert used >= EXTRA_METHODS | EXTRA_DATASETS | EXTRA_SOURCES  # no stale extras


def test_fields_are_consistent(results):
    for r in results:
        assert 0.0 < r.top1 < 100.0, r
        assert (r.metric == "top1_std") == (r.std is not None), r
        assert r.metric in ("top1", "top1_std"), r
        if r.method == "none":
            assert r.pretrain_epochs == 0 and r.source == r.dataset, r
        for key in r.ablation:
            assert key == "note" or key.startswith("pretrain."), r
        assert r.finetune_epochs is not None and r.finetune_resolution is not None, r


def test_keys_are_unique(results):
    dupes = [k for k, n in Counter(r.key for r in results).items() if n > 1]
    assert not dupes


def test_spot_values(results):
    deit, b0 = "deit_tiny_patch16_224", "pvt_v2_b0"
    # Table 2, DeiT-Tiny: IDMM flowers 79.9, MoCov3 CUB 20.5, random init. cars 12.3
    t2 = one(results, table="2", backbone=deit, method="idmm", dataset="flowers102")
    assert (t2.top1, t2.pretrain_epochs, t2.finetune_epochs, t2.pretrain_resolution) == (79.9, 800, 200, 112)
    assert one(results, table="2", backbone=deit, method="mocov3", dataset="cub200").top1 == 20.5
    assert one(results, table="2", backbone=deit, method="none", dataset="cars").top1 == 12.3
    # Table 3: DeiT-Tiny flowers 83.4 at 224, 85.6 after 448; PVTv2-B3 flowers 96.7; IN super. T2T cars 92.8
    assert one(results, table="3", backbone=deit, method="idmm", dataset="flowers102", stage="").top1 == 83.4
    t3 = one(results, table="3", backbone=deit, method="idmm", dataset="flowers102", stage="224->448")
    assert (t3.top1, t3.finetune_epochs, t3.finetune_resolution) == (85.6, 800, 448)
    assert (
        one(results, table="3", backbone="pvt_v2_b3", method="idmm", dataset="flowers102", stage="224->448").top1
        == 96.7
    )
    t3s = one(results, table="3", backbone="t2t_vit_7", method="supervised", dataset="cars", source="imagenet")
    assert (t3s.top1, t3s.finetune_epochs) == (92.8, 200)
    # Table 4: T2T-ViT-7 pets, fine-tuning stage: 70.3 ± 0.2
    t4 = one(results, table="4", backbone="t2t_vit_7", method="idmm", dataset="pets", stage="fine-tuning")
    assert (t4.metric, t4.top1, t4.std) == ("top1_std", 70.3, 0.2)
    # Table 5, PVTv2-B0: pretrained on Indoor67 -> Aircraft 79.7; SupCon cars -> cars 90.6; random init. CUB 55.2
    assert one(results, table="5", backbone=b0, method="idmm", dataset="aircraft", source="indoor67").top1 == 79.7
    assert one(results, table="5", backbone=b0, method="supcon", dataset="cars", source="cars").top1 == 90.6
    assert one(results, table="5", backbone=b0, method="none", dataset="cub200").top1 == 55.2
    # Table 6: SIN-10k -> flowers, PVTv2-B0 IDMM 93.8; T2T-ViT-7 supervised CUB 35.6
    assert one(results, table="6", backbone=b0, method="idmm", dataset="flowers102", source="sin10k").top1 == 93.8
    assert one(results, table="6", backbone="t2t_vit_7", method="supervised", dataset="cub200").top1 == 35.6
    # Table 7: ImageNet, PVTv2-B0 IDMM (SIN-10k) 300 epochs 70.9; SIN-total 10k 69.5
    t7 = one(results, table="7", backbone=b0, method="idmm", dataset="imagenet", source="sin10k", stage="300 epochs")
    assert (t7.top1, t7.finetune_epochs) == (70.9, 300)
    assert (
        one(results, table="7", backbone=b0, method="idmm", dataset="imagenet", source="imagenet_random10k").top1
        == 69.5
    )
    # Table 9: SimCLR without the projection MLP, cub 41.7
    assert (
        one(
            results,
            table="9",
            backbone=deit,
            method="simclr",
            dataset="cub200",
            ablation={"pretrain.projection_mlp": False},
        ).top1
        == 41.7
    )


def test_table8_ablation_rows(results):
    rows = find(results, table="8", backbone="deit_tiny_patch16_224", method="idmm", dataset="flowers102")
    assert [r.top1 for r in rows] == [69.6, 70.4, 73.1, 76.9, 79.9]
    # a run's settings as override text match the row with exactly those switches
    multi_crop_off = {
        "pretrain.label_smoothing": "0.1",
        "pretrain.resolution": "112",
        "pretrain.local_crops": "0",
        "pretrain.cutmix_alpha": "0",
    }
    assert (
        one(
            results, backbone="deit_tiny_patch16_224", method="idmm", dataset="flowers102", ablation=multi_crop_off
        ).top1
        == 73.1
    )
    # {} selects rows without switches (Table 2's IDMM, not Table 8's)
    plain = find(
        results, backbone="deit_tiny_patch16_224", method="idmm", dataset="flowers102", source="flowers102", ablation={}
    )
    assert {r.table for r in plain} == {"2", "3"}


def test_find_filters(results):
    everything = find(results, backbone="pvt_v2_b0", method="idmm", dataset="flowers102")
    assert {r.table for r in everything} == {"3", "4", "5", "6"}
    assert all(
        r.source == "pets"
        for r in find(results, backbone="pvt_v2_b0", method="idmm", dataset="flowers102", source="pets")
    )
    assert find(results, backbone="pvt_v2_b0", method="idmm", dataset="flowers102", table="5", source="flowers102")
    assert find(results, backbone="vit_nano_p2", method="idmm", dataset="flowers102") == []
