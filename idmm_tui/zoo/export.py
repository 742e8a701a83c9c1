"""Export one finished stage of a run as a model folder in timm's hub layout, with a model card.

The folder holds exactly what ``timm.create_model("local-dir:<folder>", pretrained=True)`` and
``timm.create_model("hf-hub:<repo>", pretrained=True)`` read, so the ecosystem loads it without idmm:

* ``model.safetensors`` — the stage's weights with timm's own keys (the run checkpoint's
  ``backbone.`` prefix removed; a fine-tuned stage keeps ``head.weight`` / ``head.bias``);
* ``config.json`` — written by timm's own ``save_config_for_hf`` (``architecture``, ``num_classes``,
  ``model_args``, ``pretrained_cfg`` with input size, mean/std, interpolation, crop_pct,
  ``label_names`` for a fine-tuned model) plus an ``idmm`` section: method, dataset, stage,
  resolution, the run's stages and measured metrics, the resolved recipe, the source run, the
  weights' sha256 and the parent model (lineage);
* ``README.md`` — a model card made with ``huggingface_hub.ModelCard`` / ``ModelCardData`` /
  ``EvalResult``: metadata (``library_name: timm``, ``pipeline_tag``, tags, datasets, licence, metrics,
  ``base_model``, a ``model-index`` result when a test accuracy was measured), then the recipe,
  results, lineage and the paper's citation in prose.

A pretraining stage exports a backbone (no head, ``num_classes = 0``); a fine-tuning stage exports
the classifier with its class names, or only its backbone with ``backbone_only=True``.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from idmm_tui import __version__
from idmm_tui.engine import checkpoint as ckpt
from idmm_tui.engine.augment import IMAGENET_MEAN, IMAGENET_STD
from idmm_tui.errors import RunStateError, UsageError
from idmm_tui.fsutil import atomic_write, atomic_write_text, sha256_file
from idmm_tui.models.registry import get_backbone_spec, timm_model_args
from idmm_tui.runs.store import RunDir, finished_stages
from idmm_tui.zoo.registry import CARD, CONFIG, WEIGHTS

FORMAT = "idmm-zoo/1"
#: The Hub dataset ids of datasets that have one (model cards link them); others keep idmm's name.
HUB_DATASETS = {"embedded": "zalando-datasets/fashion_mnist", "fashion_mnist": "zalando-datasets/fashion_mnist"}
#: Licence of weights trained on a dataset, when the dataset's own licence makes it clear.
DATASET_LICENSES = {"embedded": "mit", "fashion_mnist": "mit"}
_INTERPOLATION = "bilinear"  # the crops are resampled bilinearly (roi_align), see engine/views.py


@dataclass(frozen=True)
class Exported:
    """What :func:`export_stage` wrote."""

    folder: Path
    name: str
    stage: str
    kind: str  # "backbone" | "finetuned"
    sha256: str
    config: dict[str, Any]


def pick_stage(run: RunDir, summary: dict[str, Any], stage: str | None) -> str:
    """The stage to export: ``stage`` when finished, else the last finished one."""
    done = finished_stages(summary)
    if not done:
        raise RunStateError(
            f"run {run.path} has no finished stage to export (status {summary.get('status')!r}); "
            "finish or resume it first: idmm run --resume " + str(run.path)
        )
    if stage is None:
        return done[-1]
    if stage not in done:
        planned = [p.get("name") for p in summary.get("plan", [])]
        state = "is not finished" if stage in planned else "is not a stage of this run"
        raise UsageError(f"--stage {stage!r} {state}; finished stages: {', '.join(done)}")
    return stage


def timm_state_dict(tensors: dict[str, torch.Tensor], *, with_head: bool) -> dict[str, torch.Tensor]:
    """Run-checkpoint keys (``backbone.*``, ``head.*``) -> timm keys (backbone keys bare, ``head.*``)."""
    out = {k.removeprefix("backbone."): v for k, v in tensors.items() if k.startswith("backbone.")}
    if with_head:
        out.update({k: v for k, v in tensors.items() if k.startswith("head.")})
    return {k: v.detach().to("cpu").contiguous() for k, v in out.items()}


def _public_recipe(recipe: dict[str, Any]) -> dict[str, Any]:
    """The resolved recipe without this machine's paths (``data.root``; an ``init`` path keeps its name)."""
    out = json.loads(json.dumps(recipe))
    if out.get("data", {}).get("root"):
        out["data"]["root"] = ""
    init = out.get("init") or ""
    if init and not init.startswith("zoo:"):
        out["init"] = Path(init).name
    return out


