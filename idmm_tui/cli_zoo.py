"""``idmm zoo …``: the model zoo's command line (a thin Typer face over :mod:`idmm_tui.zoo.ops`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from idmm_tui.textsafe import redact_text, safe_markup

zoo_app = typer.Typer(
    help=(
        "Share and reuse trained models: a local registry ($IDMM_ZOO_DIR, default ~/.cache/idmm/zoo), "
        "the catalogue (zoo/catalogue.toml) and the Hugging Face Hub.\n\n"
        'Transfer from a zoo model with  init = "zoo:NAME"  in a recipe.'
    ),
    no_args_is_help=True,
)

err = Console(stderr=True)

EndpointOpt = Annotated[
    str | None,
    typer.Option("--endpoint", help="Hub URL \\[default: $HF_ENDPOINT or https://huggingface.co]", show_default=False),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token", help="Hub token \\[default: $HF_TOKEN or the logged-in token]; never printed", show_default=False
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]


def _say(text: str) -> None:
    err.print(safe_markup(redact_text(text)), highlight=False, soft_wrap=True)


def _s(value: Any) -> str:
    """A value from a model's files, safe as a table cell or in a line (no control codes, no markup)."""
    return safe_markup(value)


def _wide_console() -> Console:
    """stdout; when it is not a terminal (a pipe, a file), wide enough not to truncate names."""
    out = Console()
    return out if out.is_terminal else Console(width=220)


def _fmt_metrics(metrics: Any) -> str:
    if not metrics or not isinstance(metrics, dict):
        return "–"
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


@zoo_app.command("list")
def zoo_list(as_json: JsonOpt = False) -> None:
    """The catalogue's models and the local registry's, marking what is present locally."""
    from idmm_tui.zoo.ops import list_models
    from idmm_tui.zoo.registry import default_zoo_dir

    rows = list_models()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not rows:
        _say(
            f"no zoo models: the catalogue is empty and {default_zoo_dir()} holds none "
            "(push one with: idmm zoo push RUN_DIR)"
        )
        return
    table = Table()
    for col in ("name", "status", "local", "backbone", "method", "dataset", "stage", "px", "metrics", "repo"):
        table.add_column(col)
    for r in rows:
        local = "yes" if r.get("local") else "–"
        if r.get("local") and r.get("status") != "local" and r.get("sha256") and not r.get("local_matches"):
            local = "yes (other weights)"
        table.add_row(
            _s(r["name"]),
            _s(r.get("status") or ""),
            local,
            _s(r.get("backbone") or ""),
            _s(r.get("method") or ""),
            _s(r.get("dataset") or ""),
            _s(r.get("stage") or ""),
            _s(r.get("resolution") or ""),
            _s(_fmt_metrics(r.get("metrics"))),
            _s(r.get("repo") or ""),
        )
    _wide_console().print(table)
    _say(f"local registry: {default_zoo_dir()}")


@zoo_app.command("show")
def zoo_show(
    name: Annotated[str, typer.Argument(help="zoo model name")],
    as_json: JsonOpt = False,
) -> None:
    """One model: catalogue entry, local files, architecture, metrics and lineage."""
    from idmm_tui.zoo.ops import show_model

    info = show_model(name)
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    out = _wide_console()
    entry, local = info["catalogue"], info["local"]
    line = lambda text: out.print(safe_markup(text), highlight=False, soft_wrap=True)  # noqa: E731
    out.print(f"[bold]{_s(name)}[/]")
    if entry:
        line(
            f"  catalogue: {entry['status']}  repo {entry['repo']}@{entry['revision']}  "
            f"{entry['backbone']} / {entry['method']} on {entry['dataset']}  stage {entry['stage']} "
            f"({entry['kind']}) at {entry['resolution']} px"
        )
        line(f"  measured: {_fmt_metrics(entry['metrics'])}   sha256 {entry['sha256'] or '–'}")
        for key in ("recipe", "source_run", "paper", "notes"):
            if entry.get(key):
                line(f"  {key}: {entry[key]}")
    else:
        out.print("  not in the catalogue")
    if local:
        idmm = local["idmm"] if isinstance(local["idmm"], dict) else {}
        source = local["source"] if isinstance(local["source"], dict) else {}
        line(f"  local: {local['path']}")
        line(f"  files: {', '.join(f'{k} ({v:,} B)' for k, v in local['files'].items())}")
        verified = "matches its recorded sha256" if local.get("verified") else "no sha256 recorded: not verified"
        line(f"  weights sha256: {local.get('sha256') or '–'} ({verified})")
        line(f"  timm: {local['architecture']}  num_classes {local['num_classes']}  input {local['input_size']}")
        line(
            f"  idmm: {idmm.get('kind')} {idmm.get('backbone')} / {idmm.get('method')} on "
            f"{idmm.get('dataset')}, stage {idmm.get('stage')}; metrics {_fmt_metrics(idmm.get('metrics'))}"
        )
        origin = (
            f"pulled from {source.get('repo')}@{str(source.get('commit'))[:12]}"
            if source.get("origin") == "pull"
            else f"pushed from run {source.get('run_name')} stage {source.get('stage')}"
        )
        published = source.get("published") if isinstance(source.get("published"), dict) else {}
        if published:
            origin += f"; published as {published.get('repo')}@{str(published.get('commit'))[:12]}"
        line(f"  source: {origin}")
        parent = idmm.get("parent") if isinstance(idmm.get("parent"), dict) else {}
        line(f"  parent: {parent.get('init') if parent else 'none (trained from scratch)'}")
    elif entry and entry["status"] != "published":
        out.print(f"  not in the local registry ({entry['status']}: nothing to pull yet)")
    else:
        line(f"  not in the local registry (fetch it with: idmm zoo pull {name})")


