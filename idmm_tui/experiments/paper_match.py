"""Which of the paper's numbers belongs beside a report cell (only when the setting truly matches).

A run matches a paper result when backbone, method, target dataset and pretraining source are the
same, it uses the whole dataset (no ``data.classes`` subset), and its pretraining epochs/resolution
and first fine-tuning stage's epochs/resolution equal the protocol of that paper table. Ablation
rows (Tables 8–9) match only a run whose recipe has every switch of the row.
"""

from __future__ import annotations

from typing import Any

from idmm_tui.experiments.report import RunFacts, flatten


def _protocol_ok(result: Any, flat: dict[str, Any], source_flat: dict[str, Any], method: str) -> bool:
    pre = source_flat or flat
    if method != "none":
        if result.pretrain_epochs and pre.get("pretrain.epochs") != result.pretrain_epochs:
            return False
        if result.pretrain_resolution and pre.get("pretrain.resolution") != result.pretrain_resolution:
            return False
    if result.finetune_epochs and flat.get("finetune.0.epochs") != result.finetune_epochs:
        return False
    return not (result.finetune_resolution and flat.get("finetune.0.resolution") != result.finetune_resolution)


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

    flat = flatten(facts.recipe)
    source_flat = flatten(facts.source_recipe) if facts.source_recipe else {}
    if flat.get("data.classes") or source_flat.get("data.classes"):
        return None
    transfer = bool(source_flat)
    method = str((source_flat or flat).get("pretrain.method", ""))
    dataset = flat.get("data.dataset")
    source = source_flat.get("data.dataset") if transfer else dataset
    for result in load_paper_results():
        if result.stage or result.metric != "top1":
            continue
        if (result.backbone, result.method, result.dataset) != (flat.get("model.backbone"), method, dataset):
            continue
        if (result.source or result.dataset) != source:
            continue
        if result.ablation and not _ablation_ok(result, flat | source_flat):
            continue
        if _protocol_ok(result, flat, source_flat, method):
            return float(result.top1)
    return None
