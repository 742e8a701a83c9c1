"""Wall time of a 4-cell sweep run one cell at a time vs ``--max-parallel 2`` (CPU: each cell gets half the cores).

Runs the same sweep twice, each time in a fresh runs directory, with the real ``idmm sweep`` command
(child processes, as a user runs it), and prints both wall times and their ratio. Defaults: the demo
recipe on the embedded data, methods idmm and none × seeds 0 and 1, one pretraining and one
fine-tuning epoch per cell.

    python scripts/bench_sweep_parallel.py
    python scripts/bench_sweep_parallel.py --omp 1        # every cell one thread, whatever --max-parallel
    python scripts/bench_sweep_parallel.py --parallel 1 2 4 --set pretrain.epochs=2

Without ``--omp`` the sweep chooses: one cell at a time uses torch's default threads (all cores),
``--max-parallel K`` gives each cell ``cores // K`` (``OMP_NUM_THREADS``), as a user gets it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_sweep(args, parallel: int, runs: Path) -> float:
    sets = [a for item in args.set for a in ("--set", item)]
    command = [
        sys.executable,
        "-m",
        "idmm_tui",
        "sweep",
        str(args.recipe),
        *[a for axis in args.axis for a in ("--axis", axis)],
        "--seeds",
        args.seeds,
        *sets,
        "--runs-dir",
        str(runs),
        "--max-parallel",
        str(parallel),
        "--json",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if args.omp:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.omp)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"sweep --max-parallel {parallel} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def control_ratio() -> float:
    """Two CPU-bound Python processes at once vs one after another: about 0.5 with two idle cores, near
    1.0 when other work already takes them (then no number of cells at once can finish sooner)."""
    command = [sys.executable, "-c", "sum(i * i for i in range(15_000_000))"]
    start = time.perf_counter()
    for _ in range(2):
        subprocess.run(command, check=True)
    one_by_one = time.perf_counter() - start
    start = time.perf_counter()
    for proc in [subprocess.Popen(command) for _ in range(2)]:
        proc.wait()
    return (time.perf_counter() - start) / one_by_one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=REPO / "recipes" / "demo.toml")
    parser.add_argument("--axis", action="append", default=None, help="default: pretrain.method=idmm,none")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--set", action="append", default=None, help="default: one epoch per stage")
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--omp", type=int, default=0, help="OMP_NUM_THREADS of every cell (default: the sweep's)")
    args = parser.parse_args()
    args.axis = args.axis or ["pretrain.method=idmm,none"]
    args.set = args.set or [
        "pretrain.epochs=1",
        "pretrain.warmup_epochs=0",
        "finetune.0.epochs=1",
        "finetune.0.warmup_epochs=0",
    ]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores; load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"control: two CPU-bound processes at once / one after another: {control_ratio():.2f}", flush=True)
    walls = {}
    with tempfile.TemporaryDirectory(prefix="idmm-bench-sweep-") as tmp:
        for k in args.parallel:
            walls[k] = run_sweep(args, k, Path(tmp) / f"runs-{k}")
            print(f"--max-parallel {k}: {walls[k]:.1f} s", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"control again: {control_ratio():.2f}")
    base = walls[args.parallel[0]]
    for k in args.parallel[1:]:
        ratio = walls[k] / base
        print(f"wall time ratio --max-parallel {k} / {args.parallel[0]}: {ratio:.2f} ({1 / ratio:.2f}x faster)")


if __name__ == "__main__":
    main()
