"""``idmm sweep`` and ``idmm report``: the paper's experiments as commands (Typer face only)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from idmm_tui.cli_common import RunsDirOpt, err, out_file
from idmm_tui.cli_common import runs_dir as _runs_dir
from idmm_tui.errors import UsageError
from idmm_tui.textsafe import safe_markup

_ACTION_STYLE = {"start": "green", "resume": "yellow", "skip": "dim", "busy": "magenta"}
_OUTCOME_STYLE = {
    "completed": "green",
    "skipped": "dim",
    "failed": "red",
    "interrupted": "yellow",
    "blocked": "red",
    "busy": "magenta",
}


def sweep_cmd(
    recipe: Annotated[
        Path | None,
        typer.Argument(
            help="recipe TOML every cell starts from (omit with --group to re-run a sweep)", show_default=False
        ),
    ] = None,
    axis: Annotated[
        list[str] | None,
        typer.Option("--axis", "-a", help="KEY=V1,V2,… a swept recipe key (repeat for a grid)", show_default=False),
    ] = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", help="seeds, e.g. 0,1,2: each cell runs once per seed (mean ± std)")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="KEY=VALUE applied to every cell", show_default=False)
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="transfer sweep: KEY=V1,V2 of the pretraining runs (repeatable); every "
            "target cell is fine-tuned from each of them",
            show_default=False,
        ),
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", "-g", help="group name \\[default: the recipe's name]", show_default=False)
    ] = None,
    runs_dir: RunsDirOpt = None,
    launcher: Annotated[
        str | None,
        typer.Option(
            "--launcher",
            help='run each cell under this launcher, e.g. "torchrun --nproc_per_node 4"',
            show_default=False,
        ),
    ] = None,
    zipped: Annotated[
        bool, typer.Option("--zip", help="advance the axes together (row i = the i-th value of each): ablation rows")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="validate and list the cells (slurm: and show the job script); run nothing"),
    ] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="stop at the first failed cell")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the cells and outcomes as JSON on stdout")] = False,
    max_parallel: Annotated[
        int,
        typer.Option(
            "--max-parallel",
            "-j",
            help="cells at once: processes on this machine (each with its GPUs, or its share of the CPU threads); "
            "slurm: array tasks at once",
        ),
    ] = 1,
    gpus_per_cell: Annotated[
        int,
        typer.Option(
            "--gpus-per-cell",
            help="GPUs of each local cell (its own CUDA_VISIBLE_DEVICES); more than 1 runs it under torchrun (DDP)",
        ),
    ] = 0,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            help="local (this machine) | slurm (one job per cell, through submitit) | submitit-local "
            "(submitit's local executor: the SLURM job path without a cluster) \\[default: local]",
            show_default=False,
        ),
    ] = None,
    partition: Annotated[str | None, typer.Option("--partition", help="slurm: partition", show_default=False)] = None,
    gpus_per_node: Annotated[
        int, typer.Option("--gpus-per-node", help="slurm: GPUs per node of each cell (one task per GPU: DDP)")
    ] = 0,
    nodes: Annotated[int, typer.Option("--nodes", help="slurm: nodes of each cell (multi-node DDP)")] = 1,
    time_limit: Annotated[
        str, typer.Option("--time", help="slurm: time limit of a job (requeued with an exact resume when reached)")
    ] = "24:00:00",
    account: Annotated[str | None, typer.Option("--account", help="slurm: account", show_default=False)] = None,
    slurm: Annotated[
        list[str] | None,
        typer.Option(
            "--slurm",
            help="slurm: KEY=VALUE of sbatch (mem=64G, constraint=a100, qos=…, setup='module load cuda'; repeatable)",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="slurm: stay until every job ended (submitit-local always waits)")
    ] = False,
    status: Annotated[
        bool, typer.Option("--status", help="with --group: each cell's run status, job id, job state and log files")
    ] = False,
    cancel: Annotated[
        bool,
        typer.Option("--cancel", help="with --group: cancel the sweep's queued and running jobs (through submitit)"),
    ] = False,
) -> None:
    """Run a grid of runs one after another; re-run the same command to continue it.

    Every cell is an ordinary run directory RUNS_DIR/GROUP.CELL (see `idmm runs list`, the
    dashboard). Finished cells are skipped, interrupted ones resume from their checkpoint, and every
    cell's recipe is validated before the first one starts. Report with `idmm report GROUP`.

    Examples:

      idmm sweep recipes/methods-demo.toml --axis pretrain.method=idmm,simclr,supcon,mocov2,mocov3,dino,none

      idmm sweep recipes/flowers.toml --axis model.backbone=pvt_v2_b0,t2t_vit_7 --seeds 0,1,2

      idmm sweep recipes/ablation-demo.toml --axis pretrain.local_crops=0,4 --axis pretrain.cutmix_alpha=0,0.5

      idmm sweep recipes/ablation-demo.toml --zip --axis pretrain.label_smoothing=0,0.1,0.1
      --axis pretrain.cutmix_alpha=0,0,0.5     (ablation rows: the i-th value of each axis together)

      idmm sweep recipes/transfer-matrix-demo.toml --source data.classes=[0,2,3,4,6],[1,5,7,8,9]
      --source pretrain.method=idmm,none --axis data.classes=[0,2,3,4,6],[1,5,7,8,9]
      (Table 5 shape: pretrain once on each source, fine-tune each on each target)

      idmm sweep --group methods-demo     (re-run a sweep by name)

      idmm sweep recipes/flowers.toml --axis pretrain.method=idmm,none --seeds 0,1,2 --max-parallel 4
      --gpus-per-cell 2     (a workstation: 4 cells at once on 8 GPUs, each DDP on 2)

      idmm sweep recipes/flowers.toml --axis pretrain.method=idmm,none --executor slurm --partition gpu
      --gpus-per-node 4 --time 24:00:00     (a SLURM cluster: one job per cell, requeued on preemption)

      idmm sweep --group flowers --status     (cells, runs, jobs)
    """
    from idmm_tui.experiments.groups import load_group
    from idmm_tui.experiments.sweep import (
        SweepSpec,
        cell_slots,
        check_parallel_launcher,
        default_launcher,
        parse_axis,
        parse_launcher,
        parse_seeds,
        prepare,
        render_command,
        run_sweep,
    )
    from idmm_tui.recipe import load_recipe

    root = _runs_dir(runs_dir)
    launch = parse_launcher(launcher)
    if status or cancel:
        if recipe is not None or not group:
            raise UsageError(f"{'--status' if status else '--cancel'} takes a sweep by name: --group NAME, no RECIPE")
        from idmm_tui.experiments import cluster

        group_obj = load_group(group, root)
        if cancel:
            cluster.cancel_jobs(group_obj, say=lambda text: err.print(safe_markup(text), highlight=False))
        rows = cluster.status_rows(group_obj)
        if as_json:
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        else:
            _print_status(group_obj, rows)
        return
    chosen_executor, executor = executor, executor or "local"
    if executor not in ("local", "slurm", "submitit-local"):
        raise UsageError(f"--executor {executor!r}: choose local, slurm or submitit-local")
    cluster_options = None
    if executor != "local":
        from idmm_tui.experiments import cluster

        if launcher or gpus_per_cell or fail_fast:
            raise UsageError(
                "--launcher, --gpus-per-cell and --fail-fast are for local cells; with a cluster use --gpus-per-node"
            )
        cluster_options = cluster.ClusterOptions.parse(
            executor,
            partition=partition,
            gpus_per_node=gpus_per_node,
            nodes=nodes,
            time=time_limit,
            account=account,
            items=slurm or [],
            max_parallel=max_parallel,
        )
    elif partition or gpus_per_node or nodes != 1 or account or slurm or wait:
        raise UsageError("--partition, --gpus-per-node, --nodes, --account, --slurm and --wait need --executor slurm")
    slots = None if executor != "local" else cell_slots(max_parallel, gpus_per_cell)
    if executor == "local" and launch is None:
        launch = default_launcher(gpus_per_cell)
    check_parallel_launcher(launch, max_parallel if executor == "local" else 1)
    if recipe is None:
        if not group:
            raise UsageError("give a RECIPE (and --axis …) to start a sweep, or --group NAME to re-run one")
        if axis or seeds or set_ or source or zipped:
            raise UsageError("--group alone re-runs a sweep as it was defined; to change it, give the RECIPE again")
        spec = SweepSpec.from_json(load_group(group, root).spec)
    else:
        spec = SweepSpec(
            recipe=str(recipe.expanduser().absolute()),  # re-runnable by name from any directory
            axes=[parse_axis(a) for a in axis or []],
            seeds=parse_seeds(seeds),
            overrides=list(set_ or []),
            sources=[parse_axis(s, "--source") for s in source or []] or None,
            zipped=zipped,
        )
        if not spec.axes and not spec.seeds and not spec.sources:
            raise UsageError("a sweep needs at least one --axis KEY=V1,V2, --seeds or --source (else use idmm run)")
        group = group or (load_recipe(recipe).name or recipe.stem)
    group_obj, plans = prepare(spec, group, root)
    ran_on = group_obj.executor.get("kind")
    if ran_on and ran_on != "submitit-local" and chosen_executor is None and not dry_run:
        shown = ", ".join(f"{k} {v}" for k, v in (group_obj.executor.get("parameters") or {}).items())
        raise UsageError(
            f"sweep {group_obj.name} runs its cells as {ran_on} jobs ({shown}): give --executor {ran_on} and its "
            "options again to resubmit what did not finish, or --executor local to run the rest on this machine"
        )
    if not as_json:
        _print_plan(group_obj, plans)
    if dry_run:
        if cluster_options is not None and not as_json:  # the script on stdout: `… --dry-run > cell.sbatch`
            from idmm_tui.textsafe import safe_text

            err.print(f"job script of one cell ({cluster_options.executor}; an array adds #SBATCH --array):")
            script = cluster_options.job_script(group_obj)
            sys.stdout.write("".join(safe_text(line) + "\n" for line in script.splitlines()))
        if as_json:
            sys.stdout.write(
                json.dumps(
                    [
                        {"name": p.cell.name, "role": p.cell.role, "values": p.cell.values, "action": p.action}
                        for p in plans
                    ],
                    indent=2,
                )
                + "\n"
            )
        return

    def announce(index, total, cp, command):
        err.rule(f"[bold]{index}/{total}[/] {safe_markup(cp.cell.name)} ({cp.action})")
        err.print(f"[dim]{safe_markup(render_command(command))}[/]", highlight=False, soft_wrap=True)

    def started(cp, slot, log):
        where = slots.describe(slot) if slots else ""
        err.print(
            f"[green]▶[/] {safe_markup(cp.cell.name)} ({cp.action}{', ' + where if where else ''}) → "
            f"[dim]{safe_markup(log)}[/]",
            highlight=False,
            soft_wrap=True,
        )

    def ended(result, code):
        style = _OUTCOME_STYLE.get(result.outcome, "")
        err.print(
            f"[{style}]■ {safe_markup(result.cell.name)} {result.outcome}[/] {safe_markup(result.detail)}",
            highlight=False,
        )

    if cluster_options is not None:
        results = cluster.run_cluster_sweep(
            group_obj,
            plans,
            cluster_options,
            wait=wait,
            say=lambda text: err.print(safe_markup(text), highlight=False),
        )
        if results is None:  # submitted; the jobs run on their own
            err.print(
                f"follow with: idmm sweep --group {group_obj.name} --status"
                + (f" --runs-dir {root}" if runs_dir else "")
                + " (or idmm tui); cancel with --cancel"
            )
            return
    elif max_parallel > 1:
        results = run_sweep(
            group_obj, plans, launcher=launch, fail_fast=fail_fast, slots=slots, on_start=started, on_exit=ended
        )
    else:
        results = run_sweep(group_obj, plans, launcher=launch, announce=announce, fail_fast=fail_fast, slots=slots)
    pending = len(plans) - len(results)
    if as_json:
        sys.stdout.write(
            json.dumps([{"name": r.cell.name, "outcome": r.outcome, "detail": r.detail} for r in results], indent=2)
            + "\n"
        )
    else:
        _print_results(group_obj.name, results, pending)
    bad = [r for r in results if r.outcome in ("failed", "blocked", "busy")]
    if any(r.outcome == "interrupted" for r in results) or getattr(results, "interrupted", False):
        err.print(
            f"[yellow]sweep interrupted[/]; continue with: idmm sweep --group {group_obj.name}"
            + (f" --runs-dir {root}" if runs_dir else "")
        )
        raise typer.Exit(130)
    if bad:
        raise typer.Exit(1)
    err.print(f"report: idmm report {group_obj.name}" + (f" --runs-dir {root}" if runs_dir else ""))


def _print_plan(group, plans) -> None:
    table = Table(
        title=f"sweep {safe_markup(group.name)}: {len(plans)} cells ({safe_markup(group.manifest)})",
        title_justify="left",
    )
    for col in ("#", "cell", "role", "action", "note"):
        table.add_column(col)
    for i, p in enumerate(plans, start=1):
        style = _ACTION_STYLE.get(p.action, "")
        table.add_row(
            str(i), safe_markup(p.cell.name), safe_markup(p.cell.role), f"[{style}]{p.action}[/]", safe_markup(p.detail)
        )
    err.print(table)


def _print_results(name: str, results, pending: int) -> None:
    table = Table(title=f"sweep {name}", title_justify="left")
    for col in ("cell", "outcome", "detail"):
        table.add_column(col)
    for r in results:
        style = _OUTCOME_STYLE.get(r.outcome, "")
        table.add_row(safe_markup(r.cell.name), f"[{style}]{r.outcome}[/]", safe_markup(r.detail))
    err.print(table)
    if pending:
        err.print(f"{pending} cell(s) not started")


def _print_status(group, rows: list[dict]) -> None:
    executor = group.executor.get("kind") or "local"
    table = Table(title=f"sweep {safe_markup(group.name)} ({safe_markup(executor)})", title_justify="left")
    for col in ("cell", "run", "job", "job state", "log"):
        table.add_column(col)
    for row in rows:
        style = _OUTCOME_STYLE.get(row["run"], "")
        table.add_row(
            safe_markup(row["cell"]),
            f"[{style}]{safe_markup(row['run'])}[/]" if style else safe_markup(row["run"]),
            safe_markup(row.get("job_id") or ""),
            safe_markup(row.get("job_state") or ""),
            safe_markup(row.get("stdout") or ""),
        )
    Console().print(table)


def report_cmd(
    refs: Annotated[list[str], typer.Argument(help="sweep group names, run names or run paths", show_default=False)],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="table | markdown | csv | json \\[default: table, or from --out]", show_default=False
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="also write the report to this file", show_default=False)
    ] = None,
    metric: Annotated[
        str,
        typer.Option(
            "--metric",
            help="cell value of a matrix: test_acc | knn_start | knn_acc | linear_acc | loss_first | loss_last "
            "| wall_time_s",
        ),
    ] = "test_acc",
    rows: Annotated[
        list[str] | None, typer.Option("--rows", help="recipe key(s) along the rows", show_default=False)
    ] = None,
    cols: Annotated[
        list[str] | None, typer.Option("--cols", help="recipe key(s) along the columns", show_default=False)
    ] = None,
    layout: Annotated[str, typer.Option("--layout", help="auto | rows (one row per combination: ablations)")] = "auto",
    paper: Annotated[
        bool,
        typer.Option(
            "--paper/--no-paper", help="show the paper's number beside cells whose setting matches one of its tables"
        ),
    ] = True,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Paper-shaped tables: method × dataset, pretraining source × target, ablation rows; mean ± std over seeds.

    The layout follows what varies between the runs (a sweep's axes): one key gives a row per value
    with test accuracy, final pretraining kNN, linear probe and wall time; two keys give a matrix
    (methods or transfer sources as rows); more give one row per combination. Where a cell's setting
    matches the paper's (backbone, method, dataset, epochs, resolutions), its number is shown beside.

    Examples:

      idmm report methods-demo

      idmm report methods-demo --format markdown --out docs/methods-demo.md

      idmm report transfer-demo --metric test_acc

      idmm report runs/a runs/b runs/c --format json
    """
    from idmm_tui.experiments.groups import resolve_refs
    from idmm_tui.experiments.paper_match import paper_number
    from idmm_tui.experiments.report import METRICS, build, collect, describe_runs, to_csv, to_json, to_markdown

    formats = ("table", "markdown", "csv", "json")
    if fmt is None:
        fmt = {".md": "markdown", ".csv": "csv", ".json": "json"}.get(out.suffix.lower(), "table") if out else "table"
    if fmt not in formats:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(formats)}")
    if metric not in METRICS:
        raise UsageError(f"--metric {metric!r}: choose one of {', '.join(METRICS)}")
    if layout not in ("auto", "rows"):
        raise UsageError(f"--layout {layout!r}: choose auto or rows")
    out = out_file(out)
    runs, groups = resolve_refs(refs, _runs_dir(runs_dir))
    if not runs:
        raise UsageError(f"no runs in {', '.join(refs)} yet (start the sweep, or check --runs-dir)")
    facts = collect(runs, groups)
    title = " + ".join(refs)
    report = build(
        facts,
        metric=metric,
        layout=layout,
        rows=rows,
        cols=cols,
        title=title,
        paper_lookup=paper_number if paper else None,
    )
    report.notes = describe_runs(facts)
    text = {"markdown": to_markdown, "csv": to_csv, "json": to_json}.get(fmt)
    if text is None:
        _print_report(report)
    else:
        sys.stdout.write(text(report))
    if out is not None:
        writer = {"markdown": to_markdown, "csv": to_csv, "json": to_json}.get(fmt, to_markdown)
        from idmm_tui.fsutil import atomic_write_text

        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, writer(report))
        err.print(f"wrote {safe_markup(out)}", highlight=False)


