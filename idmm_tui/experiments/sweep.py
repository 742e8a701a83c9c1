"""Sweeps: a grid of runs from one recipe, run one after another, resumable, reported as a group.

``idmm sweep RECIPE --axis pretrain.method=idmm,simclr,none --seeds 0,1,2`` expands to one cell per
combination of axis values (and seed). Every cell is an ordinary run directory
``<runs dir>/<group>.<cell>`` made by ``idmm run`` in a child process (so a crash or an
out-of-memory kill of one cell does not take the sweep down, and ``--launcher torchrun …`` runs
each cell on several GPUs). Re-running the same command skips finished cells, resumes interrupted
ones from their checkpoint and starts the rest.

A *transfer* sweep (``--source KEY=V1,V2``) first pretrains once per source setting (pretraining
stage only) and then fine-tunes every source checkpoint on every target cell (``init`` = the source
run, no pretraining stage): the shape of the paper's Table 5. Finished source runs are reused.
"""

from __future__ import annotations

import itertools
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idmm_tui.errors import CorruptFileError, RecipeError, RunStateError, UsageError, describe_os_error
from idmm_tui.experiments.groups import Cell, Group, check_group_name, load_group, manifest_path
from idmm_tui.recipe import load_raw, to_toml
from idmm_tui.runs.spawn import idmm_command
from idmm_tui.runs.store import RunDir, check_run_name, effective_status, read_json, summary_or_problem

SOURCE_PREFIX = "source:"
_UNSAFE = re.compile(r"[^A-Za-z0-9_+=-]+")


@dataclass(frozen=True)
class Axis:
    """One swept recipe key and its values (as typed: TOML literals or bare strings)."""

    key: str
    values: tuple[str, ...]


@dataclass
class SweepSpec:
    """What the user asked for; stored in the group manifest so that a sweep can be re-run by name."""

    recipe: str
    axes: list[Axis]
    seeds: list[int] | None = None
    overrides: list[str] | None = None
    sources: list[Axis] | None = None  # transfer sweep: the pretraining grid
    zipped: bool = False  # axes advance together (rows of an ablation table) instead of a product

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "axes": [{"key": a.key, "values": list(a.values)} for a in self.axes],
            "seeds": self.seeds,
            "overrides": list(self.overrides or []),
            "sources": [{"key": a.key, "values": list(a.values)} for a in self.sources or []],
            "zipped": self.zipped,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepSpec:
        def axes(items: list[dict[str, Any]]) -> list[Axis]:
            return [Axis(i["key"], tuple(i["values"])) for i in items or []]

        return cls(
            recipe=data["recipe"],
            axes=axes(data.get("axes", [])),
            seeds=data.get("seeds"),
            overrides=list(data.get("overrides") or []),
            sources=axes(data.get("sources", [])) or None,
            zipped=bool(data.get("zipped", False)),
        )


# ---------------------------------------------------------------------------------------------
# parsing


def split_values(text: str) -> list[str]:
    """``"a,b,[1,2]"`` -> ``["a", "b", "[1,2]"]``: commas inside brackets or quotes do not split."""
    out, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    out.append("".join(current).strip())
    return out


def parse_axis(text: str, option: str = "--axis") -> Axis:
    """``"pretrain.method=idmm,simclr"`` -> Axis; rejects empty values (repeats: see check_axes)."""
    key, sep, values_text = text.partition("=")
    key = key.strip()
    if not sep or not key or not values_text.strip():
        raise UsageError(f"{option} expects KEY=V1,V2,… (e.g. pretrain.method=idmm,simclr), got {text!r}")
    values = split_values(values_text)
    if any(not v for v in values):
        raise UsageError(f"{option} {text!r}: empty value in the list")
    if key == "seed":
        raise UsageError(f"{option} seed=…: use --seeds 0,1,2 (seeds are averaged over, not a table axis)")
    return Axis(key, tuple(values))


def parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        seeds = [int(s) for s in split_values(text)]
    except ValueError:
        raise UsageError(f"--seeds expects integers separated by commas (e.g. 0,1,2), got {text!r}") from None
    if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise UsageError(f"--seeds {text!r}: seeds must be distinct non-negative integers")
    return seeds


