"""Where a recipe's ``init`` points: a run directory, an exported model folder, or a zoo name.

Every form resolves to a function returning tensors keyed ``backbone.*`` (and ``head.*`` when the
source has a classifier head), read from safetensors only (no pickle, ever).

* a run directory: the weights of its last finished stage (``checkpoints/<stage>.safetensors``);
* a folder in timm's hub layout (``model.safetensors`` + ``config.json``): timm keys, the head
  being ``head.*`` / ``fc.*``;
* a ``.safetensors`` file of either kind;
* ``zoo:NAME``: a model of the local zoo registry (see ``idmm zoo``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from idmm_tui.engine import checkpoint as ckpt
from idmm_tui.errors import CheckpointError, IdmmError, UsageError
from idmm_tui.fsutil import sha256_cached, sha256_file
from idmm_tui.runs.store import CHECKPOINTS, RunDir, read_json

HEAD_PREFIXES = ("head.", "fc.", "classifier.")


def _as_two_part(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm-layout keys -> ``backbone.*`` / ``head.*`` (already prefixed keys pass through)."""
    if any(k.startswith("backbone.") for k in tensors):
        return tensors
    out = {}
    for key, value in tensors.items():
        head = next((p for p in HEAD_PREFIXES if key.startswith(p)), None)
        out["head." + key[len(head) :] if head else "backbone." + key] = value
    return out


def _last_stage_weights(run_path: Path) -> Path:
    run = RunDir(run_path)
    summary = run.load_summary()  # checked: a damaged summary is named, not misread
    stages = summary.get("stages") or {}
    finished = [s["name"] for s in summary.get("plan") or [] if s.get("name") in stages]
    if not finished:
        raise UsageError(f"init: run {run_path} has no finished stage to start from")
    return run.stage_weights(finished[-1])


def resolve_init_path(init: str) -> Path:
    """The safetensors file an ``init`` reference designates (UsageError when there is none)."""
    if init.startswith("zoo:"):
        try:
            from idmm_tui.zoo.registry import local_model_dir
        except ImportError:
            raise UsageError("init: 'zoo:' references need the model zoo, not in this version") from None
        folder = local_model_dir(init.removeprefix("zoo:"))
        return folder / "model.safetensors"
    path = Path(init).expanduser()
    if path.is_file() and path.suffix == ".safetensors":
        return path
    if path.is_file():
        raise UsageError(
            f"init: {path} is a {path.suffix or 'suffix-less'} file; only safetensors weights are read (a pickled "
            "checkpoint such as .pt/.pth/.bin can run code when loaded). Give 'zoo:NAME', a run directory, a model "
            "folder with model.safetensors or a .safetensors file (convert with safetensors.torch.save_file)"
        )
    if path.is_dir():
        if (path / "summary.json").is_file():
            return _last_stage_weights(path)
        if (path / "model.safetensors").is_file():
            return path / "model.safetensors"
        raise UsageError(f"init: {path} is neither a run directory nor a model folder with model.safetensors")
    raise UsageError(
        f"init: {init!r} not found (expected 'zoo:NAME', a run directory, a model folder or a .safetensors file)"
    )


def expected_sha256(path: Path) -> tuple[str | None, str]:
    """The sha256 that the weights at ``path`` must have and where it is recorded: a run's stage
    checkpoint JSON, or a model folder's source.json / config.json; (None, "") when nothing records one."""
    folder = path.parent
    if folder.name == CHECKPOINTS and path.with_suffix(".json").is_file():
        meta = ckpt.read_state(path.with_suffix(""))
        return (meta.get("sha256") or None), str(path.with_suffix(".json"))
    if path.name == "model.safetensors":
        from idmm_tui.zoo.registry import recorded_sha256

        records = recorded_sha256(folder)
        values = {v for _, v in records}
        if len(values) > 1:
            raise CheckpointError(
                f"init: {folder} records two different sha256 for its weights ({', '.join(sorted(values))}); refused"
            )
        if records:
            return records[0][1], records[0][0]
    return None, ""


def init_loader(init: str) -> Callable[[], dict[str, torch.Tensor]]:
    """A loader for the ``init`` weights; resolves (and validates) the reference now.

    Weights whose folder records a sha256 (zoo models, exported folders, a run's stage checkpoint) are
    checked now, and again as they are loaded: a file that changed on disk is refused, naming both hashes.
    """
    path = resolve_init_path(init)
    if not path.is_file():
        raise UsageError(f"init: weights file {path} does not exist")
    expected, where = expected_sha256(path)
    if expected is not None:
        actual = sha256_cached(path)
        if actual != expected:
            raise CheckpointError(
                f"init {init}: {path} has sha256 {actual} but {where} records {expected}: the weights changed "
                "after they were written; refused"
            )

    def load() -> dict[str, torch.Tensor]:
        return _as_two_part(ckpt.load_weights(path, expected_sha256=expected, recorded_in=where))

    return load


def init_lineage(init: str) -> dict:
    """What a model card needs to name the parent of a run started from ``init``; never raises.

    ``{"init": <the reference>}`` plus, when it still resolves, the parent's sha256 and what its
    folder says about it: zoo name, Hub repo / revision / commit (``source.json`` of the zoo
    registry), backbone, method, dataset, stage (``config.json``'s ``idmm`` section or the parent
    run's summary). No local path is recorded (this goes into published model cards).
    """
    if not init:
        return {}
    parent: dict = {"init": init if init.startswith("zoo:") else Path(init).name}
    if init.startswith("zoo:"):
        parent["zoo_name"] = init.removeprefix("zoo:")
    try:
        path = resolve_init_path(init)
    except IdmmError:
        return parent  # the parent is gone here: the reference alone still names it
    if path.is_file():
        parent["sha256"] = sha256_file(path)
    folder = path.parent
    section = read_json(folder / "config.json").get("idmm")
    if isinstance(section, dict):
        for key in ("name", "kind", "backbone", "method", "dataset", "stage", "resolution"):
            if section.get(key) is not None:
                parent[key] = section[key]
    source = read_json(folder / "source.json")
    published = source.get("published") if isinstance(source.get("published"), dict) else {}
    for key in ("repo", "revision", "commit"):
        value = source.get(key) or published.get(key)
        if value:
            parent[key] = value
    if folder.name == CHECKPOINTS:  # a run directory: its last finished stage
        summary = read_json(folder.parent / "summary.json")
        parent.update({k: summary[k] for k in ("backbone", "method", "dataset") if summary.get(k)})
        parent["run"] = folder.parent.name
        parent["stage"] = path.stem
    return parent
