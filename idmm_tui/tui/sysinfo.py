"""CPU, memory and GPU usage for the system pane, through psutil and NVML (no Textual).

psutil gives CPU use, load and memory on Linux, macOS and Windows; NVIDIA GPUs come from NVML
(``pynvml``, the ``nvidia-ml-py`` package), initialised once per process on first use. A value
whose source is missing or fails (no NVIDIA driver, no NVML library, a GPU that does not report
its utilisation) is simply absent: sampling never raises. Sampled in the app's thread worker.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass, field
from typing import Any

import psutil


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


_nvml_lock = threading.Lock()
_nvml: Any = None  # the pynvml module once nvmlInit succeeded
_nvml_tried = False


def nvml() -> Any:
    """``pynvml`` after one successful ``nvmlInit`` in this process, else None (tried only once)."""
    global _nvml, _nvml_tried
    with _nvml_lock:
        if not _nvml_tried:
            _nvml_tried = True
            try:
                import pynvml

                pynvml.nvmlInit()
            except Exception:  # no package, no library (macOS, no driver), a driver that refuses
                return None
            atexit.register(_shutdown, pynvml)
            _nvml = pynvml
        return _nvml


def _shutdown(pynvml: Any) -> None:
    try:
        pynvml.nvmlShutdown()
    except Exception:
        pass


def _gpu(pynvml: Any, index: int) -> GpuStats | None:
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    except pynvml.NVMLError:
        return None
    try:
        name = pynvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else str(name)
    except pynvml.NVMLError:
        name = "?"
    try:
        util: float | None = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except pynvml.NVMLError:  # e.g. not supported on this GPU
        util = None
    try:
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        used: float | None = memory.used / 2**20
        total: float | None = memory.total / 2**20
    except pynvml.NVMLError:
        used = total = None
    return GpuStats(index, name, util, used, total)


def gpu_stats() -> tuple[GpuStats, ...]:
    """Every NVIDIA GPU NVML sees; () without NVML or a driver."""
    pynvml = nvml()
    if pynvml is None:
        return ()
    try:
        count = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError:
        return ()
    return tuple(gpu for gpu in (_gpu(pynvml, i) for i in range(count)) if gpu is not None)


class SystemSampler:
    """Call :meth:`sample` periodically from one thread; CPU use is measured between two calls."""

    def __init__(self) -> None:
        self._primed = False

    def _cpu_pct(self) -> float | None:
        try:
            pct = psutil.cpu_percent(interval=None)  # since this thread's previous call
        except (OSError, RuntimeError):
            return None
        primed, self._primed = self._primed, True
        return pct if primed else None  # the first reading has no previous one to compare with

    @staticmethod
    def _memory() -> tuple[float | None, float | None]:
        try:
            memory = psutil.virtual_memory()
        except (OSError, RuntimeError):
            return None, None
        return (memory.total - memory.available) / 2**30, memory.total / 2**30

    @staticmethod
    def _load1() -> float | None:
        try:
            return psutil.getloadavg()[0]
        except (OSError, RuntimeError, AttributeError):
            return None

    def sample(self) -> SystemStats:
        used, total = self._memory()
        cpus = psutil.cpu_count() or 1
        return SystemStats(self._cpu_pct(), cpus, self._load1(), used, total, gpu_stats())