def check_axes(axes: list[Axis], option: str = "--axis", zipped: bool = False) -> None:
    """No key twice; no value twice on an axis (with ``zipped``: no row twice)."""
    keys = [a.key for a in axes]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise UsageError(f"{option} {', '.join(sorted(dup))} given twice: put all its values in one {option}")
    if zipped:
        rows = list(_grid(axes, zipped=True))
        if len({tuple(r.items()) for r in rows}) != len(rows):
            raise UsageError("--zip: two rows have the same values")
        return
    for axis in axes:
        if len(set(axis.values)) != len(axis.values):
            raise UsageError(f"{option} {axis.key}: a value is repeated ({','.join(axis.values)})")


# ---------------------------------------------------------------------------------------------
# expansion into cells


def _label(key: str, keys: list[str]) -> str:
    """Short name of a key inside cell names: its last part unless two swept keys share it."""
    short = key.rsplit(".", 1)[-1]
    if sum(k.rsplit(".", 1)[-1] == short for k in keys) > 1:
        short = key.replace(".", "-")
    return short


def _slug(value: str) -> str:
    value = value.strip().strip("\"'")
    slug = _UNSAFE.sub("_", Path(value).name if "/" in value else value).strip("_")
    return slug or "x"


def _grid(axes: list[Axis], zipped: bool = False) -> Iterator[dict[str, str]]:
    """Every combination of the axes' values, or with ``zipped`` the i-th value of each axis together."""
    if zipped and len({len(a.values) for a in axes}) > 1:
        lengths = ", ".join(f"{a.key} has {len(a.values)}" for a in axes)
        raise UsageError(f"--zip needs the same number of values on every --axis ({lengths})")
    combos = zip(*(a.values for a in axes), strict=True) if zipped else itertools.product(*(a.values for a in axes))
    for combo in combos:
        yield dict(zip((a.key for a in axes), combo, strict=True))


def expand(spec: SweepSpec, group: str, runs_dir: Path) -> list[Cell]:
    """The cells of a sweep, in run order (sources first); names are unique and stable."""
    seeds: list[int | None] = list(spec.seeds) if spec.seeds is not None else [None]
    base = list(spec.overrides or [])
    cells: list[Cell] = []
    source_keys = [a.key for a in spec.sources or []]
    axis_keys = [a.key for a in spec.axes]
    source_runs: list[tuple[dict[str, str], int | None, Path | None]] = []
    if spec.sources:
        for seed, values in itertools.product(seeds, list(_grid(spec.sources))):
            if values.get("pretrain.method") == "none":  # random init: nothing to pretrain, one row
                none_values = dict.fromkeys(values, "none")
                if (none_values, seed, None) not in source_runs:
                    source_runs.append((none_values, seed, None))
                continue
            name = _cell_name(group, "src", values, source_keys, seed)
            overrides = (*base, *_assign(values), *_seed(seed), "finetune=[]")
            cells.append(Cell(name, {**values, **_seed_value(seed)}, overrides, role="source"))
            source_runs.append((values, seed, runs_dir.absolute() / name))
    else:
        source_runs.append(({}, None, None))
    for src_values, src_seed, src_path in source_runs:
        for seed, values in itertools.product(seeds, list(_grid(spec.axes, spec.zipped))):
            if spec.sources and seed != src_seed:
                continue
            shown = {f"{SOURCE_PREFIX}{k}": v for k, v in src_values.items()} | values
            label_keys = [f"{SOURCE_PREFIX}{k}" for k in source_keys] + axis_keys
            name = _cell_name(group, "", shown, label_keys, seed)
            transfer: tuple[str, ...] = ()
            if spec.sources:
                init = f'"{src_path}"' if src_path else '""'
                transfer = (f"init={init}", "pretrain.method=none")
            overrides = (*base, *_assign(values), *transfer, *_seed(seed))
            cells.append(Cell(name, {**shown, **_seed_value(seed)}, overrides, role="run"))
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        clash = sorted({n for n in names if names.count(n) > 1})
        raise UsageError(
            f"two cells would share a run name ({', '.join(clash)}): axis values differ only in "
            "characters that cannot appear in a directory name"
        )
    return cells


