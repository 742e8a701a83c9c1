"""The zoo's user operations — list, show, push, pull, remove — as plain functions over the modules.

The CLI (``idmm zoo …``) and any other front end call these; they print nothing themselves and
report progress through an optional ``say(text)`` callback. Every failure is an :class:`IdmmError`
with a one-line message, raised before anything in the registry changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from idmm_tui.errors import UsageError, suggest
from idmm_tui.fsutil import sha256_file
from idmm_tui.runs.store import default_runs_dir, now_iso, resolve_run
from idmm_tui.zoo import catalogue as cat
from idmm_tui.zoo import hub as hub_mod
from idmm_tui.zoo import registry as reg
from idmm_tui.zoo.errors import HubError, HubUnreachableError, IntegrityError

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# ---------------------------------------------------------------------------------------------
# list / show / rm


def _obj(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else ``{}`` (a model folder's files may hold anything)."""
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _local_row(model: reg.LocalModel) -> dict[str, Any]:
    idmm, source = model.idmm, model.source()
    published = _obj(source.get("published"))
    return {
        "name": model.name,
        "status": "local",
        "local": True,
        "path": str(model.path),
        "repo": source.get("repo") or published.get("repo") or "",
        "origin": source.get("origin"),
        "backbone": idmm.get("backbone"),
        "method": idmm.get("method"),
        "dataset": idmm.get("dataset"),
        "stage": idmm.get("stage"),
        "kind": idmm.get("kind"),
        "resolution": idmm.get("resolution"),
        "metrics": idmm.get("metrics") or {},
        "sha256": source.get("sha256") or idmm.get("weights_sha256"),
    }


def list_models(zoo_dir: Path | None = None) -> list[dict[str, Any]]:
    """Catalogue entries (marking those present locally), then local models the catalogue lacks."""
    catalogue = cat.load_catalogue()
    local = {m.name: m for m in reg.list_local(zoo_dir)}
    rows = []
    for entry in catalogue.values():
        row = entry.as_dict()
        model = local.pop(entry.name, None)
        row["local"] = model is not None
        row["path"] = str(model.path) if model else ""
        if model is not None:
            local_sha = _local_row(model)["sha256"]
            row["local_sha256"] = local_sha
            row["local_matches"] = bool(entry.sha256) and local_sha == entry.sha256
        rows.append(row)
    rows.extend(_local_row(m) for m in local.values())
    return rows


def show_model(name: str, zoo_dir: Path | None = None) -> dict[str, Any]:
    """Everything known about ``name``: its catalogue entry and/or its local folder."""
    reg.check_name(name)
    entry = cat.load_catalogue().get(name)
    model = reg.find_local(name, zoo_dir)
    if entry is None and model is None:
        _unknown(name, zoo_dir)
    out: dict[str, Any] = {"name": name, "catalogue": entry.as_dict() if entry else None, "local": None}
    if model is not None:
        sha = reg.verify_weights(model.path, f"zoo model {name!r}")  # a changed file is refused, not shown
        config = model.config()
        out["local"] = {
            "path": str(model.path),
            "source": model.source(),
            "files": {p.name: p.stat().st_size for p in sorted(model.path.iterdir()) if p.is_file()},
            "architecture": config.get("architecture"),
            "num_classes": config.get("num_classes"),
            "model_args": config.get("model_args"),
            "input_size": _obj(config.get("pretrained_cfg")).get("input_size"),
            "idmm": {k: v for k, v in model.idmm.items() if k != "recipe"},
            "sha256": sha,
            "verified": sha is not None,
        }
    return out