def run_lineage(summary: dict[str, Any]) -> dict[str, Any]:
    """The parent of a run: ``summary["lineage"]`` when the run recorded it, else resolved from ``init`` now."""
    recorded = summary.get("lineage")
    if isinstance(recorded, dict) and recorded:
        return recorded
    init = summary.get("init") or ""
    if not init:
        return {}
    from idmm_tui.transfer import init_lineage

    return init_lineage(init)


def _model_config(
    backbone: str, resolution: int, num_classes: int, extra: dict[str, Any], crop_pct: float
) -> dict[str, Any]:
    """config.json as timm writes it for this architecture: timm's public ``save_for_hf`` on a model built on
    the meta device (no weights; the weights file it writes beside is thrown away, ours is model.safetensors)."""
    import timm
    from timm.models import save_for_hf

    spec = get_backbone_spec(backbone)
    args = timm_model_args(backbone, img_size=resolution)
    args["num_classes"] = num_classes
    overlay = dict(
        url="", hf_hub_id=None, tag=None, license=None, num_classes=num_classes, input_size=(3, resolution, resolution)
    )
    with torch.device("meta"):
        model = timm.create_model(spec.timm_arch, pretrained=False, pretrained_cfg_overlay=overlay, **args)
    data_config = {
        "input_size": (3, resolution, resolution),
        "interpolation": _INTERPOLATION,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "crop_pct": crop_pct,
        "crop_mode": "center",
    }
    holder: dict[str, Any] = {}

    import tempfile

    with tempfile.TemporaryDirectory() as tmp_dir:
        save_for_hf(model, tmp_dir, model_config=dict(extra), safe_serialization=False, data_config=data_config)
        holder["config"] = json.loads((Path(tmp_dir) / CONFIG).read_text(encoding="utf-8"))
    config = holder["config"]
    if not spec.family.takes_img_size:
        config["pretrained_cfg"].pop("pool_size", None)  # timm's 224-px value; PVTv2 takes any size
    return config