def _cell_name(group: str, prefix: str, values: dict[str, str], keys: list[str], seed: int | None) -> str:
    parts = [prefix] if prefix else []
    plain = [k for k in keys if not k.startswith(SOURCE_PREFIX)]
    parts += [
        f"from-{_slug(v)}" if k.startswith(SOURCE_PREFIX) else f"{_label(k, plain)}-{_slug(v)}"
        for k, v in values.items()
    ]
    if seed is not None:
        parts.append(f"s{seed}")
    parts = list(dict.fromkeys(parts))  # a random-init source is "from-none" once, not once per key
    return ".".join([group, *parts]) if parts else f"{group}.run"


def _assign(values: dict[str, str]) -> tuple[str, ...]:
    return tuple(f"{k}={v}" for k, v in values.items())


def _seed(seed: int | None) -> tuple[str, ...]:
    return () if seed is None else (f"seed={seed}",)


def _seed_value(seed: int | None) -> dict[str, str]:
    return {} if seed is None else {"seed": str(seed)}


# ---------------------------------------------------------------------------------------------
# planning: validate every cell before anything runs


@dataclass
class CellPlan:
    cell: Cell
    action: str  # "start", "resume", "skip" (completed), "busy" (running elsewhere)
    detail: str = ""


def plan(group: Group, recipe_path: Path) -> list[CellPlan]:
    """What each cell needs; raises before anything runs when a cell's recipe is invalid or a
    finished run of the same name was made from a different recipe."""
    from idmm_tui.launch import recipe_digest, resolve_recipe

    plans = []
    for cell in group.cells:
        recipe = resolve_recipe(recipe_path, list(cell.overrides))
        digest = recipe_digest(to_toml(recipe))
        path = group.run_path(cell)
        if not path.exists():
            plans.append(CellPlan(cell, "start"))
            continue
        summary, problem = summary_or_problem(RunDir(path))
        if problem and (path / "recipe.toml").is_file():
            raise CorruptFileError(
                f"cell {cell.name}: {path / 'summary.json'} is unreadable ({problem}); restore it or remove {path}"
            )
        if not summary:
            raise RunStateError(f"{path} exists but is not an idmm run; move it away or choose another --group")
        if _existing_digest(path / "recipe.toml") != digest:
            raise RunStateError(
                f"cell {cell.name} already has a run made from a different recipe (the recipe file or --set "
                f"changed since). Start a new group (--group NAME) or remove {path}"
            )
        status = effective_status(summary)
        if status == "completed":
            plans.append(CellPlan(cell, "skip", f"test_acc {summary.get('test_acc')}"))
        elif status == "running":
            plans.append(CellPlan(cell, "busy", f"running in pid {summary.get('pid')}"))
        else:
            plans.append(CellPlan(cell, "resume", status))
    return plans


def _existing_digest(recipe_file: Path) -> str:
    """The digest of an existing run's recipe as this version resolves it (so that a key added to
    the recipe schema since, with its default, does not count as a change)."""
    from idmm_tui.errors import IdmmError
    from idmm_tui.launch import recipe_digest, resolve
    from idmm_tui.recipe import parse_saved_recipe

    try:
        saved = parse_saved_recipe(recipe_file.read_text(encoding="utf-8"), str(recipe_file))
        return recipe_digest(to_toml(resolve(saved, str(recipe_file))))
    except (IdmmError, OSError):
        return ""


