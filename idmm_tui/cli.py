"""The ``idmm`` command line: a thin Typer face over the core (no training logic here)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from idmm_tui import __version__
from idmm_tui.cli_common import RunsDirOpt, err
from idmm_tui.cli_common import runs_dir as _runs_dir
from idmm_tui.cli_eval import eval_app, viz_app
from idmm_tui.cli_experiments import register as register_experiments
from idmm_tui.cli_track import register as register_track
from idmm_tui.cli_zoo import zoo_app
from idmm_tui.errors import BUG_EXIT, INTERRUPTED_EXIT, FilesystemError, UsageError, as_user_error, describe_os_error
from idmm_tui.textsafe import redact_text, safe_markup

app = typer.Typer(
    name="idmm",
    help=(
        "Train Vision Transformers from scratch on small datasets with IDMM "
        "(instance discrimination + multi-crop + CutMix).\n\n"
        "Start with:  idmm run recipes/demo.toml   (CPU, embedded data, ~3 min)"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
runs_app = typer.Typer(help="List and inspect run directories.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets known to idmm.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(data_app, name="data")
app.add_typer(zoo_app, name="zoo")
app.add_typer(eval_app, name="eval")
app.add_typer(viz_app, name="viz")
register_experiments(app)
register_track(app)


def _version(value: bool) -> None:
    if value:
        from idmm_tui import __version__

        sys.stdout.write(f"idmm {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    pass


# ---------------------------------------------------------------------------------------------
# idmm run


@app.command("run")
def run_cmd(
    recipe: Annotated[
        Path | None, typer.Argument(help="recipe TOML file, e.g. recipes/demo.toml", show_default=False)
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", "-s", help="override a recipe key: KEY=VALUE (dotted; arrays by index: finetune.0.epochs=3)"
        ),
    ] = None,
    runs_dir: RunsDirOpt = None,
    name: Annotated[str | None, typer.Option(help="run directory name \\[default: <recipe>-<timestamp>]")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="continue an interrupted run directory")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print only the final summary JSON on stdout")] = False,
    group: Annotated[str | None, typer.Option("--group", hidden=True, help="sweep group (set by idmm sweep)")] = None,
    track: Annotated[
        str | None,
        typer.Option(
            "--track",
            metavar="SINKS",
            help="mirror the run to tensorboard,mlflow,wandb (comma-separated; 'none' = off); "
            "replaces the recipe's [track] sinks",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Pretrain (IDMM) and fine-tune a ViT as a recipe says; resumable, one run directory per run.

    Examples:

      idmm run recipes/demo.toml

      idmm run recipes/demo.toml --set pretrain.method=none --name demo-random-init

      idmm run recipes/demo.toml --set data.dataset=imagefolder --set data.root=~/my-images

      idmm run --resume runs/demo-20261126-120000

      torchrun --nproc_per_node 4 -m idmm_tui run recipes/flowers.toml   (multi-GPU, DDP)
    """
    from idmm_tui.engine.distributed import launch_record, setup, teardown
    from idmm_tui.engine.events import RunInterrupted, StopRequest
    from idmm_tui.launch import execute, open_for_resume, resolve_recipe
    from idmm_tui.progress import make_reporter

    if (recipe is None) == (resume is None):
        raise UsageError("give a RECIPE to start a run, or --resume RUN_DIR to continue one (not both)")
    if resume is not None and (set_ or name):
        raise UsageError("--set and --name apply to new runs; a resumed run keeps its recipe and name")
    overrides = list(set_ or [])
    if track is not None:
        from idmm_tui.tracking.replay import parse_sinks

        overrides.append("track.sinks=" + json.dumps(parse_sinks(track)))  # saved with the run's recipe
    state = None
    if resume is not None:
        run, resolved, state = open_for_resume(resume)
        if track is not None:  # this session only: a resumed run keeps its recipe file
            resolved.track.sinks = parse_sinks(track)
    else:
        resolved = resolve_recipe(recipe, overrides)
    place = setup(resolved.device)
    stop = StopRequest()
    previous_handlers: dict = {}
    try:
        if resume is None:
            run, resolved = _create_on_main(place, recipe, overrides, _runs_dir(runs_dir), name, group)
        launch = launch_record(place)  # every rank takes part: hosts and processes of all ranks
        previous_handlers = _install_signal_handlers(stop)
        if place.is_main:
            err.print(
                f"[bold]run[/] {safe_markup(run.path)}  ({'resumed' if resume else 'new'}; device {place.device}"
                f"{f', {place.world_size} processes' if place.distributed else ''})"
            )
        reporter = make_reporter(err, enabled=place.is_main)
        try:
            with reporter:
                summary = execute(run, resolved, place, reporter=reporter, stop=stop, resume_state=state, launch=launch)
        except RunInterrupted:
            if place.is_main:
                err.print(
                    f"[yellow]interrupted[/]: checkpoint kept. Resume with: idmm run --resume {safe_markup(run.path)}"
                )
            raise typer.Exit(130) from None
        except KeyboardInterrupt:
            if place.is_main:
                err.print(
                    f"[yellow]interrupted[/] (forced): resume from the last checkpoint with: "
                    f"idmm run --resume {safe_markup(run.path)}"
                )
            raise typer.Exit(130) from None
        except OSError as exc:  # a full or read-only disk while training: the checkpoint before it is intact
            what = describe_os_error(exc, f"run {run.path} stopped: writing its files failed")
            raise FilesystemError(
                f"{what}; its last checkpoint is intact: once fixed, resume with: idmm run --resume {run.path}"
            ) from None
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        teardown(place)
    if not place.is_main:
        return
    if as_json:
        sys.stdout.write(json.dumps({**summary, "run_dir": str(run.path.absolute())}, indent=2) + "\n")
    else:
        _print_summary(summary, run.path)


