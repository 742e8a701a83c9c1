"""``idmm export`` (finished runs into TensorBoard / MLflow / W&B) and ``idmm recipes`` (the shipped recipes)."""

from __future__ import annotations

import json
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from idmm_tui.cli_common import RunsDirOpt, err
from idmm_tui.cli_common import runs_dir as _runs_dir
from idmm_tui.errors import UsageError

recipes_app = typer.Typer(help="The recipes idmm ships: list them, print one or copy it out.", no_args_is_help=True)


def export_cmd(
    refs: Annotated[
        list[str],
        typer.Argument(help="run names or paths, or sweep group names", metavar="RUN|GROUP...", show_default=False),
    ],
    to: Annotated[
        str,
        typer.Option("--to", metavar="SINKS", help="tensorboard, mlflow, wandb (comma-separated)", show_default=False),
    ],
    dir_: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="local stores: DIR/tensorboard/…, DIR/mlruns, DIR/wandb \\[default: <runs dir>/tracking]",
            show_default=False,
        ),
    ] = None,
    mlflow_uri: Annotated[
        str, typer.Option("--mlflow-uri", help="MLflow tracking URI \\[default: $MLFLOW_TRACKING_URI, else DIR/mlruns]")
    ] = "",
    experiment: Annotated[
        str, typer.Option("--experiment", help="MLflow experiment \\[default: the sweep group, else idmm]")
    ] = "",
    wandb_project: Annotated[str, typer.Option("--wandb-project", help="W&B project")] = "idmm",
    wandb_entity: Annotated[str, typer.Option("--wandb-entity", help="W&B entity (team or user)")] = "",
    wandb_mode: Annotated[
        str, typer.Option("--wandb-mode", help="auto ($WANDB_MODE, else online), online or offline")
    ] = "auto",
    runs_dir: RunsDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print only what was exported, as JSON")] = False,
) -> None:
    """Mirror finished runs, or every run of a sweep group, into TensorBoard, MLflow or Weights & Biases.

    Reads the run directories only (recipe.toml, summary.json, metrics.jsonl, eval/*.png): every metrics
    record as scalars at its step, the recipe as hyper-parameters, stage boundaries, the final summary
    and the t-SNE / params PNGs. A sweep group becomes an MLflow experiment and a W&B group of that name.
    Each export is a new MLflow / W&B run; a run's TensorBoard folder is rewritten.

    Examples:

      idmm export demo-20261126-120000 --to tensorboard        (then: tensorboard --logdir runs/tracking/tensorboard)

      idmm export methods-demo --to mlflow,wandb               (a sweep group)

      WANDB_MODE=offline idmm export run-a run-b --to wandb --wandb-project my-lab
    """
    from idmm_tui.experiments.groups import resolve_refs
    from idmm_tui.tracking.core import Settings
    from idmm_tui.tracking.replay import default_dir, export_runs, parse_sinks

    sinks = parse_sinks(to)
    if not sinks:
        raise UsageError("--to names no sink: use tensorboard, mlflow or wandb")
    if wandb_mode not in ("auto", "online", "offline"):
        raise UsageError(f"--wandb-mode must be auto, online or offline, not {wandb_mode!r}")
    root = _runs_dir(runs_dir)
    runs, groups = resolve_refs(list(refs), root, role=None)
    if not runs:
        raise UsageError("nothing to export: the references name no run (a group whose runs have not started yet?)")
    settings = Settings(
        dir=(dir_.expanduser() if dir_ else default_dir(root)).absolute(),
        mlflow_uri=mlflow_uri,
        mlflow_experiment=experiment,
        wandb_project=wandb_project,
        wandb_entity=wandb_entity,
        wandb_mode=wandb_mode,
    )
    group = groups[0].name if len(groups) == 1 else ""

    def progress(row: dict) -> None:
        if not as_json:
            err.print(f"{row['run']} -> {row['sink']}: {row['records']} records, {row['pngs']} PNGs", highlight=False)

    rows = export_runs(runs, sinks, settings, group=group, on_run=progress)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table()
    for col in ("run", "sink", "records", "PNGs", "where"):
        table.add_column(col)
    for row in rows:
        where = row.get("logdir") or row.get("run_id") or row.get("id") or ""
        if row["sink"] == "mlflow":
            where = f"{row.get('uri')} experiment {row.get('experiment')!r} run {row.get('run_id')}"
        elif row["sink"] == "wandb":
            where = f"project {row.get('project')} run {row.get('id')} ({row.get('mode')})"
        table.add_row(row["run"], row["sink"], str(row["records"]), str(row["pngs"]), where)
    Console().print(table)


# ---------------------------------------------------------------------------------------------
# idmm recipes


@recipes_app.command("list")
def recipes_list(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """The shipped recipes: name, base and description (run one with: idmm run NAME)."""
    from idmm_tui.shipped import recipe_names, recipes_dir

    rows = []
    for name in recipe_names():
        path = recipes_dir() / f"{name}.toml"
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            table = {}
        rows.append({"name": name, "base": table.get("base", ""), "description": table.get("description", "")})
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    out = Table()
    for col in ("name", "base", "description"):
        out.add_column(col)
    for row in rows:
        out.add_row(row["name"], row["base"], row["description"])
    Console().print(out)
    err.print(f"from {recipes_dir()}; copy one out with: idmm recipes show NAME --out NAME.toml", highlight=False)


@recipes_app.command("show")
def recipes_show(
    name: Annotated[str, typer.Argument(help="recipe name, e.g. demo", show_default=False)],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="write it to this file (and its base recipe beside it) instead of stdout"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite existing files")] = False,
) -> None:
    """Print a shipped recipe, or copy it out (--out FILE) to edit and run: idmm run FILE."""
    from idmm_tui.errors import UnknownNameError
    from idmm_tui.shipped import recipe_names, recipes_dir

    stem = Path(name).name.removesuffix(".toml")
    if stem not in recipe_names():
        raise UnknownNameError("recipe", stem, recipe_names())
    source = recipes_dir() / f"{stem}.toml"
    if out is None:
        sys.stdout.write(source.read_text(encoding="utf-8"))
        return
    out = out.expanduser()
    if out.is_dir():
        out = out / source.name
    chain = [(source, out)]
    base = tomllib.loads(source.read_text(encoding="utf-8")).get("base")
    while isinstance(base, str):  # the base chain, beside the copy, so the copy runs as it is
        src = (chain[-1][0].parent / base).resolve()
        chain.append((src, out.parent / base))
        base = tomllib.loads(src.read_text(encoding="utf-8")).get("base")
    existing = [str(dest) for _, dest in chain if dest.exists()]
    if existing and not force:
        raise UsageError(f"{', '.join(existing)} already exists; use --force to overwrite")
    for src, dest in chain:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        err.print(f"written: {dest}", highlight=False)
    err.print(f"run it with: idmm run {out}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
    app.add_typer(recipes_app, name="recipes")