def prepare(spec: SweepSpec, group_name: str, runs_dir: Path) -> tuple[Group, list[CellPlan]]:
    """Expand and validate a sweep (``run_sweep`` writes the manifest, so a sweep with an invalid cell
    leaves no trace)."""
    check_group_name(group_name)
    check_axes(spec.axes, zipped=spec.zipped)
    check_axes(spec.sources or [], "--source")
    recipe_path = Path(spec.recipe)
    load_raw(recipe_path)  # a clear error for a missing/invalid file before anything else
    existing = load_group(group_name, runs_dir) if manifest_path(runs_dir, group_name).exists() else None
    made_from = existing.spec.get("recipe") if existing is not None else None
    if made_from and Path(made_from).resolve() != recipe_path.resolve():
        raise RunStateError(
            f"group {group_name!r} was made from {made_from}, not {spec.recipe}; choose another --group"
        )
    cells = expand(spec, group_name, runs_dir)
    if not cells:
        raise UsageError("the sweep has no cells")
    for cell in cells:
        try:
            check_run_name(cell.name)
        except RunStateError as exc:
            raise UsageError(f"sweep {group_name}: {exc} (a shorter --group or shorter axis values help)") from None
    group = Group(name=group_name, runs_dir=runs_dir, spec=spec.to_json(), cells=cells)
    if existing is not None:  # keep the cluster jobs of earlier invocations
        group.jobs, group.executor = existing.jobs, existing.executor
    try:
        plans = plan(group, recipe_path)
    except RecipeError as exc:
        raise RecipeError(f"sweep {group_name}: {exc}") from None
    return group, plans


# ---------------------------------------------------------------------------------------------
# running


def parse_launcher(text: str | None) -> list[str] | None:
    """``--launcher "torchrun --nproc_per_node 4"`` as an argument list, checked before any cell runs:
    it must parse as a shell command line and its program must exist (UsageError otherwise)."""
    if text is None:
        return None
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"--launcher {text!r} does not parse as a command line ({exc})") from None
    if not words:
        raise UsageError('--launcher is empty: give a command such as "torchrun --nproc_per_node 4"')
    program = words[0]
    found = shutil.which(program)
    if found is None:
        where = "is not an executable file" if "/" in program else "is not found on $PATH"
        raise UsageError(f"--launcher: {program!r} {where}")
    return words


def cell_command(group: Group, cell_plan: CellPlan, *, launcher: list[str] | None = None) -> list[str]:
    """The ``idmm run`` command line of one cell (``launcher`` e.g. ``torchrun --nproc_per_node 4``)."""
    prefix = idmm_command(launcher)
    runs_dir = str(group.runs_dir)
    if cell_plan.action == "resume":
        return [*prefix, "run", "--resume", str(group.run_path(cell_plan.cell))]
    sets = [arg for o in cell_plan.cell.overrides for arg in ("--set", o)]
    return [
        *prefix,
        "run",
        group.spec["recipe"],
        *sets,
        "--runs-dir",
        runs_dir,
        "--name",
        cell_plan.cell.name,
        "--group",
        group.name,
    ]


@dataclass
class CellResult:
    cell: Cell
    outcome: str  # completed, skipped, busy, failed, interrupted, blocked
    detail: str = ""


class SweepResults(list):
    """The cells' results in plan order; ``interrupted``: a Ctrl-C / SIGTERM stopped the sweep."""

    interrupted: bool = False


@dataclass(frozen=True)
class CellSlots:
    """How many cells run at once on this machine, and what each of them gets.

    ``devices[i]``: the GPUs (``CUDA_VISIBLE_DEVICES`` entries) of slot ``i``, None on CPU;
    ``threads``: ``OMP_NUM_THREADS`` of each cell (None: the environment's own).
    """

    max_parallel: int = 1
    devices: tuple[tuple[str, ...], ...] | None = None
    threads: int | None = None

    def env(self, slot: int) -> dict[str, str]:
        """The environment changes of a cell running in ``slot``."""
        out: dict[str, str] = {}
        if self.devices is not None:
            out["CUDA_VISIBLE_DEVICES"] = ",".join(self.devices[slot])
        if self.threads is not None:
            out["OMP_NUM_THREADS"] = out["MKL_NUM_THREADS"] = str(self.threads)
        return out

    def describe(self, slot: int) -> str:
        parts = []
        if self.devices is not None:
            parts.append(f"GPU {','.join(self.devices[slot])}")
        if self.threads is not None:
            parts.append(f"{self.threads} thread{'s' if self.threads > 1 else ''}")
        return ", ".join(parts)


def visible_gpus() -> list[str]:
    """The GPUs cells can be given: ``$CUDA_VISIBLE_DEVICES`` (indices or UUIDs) when set, else every
    GPU torch sees (``0 … n-1``)."""
    import os

    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no usable CUDA runtime: no GPUs
        return []


