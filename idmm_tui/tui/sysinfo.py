"""CPU, memory and GPU usage for the system pane (Linux /proc and ``nvidia-smi``; no Textual).

Sampled in a thread worker: ``nvidia-smi`` takes tens of milliseconds, never on the UI thread.
Where a source is missing (no /proc, no NVIDIA driver) the value is simply absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GpuStats:
    index: int
    name: str
    util_pct: float | None
    mem_used_mib: float | None
    mem_total_mib: float | None


@dataclass(frozen=True)
class SystemStats:
    cpu_pct: float | None
    cpus: int
    load1: float | None
    mem_used_gib: float | None
    mem_total_gib: float | None
    gpus: tuple[GpuStats, ...] = field(default_factory=tuple)


class SystemSampler:
    """Call :meth:`sample` periodically; CPU use is measured between two calls."""

    def __init__(self) -> None:
        self._last_cpu: tuple[int, int] | None = None
        self._nvidia_smi = shutil.which("nvidia-smi")

    def _cpu_pct(self) -> float | None:
        try:
            with open("/proc/stat", encoding="ascii") as handle:
                fields = handle.readline().split()[1:]
        except OSError:
            return None
        values = [int(v) for v in fields if v.isdigit()]
        if len(values) < 4:
            return None
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        total = sum(values[:8])
        previous, self._last_cpu = self._last_cpu, (idle, total)
        if previous is None or total <= previous[1]:
            return None
        return 100.0 * (1.0 - (idle - previous[0]) / (total - previous[1]))

    @staticmethod
    def _memory() -> tuple[float | None, float | None]:
        info: dict[str, int] = {}
        try:
            with open("/proc/meminfo", encoding="ascii") as handle:
                for line in handle:
                    key, _, rest = line.partition(":")
                    parts = rest.split()
                    if parts and parts[0].isdigit():
                        info[key] = int(parts[0])  # KiB
        except OSError:
            return None, None
        total = info.get("MemTotal")
        available = info.get("MemAvailable")
        if total is None or available is None:
            return None, None
        return (total - available) / 2**20, total / 2**20

    def _gpus(self) -> tuple[GpuStats, ...]:
        if not self._nvidia_smi:
            return ()
        try:
            out = subprocess.run(
                [
                    self._nvidia_smi,
                    "--query-gpu=index,name,utilization.gpu,memory.used,memory.total",
                    "--format=csv,noheader,nounits",
                ],
                capture_output=True,
                text=True,
                timeout=3,
                check=False,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ()
        gpus = []
        for line in out.strip().splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 5:
                continue

            def f(v: str) -> float | None:
                try:
                    return float(v)
                except ValueError:
                    return None

            gpus.append(GpuStats(int(f(parts[0]) or 0), parts[1], f(parts[2]), f(parts[3]), f(parts[4])))
        return tuple(gpus)

    def sample(self) -> SystemStats:
        try:
            load1: float | None = os.getloadavg()[0]
        except (OSError, AttributeError):
            load1 = None
        used, total = self._memory()
        return SystemStats(self._cpu_pct(), os.cpu_count() or 1, load1, used, total, self._gpus())
