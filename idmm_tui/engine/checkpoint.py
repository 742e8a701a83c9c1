"""Checkpoints: tensors in safetensors, trainer state in JSON, both written atomically.

A checkpoint named ``X`` is ``X.safetensors`` (weights, optimiser moments, RNG states — tensors
only, never pickle) plus ``X.json`` (trainer state, and the sha256 of the tensor file). Loading
checks the hash first: a truncated or corrupt file is reported, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, load_file, save_file

from idmm_tui.errors import CheckpointError
from idmm_tui.fsutil import atomic_write, atomic_write_json, read_text_file, sha256_file

FORMAT = "idmm-checkpoint/1"


def save_checkpoint(
    path_stem: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any], *, versioned: bool = False
) -> None:
    """Write the tensors, then ``<stem>.json`` (the JSON last: it commits the pair).

    ``versioned=False``: the tensors go to ``<stem>.safetensors`` (a stage's final weights, read by name).
    ``versioned=True`` (the resumable ``last`` checkpoint, rewritten during training): each save writes
    a new ``<stem>.<n>.safetensors`` and only then switches the JSON to it, so a crash at any moment
    leaves a JSON whose tensors match it; superseded tensor files are removed after the switch.
    """
    path_stem = Path(path_stem)
    if versioned:
        weights = path_stem.with_name(f"{path_stem.name}.{time.time_ns()}.safetensors")
    else:
        weights = path_stem.with_suffix(".safetensors")
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(weights, lambda tmp: save_file(clean, str(tmp), metadata={"format": FORMAT}))
    meta = dict(state, format=FORMAT, weights=weights.name, sha256=sha256_file(weights))
    atomic_write_json(path_stem.with_suffix(".json"), meta)
    if versioned:
        for old in path_stem.parent.glob(f"{path_stem.name}.*.safetensors"):
            if old.name != weights.name:
                old.unlink(missing_ok=True)


def weights_path(path_stem: Path, state: dict[str, Any]) -> Path:
    """The tensor file a checkpoint's JSON designates (same folder; no path may escape it)."""
    name = Path(str(state.get("weights") or Path(path_stem).name + ".safetensors")).name
    return Path(path_stem).parent / name


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _str(v: Any) -> bool:
    return isinstance(v, str)


#: The type of each field a checkpoint's JSON may hold (stage weights and the resumable ``last``).
STATE_FIELDS: dict[str, Any] = {
    "format": _str,
    "weights": _str,
    "sha256": _str,
    "stage": _str,
    "kind": _str,
    "backbone": _str,
    "run": _str,
    "saved_at": _str,
    "resolution": lambda v: _int(v) and v > 0,
    "num_classes": _int,
    "classes": lambda v: isinstance(v, list) and all(_str(c) for c in v),
    "metrics": lambda v: isinstance(v, dict),
    "stage_index": _int,
    "stage_done": lambda v: isinstance(v, bool),
    "epoch": _int,
    "step_in_epoch": _int,
    "global_step": _int,
    "wall_time_s": lambda v: _num(v) and v >= 0,
    "world_size": lambda v: _int(v) and v >= 1,
    "accumulators": lambda v: isinstance(v, dict) and all(_num(x) for x in v.values()),
}
#: What a resumable checkpoint must hold.
RESUME_FIELDS = ("stage", "stage_index", "stage_done", "epoch", "step_in_epoch", "global_step", "accumulators")
_ACCUMULATORS = (
    "epoch_loss",
    "epoch_steps",
    "epoch_images",
    "epoch_time",
    "window_loss",
    "window_steps",
    "window_images",
    "window_time",
)


def read_state(path_stem: Path) -> dict[str, Any]:
    """The JSON trainer state of a checkpoint (CheckpointError when missing, unreadable or of the wrong shape)."""
    meta_path = Path(path_stem).with_suffix(".json")
    try:
        meta = json.loads(read_text_file(meta_path))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint state {meta_path} is missing") from None
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"checkpoint state {meta_path} is unreadable ({exc}); not loaded") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        shown = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{meta_path} is not an idmm checkpoint (format {shown!r})")
    bad = [k for k, check in STATE_FIELDS.items() if k in meta and not check(meta[k])]
    if bad:
        raise CheckpointError(
            f"checkpoint state {meta_path} is damaged: {', '.join(repr(k) for k in bad)} "
            f"{'has' if len(bad) == 1 else 'have'} the wrong type or value; not loaded"
        )
    return meta