def cell_slots(max_parallel: int, gpus_per_cell: int = 0, *, gpus: list[str] | None = None) -> CellSlots:
    """Slots for ``max_parallel`` cells at once: ``gpus_per_cell`` GPUs each (disjoint sets from
    ``gpus``, default :func:`visible_gpus`), else on CPU an equal share of the cores each (unless
    ``$OMP_NUM_THREADS`` is set). UsageError when the GPUs do not suffice."""
    import os

    if max_parallel < 1:
        raise UsageError(f"--max-parallel {max_parallel}: give 1 or more")
    if gpus_per_cell < 0:
        raise UsageError(f"--gpus-per-cell {gpus_per_cell}: give 0 (CPU) or more")
    devices = None
    if gpus_per_cell:
        gpus = visible_gpus() if gpus is None else gpus
        need = max_parallel * gpus_per_cell
        if need > len(gpus):
            seen = f"{len(gpus)} visible ({', '.join(gpus)})" if gpus else "none visible"
            raise UsageError(
                f"--max-parallel {max_parallel} × --gpus-per-cell {gpus_per_cell} needs {need} GPUs; {seen}"
            )
        devices = tuple(tuple(gpus[i * gpus_per_cell : (i + 1) * gpus_per_cell]) for i in range(max_parallel))
    threads = None
    if max_parallel > 1 and not os.environ.get("OMP_NUM_THREADS"):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cores // max_parallel)
    return CellSlots(max_parallel, devices, threads)


def check_parallel_launcher(launcher: list[str] | None, max_parallel: int) -> None:
    """Cells at once under torchrun need a rendezvous each: ``--standalone`` (a free port per cell) or
    their own endpoint; torchrun's default (127.0.0.1:29500) would join them together."""
    if max_parallel <= 1 or not launcher:
        return
    is_torchrun = Path(launcher[0]).name == "torchrun" or "torch.distributed.run" in launcher
    own = ("--standalone", "--rdzv-endpoint", "--rdzv_endpoint", "--master-port", "--master_port")
    if is_torchrun and not any(w.split("=")[0] in own for w in launcher):
        raise UsageError(
            f"--max-parallel {max_parallel} with --launcher torchrun: the cells would share torchrun's default "
            "port 29500; add --standalone (a free port for each cell)"
        )


def default_launcher(gpus_per_cell: int) -> list[str] | None:
    """``torchrun --standalone --nproc_per_node G`` for cells of several GPUs (DDP), else None."""
    if gpus_per_cell <= 1:
        return None
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    return [torchrun, "--standalone", "--nproc_per_node", str(gpus_per_cell)]


def log_path(group: Group, cell: Cell) -> Path:
    """Where a cell's output goes when several cells run at once."""
    return group.manifest.with_suffix(".logs") / f"{cell.name}.out"


@dataclass
class _Running:
    plan: CellPlan
    proc: subprocess.Popen
    slot: int
    command: list[str]
    sent: int = 0  # how many of the sweep's signals this cell has been sent