def _print_report(report) -> None:
    from idmm_tui.experiments.report import cell_text, column_title, corner_title

    table = Table(title=safe_markup(report.title), title_justify="left")
    table.add_column(safe_markup(corner_title(report)), style="bold")
    for col in report.cols:
        table.add_column(safe_markup(column_title(report, col)), justify="right")
    best = _best_per_column(report)
    for row in report.rows:
        cells = []
        for col in report.cols:
            text = safe_markup(cell_text(report, row, col))
            cells.append(f"[bold green]{text}[/]" if best.get(col) == row else text)
        table.add_row(safe_markup(row), *cells)
    Console().print(table)
    for note in report.notes:
        Console().print(safe_markup(note), style="dim", highlight=False)


def _best_per_column(report) -> dict[str, str]:
    """The row with the highest mean in each accuracy column (bold in the terminal, like the paper)."""
    best: dict[str, str] = {}
    for col in report.cols:
        if col in ("wall_time_s", "knn_start", "loss_first", "loss_last"):
            continue  # not "higher is better" accuracies
        scored = [(s.mean, row) for row in report.rows if (s := report.cells.get((row, col))) and s.mean is not None]
        if len(scored) > 1:
            best[col] = max(scored)[1]
    return best


def register(app: typer.Typer) -> None:
    """Add ``sweep`` and ``report`` to the main app."""
    app.command("sweep")(sweep_cmd)
    app.command("report")(report_cmd)