def verify_models(name: str | None = None, zoo_dir: Path | None = None) -> list[dict[str, Any]]:
    """Check the weights of one local model (``name``) or of all of them against the sha256 each records.

    One row per model: ``name``, ``path``, ``status`` (``ok``, ``mismatch``, ``unverifiable`` when the
    folder records no hash, ``unreadable``), ``sha256`` (actual), ``expected`` and ``detail``. Never raises
    for a bad model (the caller decides the exit code); an unknown ``name`` is a UsageError.
    """
    from idmm_tui.fsutil import sha256_file

    if name is not None:
        model = reg.find_local(name, zoo_dir)
        if model is None:
            raise UsageError(
                f"zoo model {name!r} is not in the local registry ({zoo_dir or reg.default_zoo_dir()}); "
                "see: idmm zoo list"
            )
        models = [model]
    else:
        models = reg.list_local(zoo_dir)
    rows = []
    for model in models:
        row: dict[str, Any] = {"name": model.name, "path": str(model.weights), "sha256": None, "expected": None}
        records = reg.recorded_sha256(model.path)
        try:
            actual = sha256_file(model.weights)  # verify re-reads the bytes: no cache
        except OSError as exc:
            rows.append(dict(row, status="unreadable", detail=str(exc)))
            continue
        row["sha256"] = actual
        wrong = [(where, value) for where, value in records if value != actual]
        if not records:
            rows.append(dict(row, status="unverifiable", detail="no sha256 recorded in source.json or config.json"))
        elif wrong:
            where, value = wrong[0]
            rows.append(dict(row, status="mismatch", expected=value, detail=f"{where} records {value}"))
        else:
            rows.append(dict(row, status="ok", expected=records[0][1], detail=""))
    return rows


def _unknown(name: str, zoo_dir: Path | None) -> None:
    known = list(cat.load_catalogue()) + [m.name for m in reg.list_local(zoo_dir)]
    hint = suggest(name, known)
    hint_text = f" Did you mean {', '.join(repr(h) for h in hint)}?" if hint else ""
    raise UsageError(
        f"unknown zoo model {name!r}: not in the catalogue nor in the local registry "
        f"({zoo_dir or reg.default_zoo_dir()}).{hint_text} See: idmm zoo list"
    )


def remove_model(name: str, zoo_dir: Path | None = None) -> Path:
    """Delete the local copy of ``name`` (the Hub and the catalogue are not touched)."""
    if reg.find_local(name, zoo_dir) is None:
        raise UsageError(
            f"zoo model {name!r} is not in the local registry ({zoo_dir or reg.default_zoo_dir()}); "
            "nothing to remove (see: idmm zoo list)"
        )
    return reg.remove(name, zoo_dir)


# ---------------------------------------------------------------------------------------------
# push


def push_run(
    run_ref: str | Path,
    *,
    runs_dir: Path | None = None,
    stage: str | None = None,
    name: str | None = None,
    repo: str | None = None,
    private: bool = False,
    force: bool = False,
    backbone_only: bool = False,
    license: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    zoo_dir: Path | None = None,
    say: Say = _quiet,
) -> dict[str, Any]:
    """Export a run's stage into the local registry; with ``repo``, upload it to the Hub too."""
    from idmm_tui.zoo.export import export_stage, pick_stage  # torch: only the command that exports needs it

    run = resolve_run(str(run_ref), runs_dir or default_runs_dir())
    summary = run.read_summary()
    stage = pick_stage(run, summary, stage)
    name = reg.check_name(name or f"{run.name}-{stage}")
    hub = None
    if repo:
        hub_mod.check_repo_id(repo)
        hub = hub_mod.make_hub(endpoint, token)
        if not hub.token:
            raise HubError(
                "no Hub token: pass --token, set $HF_TOKEN or log in with 'hf auth login' "
                "(pushing needs a token with write access); nothing was written"
            )
    source = {
        "origin": "push",
        "run": str(run.path.resolve()),
        "run_name": run.name,
        "stage": stage,
        "backbone_only": backbone_only,
    }
    existing = reg.find_local(name, zoo_dir)
    if existing is not None and not force:
        old = existing.source()
        same = all(old.get(k) == v for k, v in source.items())
        if not same:
            what = (
                f"run {old.get('run_name')} stage {old.get('stage')}"
                if old.get("origin") == "push"
                else f"{old.get('repo') or 'elsewhere'}"
            )
            raise UsageError(
                f"zoo model {name!r} already exists (from {what}); choose another --name, or replace it with --force"
            )
    with reg.staging(zoo_dir) as tmp:
        exported = export_stage(
            run, tmp, name=name, stage=stage, backbone_only=backbone_only, repo=repo, license=license
        )
        reg.write_source(tmp, dict(source, sha256=exported.sha256, created_at=now_iso()))
        model = reg.install(tmp, name, replace=existing is not None, zoo_dir=zoo_dir)
    say(f"saved {name} ({exported.kind}, stage {stage}, sha256 {exported.sha256[:12]}…) in {model.path}")
    result: dict[str, Any] = {
        "name": name,
        "path": str(model.path),
        "stage": stage,
        "kind": exported.kind,
        "sha256": exported.sha256,
        "repo": None,
        "commit": None,
        "url": None,
    }
    entry = cat.load_catalogue().get(name)
    if entry is not None and entry.sha256:
        same = entry.sha256 == exported.sha256
        result["catalogue_match"] = same
        say(f"catalogue entry {name}: sha256 {'matches' if same else 'DIFFERS from'} the catalogue's")
    if hub is not None and repo:
        say(f"uploading to {repo} on {hub.shown} …")
        try:
            pushed = hub_mod.push_folder(
                hub, model.path, repo, private=private, message=f"idmm zoo push {name}: run {run.name}, stage {stage}"
            )
        except HubError as exc:
            raise type(exc)(f"{exc} (the model is saved locally as {name}; retry the push later)") from None
        src = model.source()
        src["published"] = {"repo": repo, "commit": pushed.commit, "endpoint": hub.shown, "published_at": now_iso()}
        reg.write_source(model.path, src)
        result.update(repo=repo, commit=pushed.commit, url=pushed.url)
        say(f"pushed {name} to {repo} (commit {pushed.commit[:12]}): {pushed.url}")
    return result