def run_sweep(
    group: Group,
    plans: list[CellPlan],
    *,
    launcher: list[str] | None = None,
    announce: Callable[[int, int, CellPlan, list[str]], None] | None = None,
    fail_fast: bool = False,
    slots: CellSlots | None = None,
    on_start: Callable[[CellPlan, int, Path | None], None] | None = None,
    on_exit: Callable[[CellResult, int], None] | None = None,
) -> SweepResults:
    """Run the cells, up to ``slots.max_parallel`` at once (default one after another), in plan order.

    A target cell of a transfer sweep starts once its source run completed; it is ``blocked`` when
    the source did not. Each cell is one child process (its own process group); the sweep forwards
    every SIGINT / SIGTERM it gets to every running cell: the first Ctrl-C makes each checkpoint and
    exit 130 (no further cell starts, the sweep waits for them all), a second one aborts them at once.
    A failed cell does not stop the others (``fail_fast``: no further cell starts). With one cell at a
    time its output goes to the sweep's stderr; with several, each to its own file (:func:`log_path`).
    """
    import os
    import signal
    import time

    slots = slots or CellSlots()
    group.save()
    results: dict[str, CellResult] = {}
    failed_sources: set[str] = set()
    done: set[str] = set()  # run paths of the cells with a result
    sources = {str(group.run_path(cp.cell)) for cp in plans if cp.cell.role == "source"}
    waiting = list(enumerate(plans, start=1))
    running: list[_Running] = []
    free = list(range(slots.max_parallel))
    signals: list[int] = []  # SIGINT / SIGTERM received, in order; the loop forwards them to every cell

    def on_signal(signum, frame):
        signals.append(signum)

    def forward() -> None:
        for r in running:
            while r.sent < len(signals):
                if r.proc.poll() is None:
                    r.proc.send_signal(signals[r.sent])
                r.sent += 1

    def record(cell: Cell, outcome: str, detail: str = "") -> CellResult:
        result = results[cell.name] = CellResult(cell, outcome, detail)
        done.add(str(group.run_path(cell)))
        if cell.role == "source" and outcome not in ("completed", "skipped"):
            failed_sources.add(str(group.run_path(cell)))
        return result

    def start(index: int, cp: CellPlan, seen: int) -> bool:
        command = cell_command(group, cp, launcher=launcher)
        if announce:
            announce(index, len(plans), cp, command)
        slot = free.pop(0)
        log = log_path(group, cp.cell) if slots.max_parallel > 1 else None
        try:
            if log is None:
                env = {**os.environ, **slots.env(slot)}
                proc = subprocess.Popen(command, stdout=sys.stderr.fileno(), process_group=0, env=env)
            else:
                log.parent.mkdir(parents=True, exist_ok=True)
                with open(log, "ab") as out:
                    proc = subprocess.Popen(
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        process_group=0,
                        env={**os.environ, **slots.env(slot), "PYTHONUNBUFFERED": "1"},
                    )
        except OSError as exc:  # the launcher vanished or is not executable: this cell fails, the sweep goes on
            free.insert(0, slot)
            record(cp.cell, "failed", describe_os_error(exc, f"cannot start {command[0]}"))
            return False
        running.append(_Running(cp, proc, slot, command, sent=seen))  # later signals are forwarded to it
        if on_start:
            on_start(cp, slot, log)
        return True

    def finished(r: _Running, code: int) -> CellResult:
        cell = r.plan.cell
        summary = read_json(group.run_path(cell) / "summary.json")
        if code == 0:
            return record(cell, "completed", f"test_acc {summary.get('test_acc')}")
        if code in (130, -2) or summary.get("status") == "interrupted":
            return record(cell, "interrupted", "checkpoint kept")
        error = summary.get("error") if isinstance(summary.get("error"), str) else None
        return record(cell, "failed", error or f"exit code {code}")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        halted = False  # a cell was interrupted, a signal came, or --fail-fast saw a failure
        while True:
            seen = len(signals)
            halted = halted or seen > 0
            for item in list(waiting) if not halted else []:
                index, cp = item
                source = _init_source(cp.cell)
                if source in failed_sources:
                    waiting.remove(item)
                    record(cp.cell, "blocked", f"its source run {Path(source).name} did not complete")
                    continue
                if source in sources and source not in done:
                    continue  # its source has not finished yet
                if cp.action in ("skip", "busy"):
                    waiting.remove(item)
                    record(cp.cell, "skipped" if cp.action == "skip" else "busy", cp.detail)
                    continue
                if not free:
                    break
                waiting.remove(item)
                if not start(index, cp, seen) and fail_fast:
                    halted = True
                    break
            forward()
            if not running:
                break
            time.sleep(0.1)
            forward()
            for r in list(running):
                code = r.proc.poll()
                if code is None:
                    continue
                running.remove(r)
                free.append(r.slot)
                free.sort()
                result = finished(r, code)
                if on_exit:
                    on_exit(result, code)
                if result.outcome == "interrupted" or (result.outcome == "failed" and fail_fast):
                    halted = True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out = SweepResults(results[cp.cell.name] for cp in plans if cp.cell.name in results)
    out.interrupted = bool(signals)
    return out


def _init_source(cell: Cell) -> str:
    for item in cell.overrides:
        if item.startswith("init="):
            return item.removeprefix("init=").strip('"')
    return ""


def render_command(command: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in command)