@zoo_app.command("verify")
def zoo_verify(
    name: Annotated[str | None, typer.Argument(help="local zoo model name \\[default: every local model]")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check local models' weights against the sha256 each one records (exit 4 when one differs).

    Weights are also checked whenever they are used (init = "zoo:NAME", zoo show, a pull's fallback);
    this checks them all at once, re-reading every file.
    """
    from idmm_tui.zoo.ops import verify_models
    from idmm_tui.zoo.registry import default_zoo_dir

    rows = verify_models(name)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    elif not rows:
        _say(f"no local zoo models in {default_zoo_dir()}")
    else:
        style = {"ok": "green", "mismatch": "bold red", "unreadable": "bold red", "unverifiable": "yellow"}
        for r in rows:
            detail = f"  {r['detail']}" if r["detail"] else ""
            out = Console()
            out.print(
                f"[{style[r['status']]}]{r['status']:12s}[/] {_s(r['name'])}  sha256 {r['sha256'] or '–'}{_s(detail)}",
                highlight=False,
                soft_wrap=True,
            )
    bad = [r for r in rows if r["status"] in ("mismatch", "unreadable")]
    if bad:
        from idmm_tui.zoo.errors import IntegrityError

        first = bad[0]
        what = (
            f"{first['path']} has sha256 {first['sha256']} but {first['detail']}"
            if first["status"] == "mismatch"
            else f"{first['path']} cannot be read ({first['detail']})"
        )
        raise IntegrityError(f"{len(bad)} of {len(rows)} local model(s) failed verification: {what}")


@zoo_app.command("pull")
def zoo_pull(
    ref: Annotated[str, typer.Argument(help="catalogue NAME or Hub repo ORG/REPO", metavar="NAME|ORG/REPO")],
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision", help="branch, tag or commit \\[default: the catalogue's pinned revision, else main]"
        ),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="local name \\[default: NAME or REPO]")] = None,
    force: Annotated[bool, typer.Option("--force", help="replace a local model of that name from elsewhere")] = False,
    endpoint: EndpointOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download a model into the local registry (sha256-checked against the catalogue, installed atomically).

    Examples:

      idmm zoo pull pvtv2-b0-flowers

      idmm zoo pull my-org/vit-micro-embedded --revision v1

      idmm zoo pull my-org/x --endpoint http://hub.internal:8080
    """
    from idmm_tui.zoo.ops import pull_model

    result = pull_model(ref, revision=revision, name=name, force=force, endpoint=endpoint, token=token, say=_say)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")


@zoo_app.command("push")
def zoo_push(
    run_dir: Annotated[str, typer.Argument(help="run directory (or run name under --runs-dir)")],
    stage: Annotated[str | None, typer.Option("--stage", help="stage to export \\[default: the last finished]")] = None,
    name: Annotated[str | None, typer.Option("--name", help="zoo name \\[default: <run>-<stage>]")] = None,
    repo: Annotated[str | None, typer.Option("--repo", help="also upload to this Hub repo (ORG/NAME)")] = None,
    private: Annotated[bool, typer.Option("--private", help="create the Hub repo private")] = False,
    force: Annotated[bool, typer.Option("--force", help="replace a local model of that name")] = False,
    backbone_only: Annotated[
        bool, typer.Option("--backbone-only", help="drop a fine-tuned stage's classifier head")
    ] = False,
    license: Annotated[
        str | None,
        typer.Option(
            "--license", help="model card licence \\[default: from the dataset: mit for the embedded data, else other]"
        ),
    ] = None,
    runs_dir: Annotated[
        Path | None,
        typer.Option(
            "--runs-dir", help="where run names are looked up \\[default: $IDMM_RUNS_DIR or ./runs]", show_default=False
        ),
    ] = None,
    endpoint: EndpointOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a run's stage to the local registry (timm layout + model card); with --repo, upload it.

    Examples:

      idmm zoo push runs/demo-20261126-120000 --stage pretrain --name vit-micro-embedded-idmm

      idmm zoo push runs/flowers-… --name pvtv2-b0-flowers --repo my-org/pvtv2-b0-flowers --private
    """
    from idmm_tui.zoo.ops import push_run

    result = push_run(
        run_dir,
        runs_dir=runs_dir.expanduser() if runs_dir else None,
        stage=stage,
        name=name,
        repo=repo,
        private=private,
        force=force,
        backbone_only=backbone_only,
        license=license,
        endpoint=endpoint,
        token=token,
        say=_say,
    )
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")


@zoo_app.command("rm")
def zoo_rm(name: Annotated[str, typer.Argument(help="local zoo model name")]) -> None:
    """Delete a model from the local registry (the Hub is not touched)."""
    from idmm_tui.zoo.ops import remove_model

    path = remove_model(name)
    _say(f"removed {name} ({path})")
