"""The evaluations end to end on run directories, as the command line runs them (no printing here).

* :func:`linear_eval` — linear probe of a finished stage, recorded in the run;
* :func:`tsne_view` — t-SNE map of a stage's features, drawn as PNG + series for the terminal;
* :func:`params_view` — parameters versus accuracy over runs (the paper's Fig. 3).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from idmm_tui import __version__
from idmm_tui.errors import RunStateError, UsageError
from idmm_tui.evaluation.features import Progress, load_stage, sample_indices, stage_features
from idmm_tui.evaluation.linear import EPOCHS, linear_probe
from idmm_tui.evaluation.neighbours import leave_one_out_knn_accuracy
from idmm_tui.evaluation.params import ParamsTable, params_points
from idmm_tui.evaluation.plots import Series, palette, scatter_png
from idmm_tui.evaluation.records import eval_dir, record_eval, require_not_running
from idmm_tui.evaluation.tsne import PERPLEXITY, tsne
from idmm_tui.runs.store import RunDir, now_iso

KNN_K = 10


def linear_eval(
    run: RunDir,
    *,
    stage: str | None = None,
    epochs: int = EPOCHS,
    device: str = "auto",
    on_progress: Progress | None = None,
) -> tuple[dict[str, Any], Path]:
    """Probe ``stage`` of ``run``; writes ``<run>/eval/linear-<stage>.json`` and ``summary["evals"]["linear"]``.

    Returns the record and the JSON's path. The probe is seeded with the run's seed.
    """
    require_not_running(run, "idmm eval linear")  # before any work, and again before writing
    start = time.monotonic()
    frozen = load_stage(run, stage, device)
    train = stage_features(frozen, "train", on_progress=on_progress)
    test = stage_features(frozen, "test", on_progress=on_progress)
    report = (lambda e, total, loss: on_progress("linear probe", e, total)) if on_progress else None
    probe = linear_probe(
        train.features,
        train.labels,
        test.features,
        test.labels,
        num_classes=len(train.classes),
        epochs=epochs,
        seed=frozen.recipe.seed,
        on_epoch=report,
    )
    record = {
        "stage": frozen.stage,
        "stage_kind": frozen.kind,
        "backbone": frozen.backbone_name,
        "resolution": frozen.resolution,
        "crop_pct": frozen.crop_pct,
        "feature_dim": frozen.feature_dim,
        "num_classes": len(train.classes),
        "train_size": int(train.labels.shape[0]),
        "test_size": int(test.labels.shape[0]),
        **probe.to_json(),
        "wall_time_s": round(time.monotonic() - start, 2),
        "weights_sha256": frozen.weights_sha256,
        "evaluated_at": now_iso(),
        "idmm_version": __version__,
    }
    return record, record_eval(run, "linear", frozen.stage, record)


@dataclass
class TsneView:
    """A t-SNE picture: what goes to ``--json``, the series to draw, and where the PNG went."""

    result: dict[str, Any]
    series: list[Series]
    title: str
    png: Path


def tsne_view(
    run: RunDir,
    *,
    stage: str | None = None,
    split: str = "test",
    out: Path | None = None,
    max_points: int = 2000,
    max_classes: int | None = None,
    perplexity: float = PERPLEXITY,
    seed: int = 0,
    device: str = "auto",
    on_progress: Progress | None = None,
) -> TsneView:
    """t-SNE of ``stage``'s features of ``split`` (at most ``max_points``, a seeded draw), coloured by class.

    The perplexity is lowered to (points - 1) / 3 when there are too few points for it. How clustered
    the map is: leave-one-out k-NN accuracy in the 2-D map and on the features it was made from (k = 10,
    or one less than the smallest class's number of points when that is smaller).
    """
    if split not in ("train", "test"):
        raise UsageError(f"--split must be 'train' or 'test', not {split!r}")
    start = time.monotonic()
    frozen = load_stage(run, stage, device)
    feats = stage_features(
        frozen,
        split,
        on_progress=on_progress,
        select=lambda labels: sample_indices(labels, max_points=max_points, max_classes=max_classes, seed=seed),
    )
    n = int(feats.labels.shape[0])
    if n < 4:
        raise UsageError(f"only {n} {split} images to map (t-SNE needs at least 4); raise --max-points or --classes")
    used = min(float(perplexity), (n - 1) / 3.0)
    tick = time.monotonic()
    report = (lambda i, total: on_progress("t-SNE", i, total)) if on_progress else None
    mapped = tsne(feats.features, perplexity=used, seed=seed, device=frozen.device, on_iter=report)
    tsne_s = time.monotonic() - tick
    colours = palette(len(feats.classes))
    series = []
    for c, name in enumerate(feats.classes):
        mask = feats.labels == c
        if bool(mask.any()):
            pts = mapped.embedding[mask]
            series.append(Series(name, pts[:, 0].tolist(), pts[:, 1].tolist(), colours[c]))
    # k below the smallest class's size: a class of 4 points can never win a 10-neighbour vote
    smallest = int(torch.unique(feats.labels, return_counts=True)[1].min())
    k = max(1, min(KNN_K, smallest - 1))
    title = f"{run.name} · {frozen.stage} · t-SNE of {n} {split} images"
    path = Path(out) if out else eval_dir(run) / f"tsne-{frozen.stage}-{split}.png"
    scatter_png(path, series, title=title, ticks=False, radius=3 if n > 500 else 5)
    result = {
        "run": run.name,
        "stage": frozen.stage,
        "split": split,
        "backbone": frozen.backbone_name,
        "resolution": frozen.resolution,
        "feature_dim": frozen.feature_dim,
        "points": n,
        "classes": len(series),
        "perplexity": round(used, 4),
        "iterations": mapped.iterations,
        "seed": seed,
        "kl": round(mapped.kl, 6),
        "knn_k": k,
        "knn_acc_2d": round(leave_one_out_knn_accuracy(mapped.embedding, feats.labels, k=k), 4),
        "knn_acc_features": round(leave_one_out_knn_accuracy(feats.features, feats.labels, k=k), 4),
        "tsne_wall_time_s": round(tsne_s, 2),
        "wall_time_s": round(time.monotonic() - start, 2),
        "png": str(path),
    }
    return TsneView(result, series, title, path)


@dataclass
class ParamsView:
    """The Fig. 3 points (``table``), one series per method to draw, and whether x is best on a log scale."""

    table: ParamsTable
    series: list[Series]
    title: str
    log_x: bool


def params_view(runs: list[RunDir], metric: str = "test_acc") -> ParamsView:
    """Parameters (M) versus ``metric``: one series per pretraining method, points labelled by backbone."""
    if not runs:
        raise UsageError("no runs to plot: the references name no run (a group whose runs have not started yet?)")
    table = params_points(runs, metric)
    if not table.points:
        why = "; ".join(f"{s['run']}: {s['reason']}" for s in table.skipped[:5])
        raise RunStateError(f"none of the {len(runs)} runs has a value for {metric!r} ({why})")
    methods = sorted({p.method for p in table.points})
    colours = dict(zip(methods, palette(len(methods)), strict=True))
    series = []
    for method in methods:
        pts = [p for p in table.points if p.method == method]
        name = "none (random init)" if method == "none" else method
        series.append(
            Series(
                name, [p.params / 1e6 for p in pts], [p.value for p in pts], colours[method], [p.backbone for p in pts]
            )
        )
    sizes = [p.params for p in table.points]
    log_x = max(sizes) / max(1, min(sizes)) > 10
    title = f"backbone parameters vs {metric} ({len(runs)} runs)"
    return ParamsView(table, series, title, log_x)