def read_resume_state(path_stem: Path) -> dict[str, Any]:
    """:func:`read_state` of a resumable checkpoint: every field a resume needs is there, of its type."""
    meta = read_state(path_stem)
    meta_path = Path(path_stem).with_suffix(".json")
    missing = [k for k in RESUME_FIELDS if k not in meta]
    accumulators = meta.get("accumulators")
    if not missing and sorted(accumulators) != sorted(_ACCUMULATORS):
        missing = ["accumulators." + k for k in sorted(set(_ACCUMULATORS) ^ set(accumulators))]
    if missing:
        raise CheckpointError(
            f"checkpoint state {meta_path} is damaged: it lacks or has extra {', '.join(missing)}; not resumed"
        )
    return meta


def load_checkpoint(path_stem: Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, state) after verifying the tensor file's sha256 against the state."""
    meta = read_state(path_stem)
    weights = weights_path(path_stem, meta)
    if not weights.is_file():
        raise CheckpointError(f"checkpoint weights {weights} are missing; not loaded")
    actual = sha256_file(weights)
    if actual != meta.get("sha256"):
        raise CheckpointError(
            f"checkpoint {weights} is corrupt or truncated (sha256 {actual[:12]}… expected "
            f"{str(meta.get('sha256'))[:12]}…); it was not loaded"
        )
    try:
        tensors = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {weights} cannot be read ({exc}); not loaded") from None
    return tensors, meta


def load_weights(
    path: Path, device: str | torch.device = "cpu", *, expected_sha256: str | None = None, recorded_in: str = ""
) -> dict[str, torch.Tensor]:
    """Tensors of a bare safetensors file (e.g. a zoo model), with a clear error when it is damaged.

    With ``expected_sha256`` the bytes are hashed as they are read and loaded only when they match
    (``recorded_in`` names where that hash comes from, for the message): what is checked is what is used.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        if expected_sha256 is None:
            tensors = load_file(str(path), device=str(device))
        else:
            data = path.read_bytes()
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected_sha256:
                where = f" {recorded_in}" if recorded_in else ""
                raise CheckpointError(
                    f"weights file {path} has sha256 {actual} but{where} records {expected_sha256}: it changed "
                    "after it was written; not loaded"
                )
            tensors = {k: v.to(device) for k, v in load(data).items()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"weights file {path} is corrupt or not safetensors ({exc}); not loaded") from None
    return tensors


# ---------------------------------------------------------------------------------------------
# optimiser state <-> flat tensors


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """AdamW moments and step counts as ``optim.<param index>.<name>`` tensors."""
    out: dict[str, torch.Tensor] = {}
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            out[f"optim.{index}.{name}"] = tensor
    return out


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`optimizer_tensors` (param groups come from the optimiser as built)."""
    current = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if not key.startswith("optim."):
            continue
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    current["state"] = state
    optimizer.load_state_dict(current)


def rng_tensors(generators: dict[str, torch.Generator]) -> dict[str, torch.Tensor]:
    """RNG states (global CPU, CUDA when present, and named generators) as uint8 tensors."""
    out = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["rng.cuda"] = torch.cuda.get_rng_state()
    for name, gen in generators.items():
        out[f"rng.{name}"] = gen.get_state()
    return out


def restore_rng(tensors: dict[str, torch.Tensor], generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(tensors["rng.torch"].cpu())
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"].cpu())
    for name, gen in generators.items():
        gen.set_state(tensors[f"rng.{name}"].cpu())
