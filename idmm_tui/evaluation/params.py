"""Parameters versus accuracy over a group of runs: the data of the paper's Fig. 3.

A backbone's size is counted on a model built on the meta device (shapes only, no memory, no init
cost) at the backbone's default resolution — the classifier head excluded, as in ``idmm models``;
counts are cached per backbone name. Each run gives one number (``metric``): one of the metrics of
``idmm report`` (``test_acc``, ``knn_acc``, ``linear_acc``, ``wall_time_s``, read the way the report
reads them), or any key of its summary.json, dotted for nested ones (``stages.pretrain.knn_acc``,
``evals.linear.finetune_224.test_acc``). Runs sharing backbone and pretraining method
(``summary["method"]``) are averaged into one point: mean ± sample std over them (seeds), as the
report does.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from idmm_tui.errors import IdmmError
from idmm_tui.experiments.report import METRICS, Stat, run_facts
from idmm_tui.models.registry import count_params, create_backbone, get_backbone_spec
from idmm_tui.runs.store import RunDir, summary_or_problem


@functools.cache
def backbone_params(name: str) -> int:
    """Parameters of backbone ``name`` (no head) at its default resolution, counted on the meta device."""
    spec = get_backbone_spec(name)
    with torch.device("meta"):
        model = create_backbone(name, img_size=spec.default_resolution, drop_path_rate=0.0)
    return count_params(model)


def metric_value(run: RunDir, summary: dict[str, Any], metric: str) -> float | None:
    """The run's ``metric`` (see the module docstring) as a float, or None when absent or not a number."""
    value: Any = summary
    if metric in METRICS:
        value = run_facts(run).metrics.get(metric)
    else:
        for part in metric.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass
class ParamPoint:
    """One (backbone, method) point: its size and the mean accuracy over its runs."""

    backbone: str
    method: str
    params: int
    value: float
    std: float | None  # None for a single run
    n: int
    runs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ParamsTable:
    """The points, and the runs left out with the reason."""

    metric: str
    points: list[ParamPoint]
    skipped: list[dict[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "points": [p.to_json() for p in self.points], "skipped": self.skipped}


def params_points(runs: list[RunDir], metric: str = "test_acc") -> ParamsTable:
    """Group ``runs`` by (backbone, method), average ``metric`` over each group; sorted by size, then method."""
    groups: dict[tuple[str, str], list[tuple[str, float]]] = {}
    skipped: list[dict[str, str]] = []
    for run in runs:
        summary, problem = summary_or_problem(run)
        backbone, method = summary.get("backbone"), str(summary.get("method") or "?")
        value = metric_value(run, summary, metric) if problem is None else None
        if problem is not None:
            skipped.append({"run": run.name, "reason": f"summary.json unreadable: {problem}"})
        elif not backbone:
            skipped.append({"run": run.name, "reason": "summary names no backbone"})
        elif value is None:
            skipped.append({"run": run.name, "reason": f"no {metric} (status {summary.get('status')})"})
        else:
            groups.setdefault((str(backbone), method), []).append((run.name, value))
    points = []
    for (backbone, method), members in groups.items():
        try:
            params = backbone_params(backbone)
        except IdmmError as exc:  # a backbone this version does not know: those runs only are left out
            skipped += [{"run": name, "reason": str(exc)} for name, _ in members]
            continue
        stat = Stat([v for _, v in members])
        points.append(
            ParamPoint(
                backbone,
                method,
                params,
                float(stat.mean),
                stat.std,
                stat.n,
                [name for name, _ in members],
            )
        )
    points.sort(key=lambda p: (p.params, p.method))
    return ParamsTable(metric, points, skipped)