def _create_on_main(place, recipe: Path, overrides: list[str], runs_dir: Path, name: str | None, group: str | None):
    """Rank 0 creates the run directory; the other ranks learn its path (or rank 0's error)."""
    from idmm_tui.launch import create_run
    from idmm_tui.recipe import parse_saved_recipe
    from idmm_tui.runs.store import open_run_dir

    if not place.distributed:
        return create_run(recipe, overrides, runs_dir, name, world_size=1, group=group)
    import torch.distributed as dist

    message: list[Any] = [None]
    failure: BaseException | None = None
    if place.is_main:
        try:
            created = create_run(recipe, overrides, runs_dir, name, world_size=place.world_size, group=group)
            message = [str(created[0].path)]
        except Exception as exc:  # every rank must learn of it, or the others wait forever
            failure = exc
            message = [f"error:{as_user_error(exc) or exc}"]
    dist.broadcast_object_list(message, src=0)
    if failure is not None:
        raise failure
    if message[0].startswith("error:"):
        raise UsageError(message[0].removeprefix("error:"))
    run = open_run_dir(Path(message[0]))
    return run, parse_saved_recipe(run.recipe.read_text(encoding="utf-8"), str(run.recipe))


def _install_signal_handlers(stop) -> dict:
    """First Ctrl-C / SIGTERM: stop after the current step with a checkpoint. Second Ctrl-C: at once.

    Returns the previous handlers (restored when the run ends).
    """

    def graceful(signum, frame):
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.request("interrupted by SIGINT" if signum == signal.SIGINT else "stopped by SIGTERM")
        err.print("[yellow]stopping after this step (Ctrl-C again to abort at once)…[/]")

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, graceful)
    signal.signal(signal.SIGTERM, graceful)
    return previous


def _print_summary(summary: dict[str, Any], path: Path) -> None:
    title = f"run {safe_markup(summary.get('name'))}: {safe_markup(summary.get('status'))}"
    table = Table(title=title, title_justify="left")
    for col in ("stage", "kind", "res", "epochs", "loss", "test_acc", "img/s"):
        table.add_column(col, justify="right" if col not in ("stage", "kind") else "left")
    for stage_name, s in (summary.get("stages") or {}).items():
        table.add_row(
            safe_markup(stage_name),
            safe_markup(s.get("kind", "")),
            str(s.get("resolution", "")),
            str(s.get("epochs", "")),
            _fmt(s.get("loss")),
            _fmt(s.get("test_acc")),
            _fmt(s.get("images_per_s"), 0),
        )
    Console().print(table)
    Console().print(
        f"test_acc [bold]{_fmt(summary.get('test_acc'))}[/]  wall {summary.get('wall_time_s')} s  "
        f"run dir {safe_markup(path)}",
        highlight=False,
    )


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# ---------------------------------------------------------------------------------------------
# idmm runs …