def export_stage(
    run: RunDir,
    dest: Path,
    *,
    name: str,
    stage: str | None = None,
    backbone_only: bool = False,
    repo: str | None = None,
    license: str | None = None,
) -> Exported:
    """Write ``dest/{model.safetensors, config.json, README.md}`` for one finished stage of ``run``."""
    summary = run.read_summary()
    stage = pick_stage(run, summary, stage)
    tensors, meta = ckpt.load_checkpoint(run.checkpoint(stage))  # sha256-verified
    kind_of_stage = meta.get("kind", "pretrain")
    with_head = kind_of_stage == "finetune" and not backbone_only and "head.weight" in tensors
    classes = list(meta.get("classes") or []) if with_head else []
    num_classes = int(tensors["head.weight"].shape[0]) if with_head else 0
    state = timm_state_dict(tensors, with_head=with_head)
    backbone = meta.get("backbone") or summary.get("backbone")
    resolution = int(meta.get("resolution"))
    try:
        recipe = tomllib.loads(run.recipe.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        recipe = {}
    crop_pct = 0.875
    ft_names = [p.get("name") for p in summary.get("plan", []) if p.get("kind") == "finetune"]
    ft_cfgs = [f for f in recipe.get("finetune", []) if f.get("epochs", 0) > 0]
    if stage in ft_names and ft_names.index(stage) < len(ft_cfgs):
        crop_pct = float(ft_cfgs[ft_names.index(stage)].get("eval_crop_pct", crop_pct))

    dest.mkdir(parents=True, exist_ok=True)
    weights = dest / WEIGHTS
    atomic_write(weights, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    sha = sha256_file(weights)

    stage_results = summary.get("stages") or {}
    plan = [
        dict(
            p,
            **{
                k: v for k, v in (stage_results.get(p.get("name")) or {}).items() if k in ("loss", "test_acc", "status")
            },
        )
        for p in summary.get("plan", [])
    ]
    metrics = {k: v for k, v in (meta.get("metrics") or {}).items() if k in ("loss", "test_acc")}
    kind = "finetuned" if with_head else "backbone"
    lineage = run_lineage(summary)
    idmm = {
        "format": FORMAT,
        "name": name,
        "kind": kind,
        "backbone": backbone,
        "method": summary.get("method"),
        "dataset": summary.get("dataset"),
        "stage": stage,
        "stage_kind": kind_of_stage,
        "resolution": resolution,
        "stages": plan,
        "metrics": metrics,
        "run_test_acc": summary.get("test_acc"),
        "classes": classes,
        "needs_idmm": get_backbone_spec(backbone).needs_idmm,
        "weights_sha256": sha,
        "parent": lineage or None,
        "source_run": {
            "name": run.name,
            "status": summary.get("status"),
            "started_at": summary.get("started_at"),
            "finished_at": summary.get("finished_at"),
            "seed": summary.get("seed"),
            "recipe_sha256": summary.get("recipe_sha256"),
            "idmm_version": summary.get("idmm_version"),
        },
        "exported_by": f"idmm {__version__}",
        "recipe": _public_recipe(recipe),
    }
    extra: dict[str, Any] = {"idmm": idmm}
    if classes:
        extra["label_names"] = classes
    config = _model_config(backbone, resolution, num_classes, extra, crop_pct)
    atomic_write_text(dest / CONFIG, json.dumps(config, indent=2) + "\n")
    atomic_write_text(dest / CARD, model_card(config, repo=repo, license=license))
    return Exported(dest, name, stage, kind, sha, config)


# ---------------------------------------------------------------------------------------------
# the model card


def _toml(data: dict[str, Any]) -> str:
    import tomli_w

    try:
        return tomli_w.dumps(data)
    except (TypeError, ValueError):
        return json.dumps(data, indent=2)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def _parent_line(parent: dict[str, Any]) -> str:
    ref = parent.get("init", "?")
    bits = []
    if parent.get("repo"):
        bits.append(
            f"Hub repo `{parent['repo']}`" + (f" at commit `{parent['commit'][:12]}`" if parent.get("commit") else "")
        )
    if parent.get("sha256"):
        bits.append(f"weights sha256 `{parent['sha256'][:16]}…`")
    desc = " ".join(str(parent[k]) for k in ("method", "backbone") if parent.get(k))
    if parent.get("dataset"):
        desc += f" on `{parent['dataset']}`"
    if parent.get("stage"):
        desc += f" (stage `{parent['stage']}`)"
    extra = f" — {'; '.join(bits)}" if bits else ""
    return f"initialised from `{ref}`{': ' + desc.strip() if desc.strip() else ''}{extra}."


#: The paper (model cards cite it).
CITATION = """@inproceedings{cao2022training,
  title     = {Training Vision Transformers with Only 2040 Images},
  author    = {Cao, Yun-Hao and Yu, Hao and Wu, Jianxin},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2022},
  eprint    = {2201.10728},
  archivePrefix = {arXiv}
}"""


def card_data(config: dict[str, Any], *, license: str | None = None) -> Any:
    """The card's metadata as ``huggingface_hub.ModelCardData``: library, pipeline, tags, dataset, licence,
    ``base_model`` (the parent's repo) and, when a test accuracy was measured, a model-index result."""
    from huggingface_hub import EvalResult, ModelCardData

    m = config.get("idmm", {})
    name, dataset = m.get("name", "model"), m.get("dataset") or "unknown"
    hub_dataset = HUB_DATASETS.get(dataset, dataset)
    test_acc = (m.get("metrics") or {}).get("test_acc")
    parent = m.get("parent") or {}
    finetuned = m.get("kind") == "finetuned"
    results = None
    if test_acc is not None:
        results = [
            EvalResult(
                task_type="image-classification",
                task_name="Image Classification",
                dataset_type=hub_dataset,
                dataset_name=dataset,
                metric_type="accuracy",
                metric_value=round(float(test_acc), 2),
                metric_name="top-1 test accuracy (%)",
            )
        ]
    return ModelCardData(
        model_name=name,
        library_name="timm",
        pipeline_tag="image-classification" if finetuned else "image-feature-extraction",
        license=license or DATASET_LICENSES.get(dataset, "other"),
        tags=[
            "image-classification" if finetuned else "image-feature-extraction",
            "timm",
            "idmm",
            "vision-transformer",
            "transfer-learning" if parent else "trained-from-scratch",
            "small-data",
        ],
        datasets=[hub_dataset],
        metrics=["accuracy"],
        base_model=parent.get("repo") or None,
        base_model_relation="finetune" if parent.get("repo") else None,
        eval_results=results,
    )


def model_card(config: dict[str, Any], *, repo: str | None = None, license: str | None = None) -> str:
    """README.md for a model folder: ``huggingface_hub.ModelCard`` (YAML metadata from :func:`card_data`)
    + prose: use, results, lineage, recipe, citation (never holds a token or a local path)."""
    from huggingface_hub import ModelCard

    m = config.get("idmm", {})
    name, dataset = m.get("name", "model"), m.get("dataset") or "unknown"
    parent = m.get("parent") or {}
    lines = ["---", card_data(config, license=license).to_yaml(), "---"]
    backbone = m.get("backbone")
    res = m.get("resolution")
    what = "a classifier fine-tuned" if m.get("kind") == "finetuned" else "a backbone (no classifier head) pretrained"
    method = m.get("method")
    method_text = {
        "idmm": "IDMM (instance discrimination + multi-crop + CutMix)",
        "none": "none, no pretraining stage",
    }.get(method, f"`{method}`")
    origin = (
        f"starting from `{parent.get('init')}` (see Lineage)"
        if parent
        else "trained from scratch (random initialisation)"
    )
    load_ref = f'"hf-hub:{repo}"' if repo else f'"local-dir:" + os.path.expanduser("~/.cache/idmm/zoo/{name}")'
    lines += [
        "",
        f"# {name}",
        "",
        f"`{backbone}` — {what} at {res} px on `{dataset}` with idmm, {origin}; pretraining method of "
        f"this run: {method_text}. Exported from stage `{m.get('stage')}` of run "
        f"`{(m.get('source_run') or {}).get('name')}`.",
        "",
        "## Use it",
        "",
        "```python",
        "import timm",
    ]
    if not repo:
        lines.insert(-1, "import os")
    if m.get("needs_idmm"):
        lines.append("import idmm_tui.models  # registers T2T-ViT with timm (pip install idmm)")
    lines += [
        f"model = timm.create_model({load_ref}, pretrained=True).eval()",
        "cfg = timm.data.resolve_data_config({}, model=model)  # input size, mean/std, crop_pct",
        "```",
        "",
        f'With idmm, start a transfer run from it with `init = "zoo:{name}"` in a recipe '
        f"(`idmm zoo pull {repo or name}` first).",
        "",
    ]
    if m.get("classes"):
        classes = ", ".join(f"`{c}`" for c in m["classes"][:20])
        more = f" … ({len(m['classes'])} in all)" if len(m["classes"]) > 20 else ""
        lines += [f"Classes (`label_names` in config.json): {classes}{more}.", ""]
    lines += [
        "## Results",
        "",
        "Measured at the end of each stage of the source run (nothing here is copied from the paper):",
        "",
        "| stage | kind | epochs | resolution | final loss | test top-1 (%) |",
        "|---|---|---|---|---|---|",
    ]
    for s in m.get("stages") or []:
        lines.append(
            f"| {s.get('name')} | {s.get('kind')} | {s.get('epochs')} | {s.get('resolution')} | "
            f"{_fmt(s.get('loss'))} | {_fmt(s.get('test_acc'))} |"
        )
    lines += ["", "## Lineage", ""]
    lines.append(
        f"This model was {_parent_line(parent)}" if parent else "Trained from random initialisation (no parent model)."
    )
    src = m.get("source_run") or {}
    lines += [
        "",
        f"Source run `{src.get('name')}` (seed {src.get('seed')}, recipe sha256 "
        f"`{str(src.get('recipe_sha256'))[:16]}…`, idmm {src.get('idmm_version')}); weights sha256 "
        f"`{m.get('weights_sha256')}`.",
        "",
        "## Recipe",
        "",
        "The resolved recipe of the source run (`idmm run` on this file reproduces it; local paths removed):",
        "",
        "```toml",
        _toml(m.get("recipe") or {}).rstrip(),
        "```",
        "",
        "## Citation",
        "",
        "The method (IDMM) is the paper's; idmm is an independent implementation:",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return str(ModelCard("\n".join(lines)))
