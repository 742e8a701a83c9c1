"""Zoo building blocks without a network: export to timm's layout, model card, registry, catalogue, hub helpers."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import timm
import torch
import yaml
from safetensors.torch import load_file

from idmm_tui.engine.checkpoint import save_checkpoint
from idmm_tui.errors import RunStateError, UsageError
from idmm_tui.methods.base import TwoPart
from idmm_tui.methods.finetune import classifier_head
from idmm_tui.models.registry import create_backbone
from idmm_tui.recipe import DataConfig, FinetuneConfig, ModelConfig, PretrainConfig, Recipe, save_recipe
from idmm_tui.runs.store import create_run_dir
from idmm_tui.runs.summary import new_summary
from idmm_tui.stages import plan_stages
from idmm_tui.transfer import init_lineage
from idmm_tui.zoo import catalogue as cat
from idmm_tui.zoo import registry as reg
from idmm_tui.zoo.errors import HubUnreachableError
from idmm_tui.zoo.export import export_stage, model_card
from idmm_tui.zoo.hub import Hub, check_reachable, redact, resolve_endpoint

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["cat", "dog", "eel"]
RES = 8


def make_run(root: Path, *, finished: bool = True, init: str = "", name: str = "run1"):
    """A run directory with real checkpoints of random weights (vit_nano_p2 at 8 px): no training."""
    run = create_run_dir(root, name)
    recipe = Recipe(
        name="unit",
        init=init,
        data=DataConfig(root="/home/someone/secret-data"),
        model=ModelConfig(backbone="vit_nano_p2"),
        pretrain=PretrainConfig(epochs=1, resolution=RES),
        finetune=[FinetuneConfig(epochs=1, resolution=RES, eval_crop_pct=0.9)],
    )
    save_recipe(recipe, run.recipe)
    stages = plan_stages(recipe)
    summary = new_summary(run, recipe, "ab" * 32, stages, 1)
    torch.manual_seed(0)
    backbone = create_backbone("vit_nano_p2", img_size=RES, drop_path_rate=0.0)
    head = classifier_head(backbone.num_features, len(CLASSES))
    if finished:
        for stage in stages:
            tensors = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
            if stage.kind == "finetune":
                tensors.update({f"head.{k}": v for k, v in head.state_dict().items()})
            metrics = {"epoch": 1, "loss": 1.5} | ({"test_acc": 40.0} if stage.kind == "finetune" else {})
            save_checkpoint(
                run.checkpoint(stage.name),
                tensors,
                {
                    "stage": stage.name,
                    "kind": stage.kind,
                    "resolution": RES,
                    "backbone": "vit_nano_p2",
                    "num_classes": len(CLASSES) if stage.kind == "finetune" else 0,
                    "classes": CLASSES if stage.kind == "finetune" else [],
                    "metrics": metrics,
                },
            )
            summary["stages"][stage.name] = {
                "kind": stage.kind,
                "resolution": RES,
                "epochs": 1,
                "status": "completed",
                **metrics,
            }
        summary.update(status="completed", test_acc=40.0)
    run.write_summary(summary)
    return run, TwoPart(backbone, head).eval()


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


# ---------------------------------------------------------------------------------------------
# export


def test_finetuned_export_is_timm_layout_and_predicts_like_the_run(tmp_path):
    run, module = make_run(tmp_path / "runs")
    out = export_stage(run, tmp_path / "m", name="nano-unit")
    assert out.stage == "finetune_8" and out.kind == "finetuned"
    assert sorted(p.name for p in out.folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    state = load_file(out.folder / "model.safetensors")
    assert "head.weight" in state and not any(k.startswith("backbone.") for k in state)
    config = json.loads((out.folder / "config.json").read_text())
    assert config["architecture"] == "deit_tiny_patch16_224" and config["num_classes"] == 3
    assert config["label_names"] == CLASSES
    assert config["model_args"]["patch_size"] == 2 and config["model_args"]["num_classes"] == 3
    pcfg = config["pretrained_cfg"]
    assert pcfg["input_size"] == [3, RES, RES] and pcfg["crop_pct"] == 0.9 and pcfg["interpolation"] == "bilinear"
    assert pcfg["mean"] == [0.485, 0.456, 0.406] and pcfg["std"] == [0.229, 0.224, 0.225]
    idmm = config["idmm"]
    assert idmm["method"] == "idmm" and idmm["dataset"] == "embedded" and idmm["stage"] == "finetune_8"
    assert idmm["resolution"] == RES and idmm["metrics"] == {"loss": 1.5, "test_acc": 40.0}
    assert idmm["weights_sha256"] == out.sha256 and idmm["source_run"]["name"] == "run1"
    assert [s["name"] for s in idmm["stages"]] == ["pretrain", "finetune_8"]
    assert idmm["recipe"]["data"]["root"] == ""  # no local paths in published files
    assert "secret-data" not in (out.folder / "config.json").read_text() + (out.folder / "README.md").read_text()

    model = timm.create_model(f"local-dir:{out.folder}", pretrained=True).eval()
    x = torch.randn(2, 3, RES, RES, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), module(x), rtol=0, atol=0)
    assert model.pretrained_cfg["label_names"] == CLASSES


def test_backbone_exports_have_no_head(tmp_path):
    run, module = make_run(tmp_path / "runs")
    for stage, backbone_only in (("pretrain", False), ("finetune_8", True)):
        out = export_stage(run, tmp_path / stage, name="bb", stage=stage, backbone_only=backbone_only)
        assert out.kind == "backbone"
        assert not any(k.startswith("head.") for k in load_file(out.folder / "model.safetensors"))
        config = json.loads((out.folder / "config.json").read_text())
        assert config["num_classes"] == 0 and "label_names" not in config
        model = timm.create_model(f"local-dir:{out.folder}", pretrained=True).eval()
        x = torch.randn(1, 3, RES, RES)
        with torch.no_grad():
            torch.testing.assert_close(model(x), module.backbone(x), rtol=0, atol=0)


def test_model_card_front_matter_and_prose(tmp_path):
    run, _ = make_run(tmp_path / "runs")
    out = export_stage(run, tmp_path / "m", name="nano-unit", repo="org/nano-unit", license="apache-2.0")
    card = (out.folder / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "timm" and meta["license"] == "apache-2.0"
    assert "idmm" in meta["tags"] and meta["datasets"] == ["zalando-datasets/fashion_mnist"]
    assert meta["metrics"] == ["accuracy"]
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == 40.0
    assert 'timm.create_model("hf-hub:org/nano-unit", pretrained=True)' in card
    assert "## Recipe" in card and "## Lineage" in card and "random initialisation" in card
    backbone_card = model_card(dict(out.config, idmm=dict(out.config["idmm"], metrics={"loss": 2.0})))
    assert "model-index" not in front_matter(backbone_card)  # no accuracy measured -> none claimed


def test_card_and_config_name_the_parent(tmp_path, monkeypatch):
    monkeypatch.setenv("IDMM_ZOO_DIR", str(tmp_path / "zoo"))
    parent_run, _ = make_run(tmp_path / "runs", name="parent")
    with reg.staging() as tmp:
        export_stage(parent_run, tmp, name="parent-model")
        reg.write_source(tmp, {"origin": "pull", "repo": "org/parent-model", "commit": "c0ffee" * 6 + "beef"})
        reg.install(tmp, "parent-model", replace=False)
    child, _ = make_run(tmp_path / "runs", init="zoo:parent-model", name="child")
    out = export_stage(child, tmp_path / "child", name="child-model")
    parent = out.config["idmm"]["parent"]
    assert parent["init"] == "zoo:parent-model" and parent["zoo_name"] == "parent-model"
    assert parent["repo"] == "org/parent-model" and len(parent["sha256"]) == 64
    card = (out.folder / "README.md").read_text()
    assert front_matter(card)["base_model"] == "org/parent-model"
    assert "initialised from `zoo:parent-model`" in card and "org/parent-model" in card


def test_stage_selection_errors(tmp_path):
    run, _ = make_run(tmp_path / "runs", finished=False)
    with pytest.raises(RunStateError, match="no finished stage"):
        export_stage(run, tmp_path / "m", name="x")
    run2, _ = make_run(tmp_path / "runs", name="run2")
    with pytest.raises(UsageError, match="not a stage of this run"):
        export_stage(run2, tmp_path / "m", name="x", stage="finetune_999")
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------------------------------------
# registry


@pytest.mark.parametrize("bad", ["../x", "..", "/abs/path", "a/b", ".hidden", "", "x" * 200, "a\\b", "a b"])
def test_registry_names_cannot_escape(bad):
    with pytest.raises(UsageError, match="invalid zoo model name"):
        reg.check_name(bad)


def test_registry_install_is_atomic_and_refuses_overwrites(tmp_path):
    zoo = tmp_path / "zoo"
    with pytest.raises(RuntimeError), reg.staging(zoo) as tmp:
        (tmp / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("download died")
    assert list(zoo.iterdir()) == []  # nothing half-written left
    for content in (b"one", b"two"):
        with reg.staging(zoo) as tmp:
            (tmp / "model.safetensors").write_bytes(content)
            (tmp / "config.json").write_text("{}")
            if content == b"two":
                with pytest.raises(UsageError, match="already exists.*--force"):
                    reg.install(tmp, "m", replace=False, zoo_dir=zoo)
                reg.install(tmp, "m", replace=True, zoo_dir=zoo)
            else:
                reg.install(tmp, "m", replace=False, zoo_dir=zoo)
    assert (zoo / "m" / "model.safetensors").read_bytes() == b"two"
    assert [p.name for p in zoo.iterdir()] == ["m"] and [m.name for m in reg.list_local(zoo)] == ["m"]
    with pytest.raises(UsageError, match="idmm zoo pull other"):
        reg.local_model_dir("other", zoo)
    reg.remove("m", zoo)
    assert list(zoo.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# catalogue


def test_repo_catalogue_is_valid_and_claims_only_measured_metrics():
    entries = cat.load_catalogue(REPO / "zoo" / "catalogue.toml")
    assert "pvtv2-b0-flowers" in entries and "deit-tiny-flowers" in entries
    for entry in entries.values():
        if entry.status == "not-published":
            assert not entry.metrics and not entry.sha256
        else:
            assert len(entry.sha256) == 64 and entry.metrics and entry.source_run


def test_transfer_recipe_points_at_a_catalogued_model():
    from idmm_tui.recipe import load_recipe

    recipe = load_recipe(REPO / "recipes" / "transfer-demo.toml")
    assert recipe.init.startswith("zoo:") and recipe.pretrain.method == "none"
    entry = cat.load_catalogue(REPO / "zoo" / "catalogue.toml")[recipe.init.removeprefix("zoo:")]
    assert entry.backbone == recipe.model.backbone and entry.dataset == recipe.data.dataset


@pytest.mark.parametrize(
    "body, message",
    [
        (
            'repo="o/x"\nstatus="not-published"\nbackbone="b"\nmethod="idmm"\ndataset="d"\nstage="s"\nkind="backbone"\n'
            "resolution=1\nmetrics={test_acc=90.0}",
            "no measured metrics",
        ),
        (
            'repo="o/x"\nstatus="published"\nbackbone="b"\nmethod="idmm"\ndataset="d"\nstage="s"\nkind="backbone"\n'
            'resolution=1\nsha256="abc"',
            "sha256",
        ),
        (
            'repo="../x"\nstatus="not-published"\nbackbone="b"\nmethod="idmm"\ndataset="d"\nstage="s"\nkind="backbone"\n'
            "resolution=1",
            "ORG/NAME",
        ),
        ('repo="o/x"\ncolour="red"', "unknown key"),
    ],
)
def test_malformed_catalogue_entries_are_refused(tmp_path, body, message):
    path = tmp_path / "c.toml"
    path.write_text(f"[models.m]\n{body}\n")
    with pytest.raises(UsageError, match=message):
        cat.load_catalogue(path)


# ---------------------------------------------------------------------------------------------
# hub helpers and lineage


def test_hub_helpers_hide_tokens_and_fail_fast():
    assert "hf_abcdef" not in repr(Hub("http://h", "hf_abcdef"))
    assert redact("Bearer hf_abcdef failed", "hf_abcdef") == "Bearer *** failed"
    with pytest.raises(UsageError, match="invalid hub endpoint"):
        resolve_endpoint("ftp://x")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(HubUnreachableError, match="hub unreachable"):
        check_reachable(f"http://127.0.0.1:{port}")
    assert time.monotonic() - start < 3


def test_init_lineage_survives_a_missing_parent(tmp_path, monkeypatch):
    monkeypatch.setenv("IDMM_ZOO_DIR", str(tmp_path / "zoo"))
    assert init_lineage("") == {}
    assert init_lineage("zoo:gone") == {"init": "zoo:gone", "zoo_name": "gone"}
    assert init_lineage("/some/where/run-7") == {"init": "run-7"}


def test_model_card_parses_with_huggingface_hub_and_its_model_index_validates(tmp_path):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    run, _ = make_run(tmp_path / "runs")
    out = export_stage(run, tmp_path / "m", name="nano-unit", repo="org/nano-unit")
    card = ModelCard.load(out.folder / "README.md")  # huggingface_hub's own parser
    data = card.data
    assert data.library_name == "timm" and data.pipeline_tag == "image-classification"
    assert data.license == "mit" and data.datasets == ["zalando-datasets/fashion_mnist"]
    (result,) = data.eval_results
    assert result.task_type == "image-classification" and result.metric_type == "accuracy"
    assert result.metric_value == 40.0 and result.dataset_type == "zalando-datasets/fashion_mnist"
    name, results = model_index_to_eval_results(data.to_dict()["model-index"])  # round trip of the model-index
    assert name == "nano-unit" and results[0].metric_value == 40.0
    assert (
        "@inproceedings{cao2022training" in card.text
        and "Training Vision Transformers with Only 2040 Images" in card.text
    )
    backbone = export_stage(run, tmp_path / "b", name="nano-bb", stage="pretrain")
    bb = ModelCard.load(backbone.folder / "README.md").data
    assert bb.pipeline_tag == "image-feature-extraction" and bb.eval_results is None
