"""``idmm eval …`` and ``idmm viz …``: evaluations and pictures of finished runs (a thin Typer face over
:mod:`idmm_tui.evaluation`)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from idmm_tui.cli_common import RunsDirOpt, err, out_file
from idmm_tui.cli_common import runs_dir as _runs_dir
from idmm_tui.errors import UsageError
from idmm_tui.textsafe import safe_markup

eval_app = typer.Typer(
    help="Measure finished runs on frozen features (results go to <run>/eval/ and summary.json).",
    no_args_is_help=True,
)
viz_app = typer.Typer(
    help="Pictures of runs: t-SNE of a stage's features, backbone parameters vs accuracy (PNG + terminal).",
    no_args_is_help=True,
)

RunArg = Annotated[str, typer.Argument(help="run name (under --runs-dir) or path", show_default=False)]
StageOpt = Annotated[
    str | None,
    typer.Option(
        "--stage",
        help="finished stage whose weights to use, e.g. pretrain, finetune_224 "
        "\\[default: pretrain when the run has it, else its last finished stage]",
        show_default=False,
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print only the result JSON on stdout")]
NoTerminalOpt = Annotated[bool, typer.Option("--no-terminal", help="no braille plot in the terminal")]


def _device(value: str) -> str:
    if value not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda, not {value!r}")
    return value


def _open_run(ref: str, runs_dir: Path | None):
    from idmm_tui.runs.store import resolve_run

    return resolve_run(ref, _runs_dir(runs_dir))


class _Steps:
    """A rich progress bar per step ("decoding train", "features test", "t-SNE"…) on a terminal; silent otherwise."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
            disable=not err.is_terminal,
            transient=True,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Steps:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, what: str, done: int, total: int) -> None:
        if what not in self.tasks:
            self.tasks[what] = self.progress.add_task(what, total=total)
        self.progress.update(self.tasks[what], completed=done, total=total)


def _terminal_plot(series, *, title: str, stream: TextIO, **kwargs: Any) -> None:
    from idmm_tui.evaluation.plots import scatter_text

    size = shutil.get_terminal_size((100, 32))
    width, height = max(40, min(size.columns, 140)), max(15, min(size.lines - 6, 40))
    stream.write(scatter_text(series, title=title, width=width, height=height, color=stream.isatty(), **kwargs))
    stream.flush()


def _finish(as_json: bool, data: dict[str, Any], line: str, written: str) -> None:
    """``--json``: the data alone on stdout; else the result line on stdout and what was written on stderr."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    Console().print(line, highlight=False, soft_wrap=True)
    err.print(f"written: {written}", highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# idmm eval linear


@eval_app.command("linear")
def eval_linear(
    run: RunArg,
    stage: StageOpt = None,
    epochs: Annotated[
        int, typer.Option("--epochs", min=1, max=100_000, help="passes of the probe over the training features")
    ] = 100,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Linear probe: a linear classifier trained on the frozen features of a finished stage.

    Features: L2-normalised pooled features of the train and test images at the stage's resolution, no augmentation.
    The view is the evaluation's centre crop.
    Probe: standardised features, one linear layer, seeded mini-batch AdamW (batch 256, lr 0.1, cosine, wd 1e-4).
    Prints test top-1 and records it in <run>/eval/linear-<stage>.json and summary.json (evals.linear.<stage>).
    Refuses a run that is still training.

    Examples:

      idmm eval linear demo-idmm                       (the pretraining stage)

      idmm eval linear demo-idmm --stage finetune_28 --epochs 200

      idmm eval linear runs/demo-random-init --json
    """
    from idmm_tui.evaluation.jobs import linear_eval

    rd = _open_run(run, runs_dir)
    with _Steps() as steps:
        record, path = linear_eval(rd, stage=stage, epochs=epochs, device=_device(device), on_progress=steps)
    line = (
        f"linear probe of {rd.name} stage {record['stage']} ({record['resolution']} px, {record['feature_dim']}-d "
        f"features, {record['train_size']} train / {record['test_size']} test images, {record['epochs']} epochs): "
        f"test top-1 [bold]{record['test_acc']:.2f} %[/] (train {record['train_acc']:.2f} %), "
        f"{record['wall_time_s']} s"
    )
    _finish(as_json, record, line, f"{path} and evals.linear.{record['stage']} in {rd.summary}")


# ---------------------------------------------------------------------------------------------
# idmm viz tsne