@runs_app.command("list")
def runs_list(
    runs_dir: RunsDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Every run under the runs directory, newest first (a run whose summary.json cannot be read is
    listed as unreadable, with the reason)."""
    from idmm_tui.runs.store import UNREADABLE, check_runs_dir, effective_status, list_runs, summary_or_problem

    rows = []
    for run in list_runs(check_runs_dir(_runs_dir(runs_dir))):
        s, problem = summary_or_problem(run)
        current = s.get("current") or {}
        rows.append(
            {
                "name": run.name,
                "path": str(run.path),
                "status": UNREADABLE if problem else effective_status(s),
                "backbone": s.get("backbone"),
                "dataset": s.get("dataset"),
                "method": s.get("method"),
                "stage": current.get("stage"),
                "epoch": current.get("epoch"),
                "test_acc": s.get("test_acc"),
                "started_at": s.get("started_at"),
                "wall_time_s": s.get("wall_time_s"),
                **({"reason": problem} if problem else {}),
            }
        )
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not rows:
        err.print(f"no runs in {escape(str(_runs_dir(runs_dir)))} (start one with: idmm run recipes/demo.toml)")
        return
    table = Table()
    for col in ("name", "status", "backbone", "dataset", "method", "stage", "epoch", "test_acc", "wall s"):
        table.add_column(col)
    for r in rows:
        if "reason" in r:
            status = f"[red]{UNREADABLE}[/]: {safe_markup(r['reason'])}"
            table.add_row(safe_markup(r["name"]), status, "", "", "", "", "", "", "")
            continue
        table.add_row(
            safe_markup(r["name"]),
            safe_markup(r["status"] or "?"),
            safe_markup(r["backbone"] or ""),
            safe_markup(r["dataset"] or ""),
            safe_markup(r["method"] or ""),
            safe_markup(r["stage"] or ""),
            _fmt(r["epoch"]),
            _fmt(r["test_acc"]),
            _fmt(r["wall_time_s"], 0),
        )
    Console().print(table)
    unreadable = sum("reason" in r for r in rows)
    if unreadable:
        err.print(
            f"[yellow]warning:[/] {unreadable} run(s) have a summary.json that cannot be read (see the status column)",
            highlight=False,
        )


@runs_app.command("show")
def runs_show(
    run: Annotated[str, typer.Argument(help="run name (under --runs-dir) or path")],
    runs_dir: RunsDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print summary.json")] = False,
) -> None:
    """One run: status, stages, final metrics and where its files are."""
    from idmm_tui.runs.store import resolve_run

    rd = resolve_run(run, _runs_dir(runs_dir))
    summary = rd.load_summary()
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    _print_summary(summary, rd.path)
    plan = ", ".join(f"{p['name']} ({p['epochs']} ep @ {p['resolution']}px)" for p in summary.get("plan", []))
    Console().print(safe_markup(f"plan: {plan}"), highlight=False)
    Console().print(
        safe_markup(
            f"backbone {summary.get('backbone')}  dataset {summary.get('dataset')}  "
            f"method {summary.get('method')}  seed {summary.get('seed')}"
        ),
        highlight=False,
    )
    if summary.get("error"):
        Console().print(f"[red]error:[/] {safe_markup(summary['error'])}", highlight=False)


# ---------------------------------------------------------------------------------------------
# idmm tui


@app.command("tui")
def tui_cmd(runs_dir: RunsDirOpt = None) -> None:
    """The dashboard: watch runs live, compare them, launch, stop and resume (press ? for keys)."""
    from idmm_tui.cli_tui import tui_command

    tui_command(_runs_dir(runs_dir))


# ---------------------------------------------------------------------------------------------
# registries


@data_app.command("list")
def data_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Registered datasets, their paper split sizes and default locations."""
    from idmm_tui.data.registry import dataset_names, get_dataset_spec

    specs = [get_dataset_spec(n) for n in dataset_names()]
    if as_json:
        sys.stdout.write(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "classes": s.num_classes,
                        "description": s.description,
                        "default_root": s.default_root,
                        "downloadable": s.downloadable,
                    }
                    for s in specs
                ],
                indent=2,
            )
            + "\n"
        )
        return
    table = Table()
    for col in ("name", "classes", "train", "test", "download", "description"):
        table.add_column(col)
    for s in specs:
        table.add_row(
            s.name,
            _fmt(s.num_classes),
            _fmt(s.paper_train_size),
            _fmt(s.paper_test_size),
            "yes" if s.downloadable else "no",
            s.description,
        )
    Console().print(table)


