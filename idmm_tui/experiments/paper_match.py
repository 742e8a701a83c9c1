"""Which of the paper's numbers belongs beside a report cell (only when the setting truly matches).

A run matches a paper result when backbone, method, target dataset and pretraining source are the
same, it uses the whole dataset (no ``data.classes`` subset), and its pretraining epochs/resolution
and fine-tuning stages equal the protocol of that paper table (one stage at 224, or Table 3's
224 then 448). Ablation
rows (Tables 8–9) match only a run whose recipe has every switch of the row.
"""

from __future__ import annotations

from typing import Any

from idmm_tui.experiments.report import RunFacts
from idmm_tui.recipe import recipe_keys


def _finetune_stages(flat: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(epochs, resolution) of each fine-tuning stage that runs."""
    out, i = [], 0
    while f"finetune.{i}.epochs" in flat:
        if flat[f"finetune.{i}.epochs"]:
            out.append((flat[f"finetune.{i}.epochs"], flat.get(f"finetune.{i}.resolution")))
        i += 1
    return out


def _protocol_ok(result: Any, flat: dict[str, Any], source_flat: dict[str, Any], method: str) -> bool:
    """Pretraining epochs/resolution and the fine-tuning stages equal the table's protocol.

    A plain row is one fine-tuning stage (epochs, resolution); a ``224->448`` row (Table 3) is a
    stage at 224 of ``finetune_epochs`` followed by one at 448.
    """
    pre = source_flat or flat
    if method != "none":
        if result.pretrain_epochs and pre.get("pretrain.epochs") != result.pretrain_epochs:
            return False
        if result.pretrain_resolution and pre.get("pretrain.resolution") != result.pretrain_resolution:
            return False
    stages = _finetune_stages(flat)
    if result.stage == "224->448":
        return len(stages) == 2 and stages[0] == (result.finetune_epochs, 224) and stages[1][1] == 448
    if len(stages) != 1:
        return False
    epochs, resolution = stages[0]
    if result.finetune_epochs and epochs != result.finetune_epochs:
        return False
    return not (result.finetune_resolution and resolution != result.finetune_resolution)


def _ablation_ok(result: Any, flat: dict[str, Any]) -> bool:
    for key, value in (result.ablation or {}).items():
        if key == "note" or "." not in key:
            return False  # a switch we have no recipe key for: never claim a match
        if flat.get(key) != value:
            return False
    return True


def paper_number(facts: RunFacts) -> float | None:
    """The paper's top-1 for the setting of this run, or None when no table has exactly it."""
    from idmm_tui.experiments.paper import load_paper_results

    flat = recipe_keys(facts.recipe)
    source_flat = recipe_keys(facts.source_recipe) if facts.source_recipe else {}
    if flat.get("data.classes") or source_flat.get("data.classes"):
        return None
    transfer = bool(source_flat)
    method = str((source_flat or flat).get("pretrain.method", ""))
    dataset = flat.get("data.dataset")
    source = source_flat.get("data.dataset") if transfer else dataset
    for result in load_paper_results():
        if result.stage not in ("", "224->448") or result.metric != "top1":
            continue  # Table 4's per-stage spreads and Table 7's epoch variants are not run settings
        if (result.backbone, result.method, result.dataset) != (flat.get("model.backbone"), method, dataset):
            continue
        if (result.source or result.dataset) != source:
            continue
        if result.ablation and not _ablation_ok(result, flat | source_flat):
            continue
        if _protocol_ok(result, flat, source_flat, method):
            return float(result.top1)
    return None