@viz_app.command("tsne")
def viz_tsne(
    run: RunArg,
    stage: StageOpt = None,
    split: Annotated[str, typer.Option("--split", help="test or train images")] = "test",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="PNG to write (.pdf/.svg: a vector figure, needs idmm[plots]) "
            "\\[default: <run>/eval/tsne-<stage>-<split>.png]",
            show_default=False,
        ),
    ] = None,
    max_points: Annotated[
        int,
        typer.Option("--max-points", min=4, help="map at most this many images (a seeded draw)"),
    ] = 2000,
    classes: Annotated[
        int | None,
        typer.Option("--classes", min=1, help="only the first N classes (the paper shows 10)", show_default=False),
    ] = None,
    perplexity: Annotated[
        float,
        typer.Option(
            "--perplexity", min=1.0, help="effective number of neighbours (lowered to (N-1)/3 for few points)"
        ),
    ] = 30.0,
    seed: Annotated[int, typer.Option("--seed", help="draws the points and the initial map")] = 0,
    no_terminal: NoTerminalOpt = False,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    runs_dir: RunsDirOpt = None,
) -> None:
    """t-SNE map of a finished stage's frozen features, coloured by class (the paper's Fig. 2).

    PCA to 50 dims, then openTSNE (perplexity-calibrated neighbour affinities, PCA initialisation, early
    exaggeration, FFT-accelerated gradients; about 15 s for 2,000 images on one CPU core).
    Writes a PNG, prints a braille plot (unless --no-terminal) and how clustered the classes are:
    leave-one-out 10-NN accuracy in the 2-D map (knn_acc_2d) and on the features themselves (knn_acc_features);
    k is lowered below the smallest class's number of points.

    Examples:

      idmm viz tsne demo-idmm                                   (pretraining features of the test images)

      idmm viz tsne demo-idmm --stage finetune_28 --classes 10 --out fig2-idmm-ft.png

      idmm viz tsne demo-random-init --no-terminal --json | jq .knn_acc_2d
    """
    from idmm_tui.evaluation.jobs import tsne_view

    out = out_file(out)
    rd = _open_run(run, runs_dir)
    with _Steps() as steps:
        view = tsne_view(
            rd,
            stage=stage,
            split=split,
            out=out,
            max_points=max_points,
            max_classes=classes,
            perplexity=perplexity,
            seed=seed,
            device=_device(device),
            on_progress=steps,
        )
    from idmm_tui.tracking import mirror_artifact

    mirrored = mirror_artifact(rd, view.png, warn=lambda text: err.print(text, highlight=False, soft_wrap=True))
    if mirrored:
        err.print(f"mirrored to {', '.join(mirrored)}", highlight=False)
    if not no_terminal:
        _terminal_plot(view.series, title=view.title, stream=sys.stderr if as_json else sys.stdout)
    r = view.result
    line = (
        f"{r['points']} {r['split']} images, {r['classes']} classes, perplexity {r['perplexity']:g}: KL {r['kl']:.3f}; "
        f"leave-one-out {r['knn_k']}-NN accuracy [bold]{r['knn_acc_2d']:.2f} %[/] in the map, "
        f"{r['knn_acc_features']:.2f} % on the features; t-SNE {r['tsne_wall_time_s']} s"
    )
    _finish(as_json, r, line, str(r["png"]))


# ---------------------------------------------------------------------------------------------
# idmm viz params


@viz_app.command("params")
def viz_params(
    refs: Annotated[
        list[str],
        typer.Argument(help="sweep group names, run names or run paths", metavar="REF...", show_default=False),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="also write the plot as this PNG (.pdf/.svg: vector, idmm[plots])", show_default=False
        ),
    ] = None,
    metric: Annotated[
        str,
        typer.Option(
            "--metric",
            help="test_acc, knn_acc, linear_acc, wall_time_s (as idmm "
            "report reads them) or any summary.json key, dotted: "
            "stages.pretrain.knn_acc",
        ),
    ] = "test_acc",
    no_terminal: NoTerminalOpt = False,
    as_json: JsonOpt = False,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Backbone parameters vs accuracy over runs, one colour per pretraining method (the paper's Fig. 3).

    Each point is a (backbone, method) pair, labelled with the backbone and averaged over its runs (seeds).
    Parameters: the backbone's, without head, counted once per backbone on the meta device.
    Runs without the metric (unfinished, failed) are listed and left out.

    Examples:

      idmm viz params size-sweep                        (a sweep group: every run of it)

      idmm viz params size-sweep baselines --out fig3.png

      idmm viz params run-a run-b --metric evals.linear.pretrain.test_acc --json
    """
    from idmm_tui.evaluation.jobs import params_view
    from idmm_tui.evaluation.plots import scatter_png
    from idmm_tui.experiments.groups import resolve_refs

    out = out_file(out)
    runs, _ = resolve_refs(list(refs), _runs_dir(runs_dir))
    view = params_view(runs, metric)
    x_label = "backbone parameters (M" + (", log scale)" if view.log_x else ")")
    if out is not None:
        scatter_png(out, view.series, title=view.title, x_label=x_label, y_label=metric, log_x=view.log_x)
    if not no_terminal:
        _terminal_plot(
            view.series,
            title=view.title,
            stream=sys.stderr if as_json else sys.stdout,
            x_label=x_label,
            y_label=metric,
            log_x=view.log_x,
        )
    if as_json:
        sys.stdout.write(json.dumps({**view.table.to_json(), "png": str(out) if out else None}, indent=2) + "\n")
        return
    table = Table()
    for col in ("backbone", "method", "params (M)", metric, "± (std)", "runs"):
        table.add_column(col, justify="left" if col in ("backbone", "method") else "right")
    for p in view.table.points:
        table.add_row(
            safe_markup(p.backbone),
            safe_markup(p.method),
            f"{p.params / 1e6:.2f}",
            f"{p.value:.2f}",
            "–" if p.std is None else f"{p.std:.2f}",
            str(p.n),
        )
    Console().print(table)
    for s in view.table.skipped:
        err.print(f"left out {safe_markup(s['run'])}: {safe_markup(s['reason'])}", highlight=False, soft_wrap=True)
    if out is not None:
        err.print(f"written: {out}", highlight=False, soft_wrap=True)