# ---------------------------------------------------------------------------------------------
# pull


def _resolve_ref(ref: str, name: str | None, zoo_dir: Path | None) -> tuple[str, str, cat.CatalogueEntry | None]:
    """(repo, local name, catalogue entry) for ``NAME`` or ``ORG/REPO``."""
    catalogue = cat.load_catalogue()
    if "/" in ref or ref.startswith((".", "~")):
        if not cat.is_repo_id(ref):
            raise UsageError(f"invalid zoo name or Hub repo id {ref!r}: expected NAME or ORG/REPO")
        entry = cat.find_by_repo(catalogue, ref)
        local_name = name or (entry.name if entry else ref.split("/", 1)[1])
        return ref, reg.check_name(local_name), entry
    reg.check_name(ref)
    entry = catalogue.get(ref)
    if entry is None:
        local = reg.find_local(ref, zoo_dir)
        source = local.source() if local else {}
        repo = _text(source.get("repo")) or _text(_obj(source.get("published")).get("repo"))
        if not repo:
            _unknown(ref, zoo_dir)
        return repo, reg.check_name(name or ref), None
    if not entry.pullable:
        local = reg.find_local(name or ref, zoo_dir)
        if local is not None:
            return "", reg.check_name(name or ref), entry  # nothing to fetch: pull_model reports the local copy
        how = (
            f"reproduce it with: idmm run {entry.recipe}, then idmm zoo push RUN_DIR --stage {entry.stage} --name {ref}"
            if entry.recipe
            else "it has no weights yet"
        )
        raise UsageError(f"zoo model {ref!r} is {entry.status}: it is not on the Hub ({how})")
    return entry.repo, reg.check_name(name or ref), entry