@data_app.command("subset")
def data_subset(
    imagenet_dir: Annotated[
        Path, typer.Argument(help="ImageNet-style folder: train/<wnid>/* (and val/<wnid>/*)", show_default=False)
    ],
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            metavar="sin10k|random10k",
            show_default=False,
            help="sin10k: N images per class; random10k: N images drawn from all of train/",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="folder to write: new, empty, or an earlier subset of the same spec")
    ],
    seed: Annotated[int, typer.Option("--seed", min=0, help="selection seed (0 = the registered datasets')")] = 0,
    per_class: Annotated[
        int | None, typer.Option("--per-class", min=1, help="sin10k: images per class (default 10)", show_default=False)
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", min=1, help="random10k: images (default 10000)", show_default=False)
    ] = None,
    copy: Annotated[bool, typer.Option("--copy", help="copy the images instead of symlinking them")] = False,
    val: Annotated[bool, typer.Option("--val/--no-val", help="also write val/ as test/ (when there is a val/)")] = True,
) -> None:
    """Write an ImageNet subset (SIN-10k, or a random draw) as an imagefolder tree with a subset.json.

    OUT/train/<wnid>/ gets symlinks to (with --copy: copies of) the chosen images, OUT/test/ the whole val/,
    OUT/subset.json the kind, seed, source, counts and the exact file list.

    With the default seed and count these are the training images of the datasets sin10k and imagenet_random10k.

    Train on it:  idmm run RECIPE --set data.dataset=imagefolder --set data.root=OUT
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from idmm_tui.data import imagenet

    if kind not in imagenet.KINDS:
        raise UsageError(f"--kind must be one of {', '.join(imagenet.KINDS)}, not {kind!r}")
    if kind == "sin10k" and size is not None:
        raise UsageError("--size goes with --kind random10k (sin10k takes --per-class)")
    if kind == "random10k" and per_class is not None:
        raise UsageError("--per-class goes with --kind sin10k (random10k takes --size)")
    out = out.expanduser().absolute()
    subset = imagenet.select_subset(
        imagenet_dir.expanduser().resolve(), kind, seed, per_class or imagenet.PER_CLASS, size or imagenet.RANDOM_SIZE
    )
    tree = imagenet.plan_subset(subset, out, copy=copy, with_val=val)
    imagenet.check_out(out, tree.record)  # refuse before saying anything else
    for note in subset.notes():
        err.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, disable=not err.is_terminal, transient=True) as bar:
        task = bar.add_task("copying" if copy else "linking", total=len(tree.pairs))
        record = imagenet.write_subset(tree, progress=lambda done, _: bar.update(task, completed=done))
    test = f", test/ = {record['test']['count']} val images" if record["test"] else ", no test/"
    state = "already complete" if record["resumed"] and not record["written"] else f"{record['written']} files written"
    same = f"; the training images of dataset {record['dataset']!r}" if record["dataset"] else ""
    console = Console()
    console.print(
        f"{kind} (seed {seed}): {record['counts']['train']} training images of "
        f"{record['counts']['classes']} classes{test} -> {out} ({record['mode']}, {state}){same}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"train on it:  idmm run RECIPE --set data.dataset=imagefolder --set data.root={out}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("models")
def models_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Registered backbones with their paper defaults (lr, warmup)."""
    from idmm_tui.models.registry import backbone_names, get_backbone_spec

    specs = [get_backbone_spec(n) for n in backbone_names()]
    if as_json:
        sys.stdout.write(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "family": s.family.name,
                        "lr": s.lr,
                        "warmup_epochs": s.warmup_epochs,
                        "description": s.description,
                    }
                    for s in specs
                ],
                indent=2,
            )
            + "\n"
        )
        return
    table = Table()
    for col in ("name", "family", "lr", "warmup", "resolution", "description"):
        table.add_column(col)
    for s in specs:
        table.add_row(
            s.name, s.family.name, f"{s.lr:g}", str(s.warmup_epochs), str(s.default_resolution), s.description
        )
    Console().print(table)


@app.command("methods")
def methods_cmd() -> None:
    """Registered pretraining methods."""
    from idmm_tui.methods import get_method, method_names

    for name in method_names():
        method = get_method(name)
        Console().print(f"{name:8s} {method.description if method else 'no pretraining (random-init baseline)'}")


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: the one error boundary of the command line.

    Expected failures (:class:`IdmmError`, OS errors, text that is not UTF-8, …; see
    :func:`idmm_tui.errors.as_user_error`) print one line — control characters escaped, credentials in
    URLs redacted — and exit with the code the README documents. Anything else is a bug: its
    traceback, then a line saying so (exit 70).
    """
    try:
        app(args=argv, standalone_mode=True)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]", highlight=False)
        sys.exit(INTERRUPTED_EXIT)
    except Exception as exc:
        known = as_user_error(exc)
        if known is None:
            _report_bug(exc)
            sys.exit(BUG_EXIT)
        message = str(known) or type(known).__name__
        err.print(f"[red]error:[/] {safe_markup(redact_text(message))}", highlight=False, soft_wrap=True)
        sys.exit(known.exit_code)


def _report_bug(exc: BaseException) -> None:
    """A traceback, and a line saying that this is a bug in idmm (not something the user did)."""
    import traceback

    sys.stderr.write(redact_text("".join(traceback.format_exception(exc))))
    err.print(
        f"[red]error:[/] this is a bug in idmm {__version__} ({safe_markup(type(exc).__name__)}); please report it "
        "with the traceback above and the command that led to it",
        highlight=False,
        soft_wrap=True,
    )


if __name__ == "__main__":
    main()