def verify_download(folder: Path, repo: str, commit: str, expected_sha256: str | None) -> str:
    """sha256 of the weights after checking them against the catalogue / the config; raises on mismatch."""
    weights, config_path = folder / reg.WEIGHTS, folder / reg.CONFIG
    actual = sha256_file(weights)
    at = f"{repo}@{commit[:12]}"
    if expected_sha256 and actual != expected_sha256:
        raise IntegrityError(
            f"{reg.WEIGHTS} of {at} has sha256 {actual[:12]}… but the catalogue pins "
            f"{expected_sha256[:12]}…: refused, nothing installed"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise IntegrityError(f"{reg.CONFIG} of {at} is not valid JSON: refused, nothing installed") from None
    if not isinstance(config, dict) or not config.get("architecture"):
        raise IntegrityError(f"{reg.CONFIG} of {at} names no architecture: not a timm model folder; refused")
    declared = (config.get("idmm") or {}).get("weights_sha256") if isinstance(config.get("idmm"), dict) else None
    if declared and declared != actual:
        raise IntegrityError(
            f"{reg.WEIGHTS} of {at} has sha256 {actual[:12]}… but its config.json records "
            f"{str(declared)[:12]}…: refused, nothing installed"
        )
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as handle:
            if not list(handle.keys()):
                raise ValueError("no tensors")
    except Exception as exc:  # any parse failure means "not safetensors"
        raise IntegrityError(f"{reg.WEIGHTS} of {at} is not a readable safetensors file ({exc}); refused") from None
    return actual


def pull_model(
    ref: str,
    *,
    revision: str | None = None,
    name: str | None = None,
    force: bool = False,
    endpoint: str | None = None,
    token: str | None = None,
    zoo_dir: Path | None = None,
    say: Say = _quiet,
) -> dict[str, Any]:
    """Download ``NAME`` (catalogue) or ``ORG/REPO`` into the local registry, verified and atomically."""
    repo, local_name, entry = _resolve_ref(ref, name, zoo_dir)
    if entry is not None and not entry.pullable:
        model = reg.find_local(local_name, zoo_dir)
        if model is not None:
            reg.verify_weights(model.path, f"zoo model {local_name!r}")
        sha = model.source().get("sha256") if model else None
        match = "matches" if sha and sha == entry.sha256 else "does NOT match"
        say(
            f"{ref} is {entry.status} (not on the Hub); the local copy in {model.path} ({match} the catalogue's "
            f'sha256) is what init = "zoo:{local_name}" uses'
        )
        return {
            "name": local_name,
            "repo": None,
            "revision": None,
            "path": str(model.path),
            "commit": None,
            "sha256": sha,
            "fallback": True,
        }
    rev = revision or (entry.revision if entry else "main")
    expected = entry.sha256 if entry is not None and entry.pullable and rev == entry.revision else None
    if entry is not None and not expected:
        say(
            f"revision {rev!r} differs from the catalogue's pinned {entry.revision!r}: sha256 not checked "
            "against the catalogue"
        )
    existing = reg.find_local(local_name, zoo_dir)
    if existing is not None and not force:
        old = existing.source()
        old_repo = _text(old.get("repo")) or _text(_obj(old.get("published")).get("repo"))
        if old_repo.lower() != repo.lower():
            origin = f"pulled from {old_repo}" if old_repo else "pushed from a local run"
            raise UsageError(
                f"zoo model {local_name!r} already exists locally ({origin}); pull under another "
                "--name, or replace it with --force"
            )
    hub = hub_mod.make_hub(endpoint, token)
    result = {"name": local_name, "repo": repo, "revision": rev}
    try:
        hub_mod.check_reachable(hub.endpoint)
        with reg.staging(zoo_dir) as tmp:
            say(f"pulling {repo}@{rev} from {hub.shown} …")
            pulled = hub_mod.download(hub, repo, tmp, revision=rev)
            sha = verify_download(tmp, repo, pulled.commit, expected)
            reg.write_source(
                tmp,
                {
                    "origin": "pull",
                    "repo": repo,
                    "revision": rev,
                    "commit": pulled.commit,
                    "endpoint": hub.shown,  # never credentials, even when the endpoint URL carries them
                    "sha256": sha,
                    "pulled_at": now_iso(),
                    "catalogue_verified": bool(expected),
                },
            )
            model = reg.install(tmp, local_name, replace=existing is not None, zoo_dir=zoo_dir)
    except HubUnreachableError as exc:
        if existing is None:
            raise
        reg.verify_weights(existing.path, f"the local copy of {local_name!r}")  # a fallback must be intact
        say(f"warning: {exc}; using the local copy of {local_name} in {existing.path}")
        return dict(
            result,
            path=str(existing.path),
            commit=existing.source().get("commit"),
            sha256=existing.source().get("sha256"),
            fallback=True,
        )
    checked = " (matches the catalogue)" if expected else ""
    say(f"pulled {repo}@{pulled.commit[:12]} as {local_name}: sha256 {sha[:12]}…{checked} in {model.path}")
    return dict(result, path=str(model.path), commit=pulled.commit, sha256=sha, fallback=False)
