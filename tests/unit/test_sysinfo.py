"""The system pane's sampler: real psutil readings, NVML absent or failing (no exception, no GPUs)."""

from __future__ import annotations

import sys
import time
import types

import pytest

from idmm_tui.tui import sysinfo
from idmm_tui.tui.sysinfo import GpuStats, SystemSampler, SystemStats


def nvml_available() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return False
    return True


@pytest.fixture()
def fresh_nvml(monkeypatch):
    """NVML not yet initialised in this process, as at the dashboard's start."""
    monkeypatch.setattr(sysinfo, "_nvml", None)
    monkeypatch.setattr(sysinfo, "_nvml_tried", False)


def test_psutil_readings_are_real_values():
    sampler = SystemSampler()
    first = sampler.sample()
    assert isinstance(first, SystemStats)
    assert first.cpu_pct is None  # nothing to compare the first reading with
    assert first.cpus > 0
    assert first.mem_total_gib is not None and first.mem_total_gib > 0
    assert first.mem_used_gib is not None and 0 < first.mem_used_gib <= first.mem_total_gib
    assert first.load1 is not None and first.load1 >= 0
    time.sleep(0.2)
    second = sampler.sample()
    assert second.cpu_pct is not None and 0.0 <= second.cpu_pct <= 100.0
    assert isinstance(second.gpus, tuple) and all(isinstance(g, GpuStats) for g in second.gpus)


@pytest.mark.skipif(nvml_available(), reason="an NVIDIA driver is present here")
def test_without_an_nvidia_driver_there_are_no_gpus(fresh_nvml):
    stats = SystemSampler().sample()
    assert stats.gpus == ()
    assert sysinfo.nvml() is None and sysinfo._nvml_tried  # tried once, not again at every sample
    assert SystemSampler().sample().gpus == ()


@pytest.mark.skipif(not nvml_available(), reason="no NVIDIA driver here")
def test_with_an_nvidia_driver_every_gpu_is_listed(fresh_nvml):
    import pynvml

    gpus = SystemSampler().sample().gpus
    assert len(gpus) == pynvml.nvmlDeviceGetCount() > 0
    assert [g.index for g in gpus] == list(range(len(gpus)))
    assert all(g.name and g.mem_total_mib and g.mem_total_mib > 0 for g in gpus)


def test_without_the_nvml_package_there_are_no_gpus(fresh_nvml, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    assert SystemSampler().sample().gpus == ()


def test_nvml_errors_leave_values_absent(monkeypatch):
    """A GPU without utilisation counters, a lost GPU, a failing device count: values absent, no exception."""

    class NVMLError(Exception):
        pass

    def fail(*args):
        raise NVMLError("not supported")

    def handle(index):
        if index == 1:
            raise NVMLError("GPU is lost")
        return index

    fake = types.SimpleNamespace(
        NVMLError=NVMLError,
        nvmlDeviceGetCount=lambda: 3,
        nvmlDeviceGetHandleByIndex=handle,
        nvmlDeviceGetName=lambda h: b"Fake GPU" if h == 0 else "Other GPU",
        nvmlDeviceGetUtilizationRates=fail,
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=2**30, total=4 * 2**30),
    )
    monkeypatch.setattr(sysinfo, "_nvml", fake)
    monkeypatch.setattr(sysinfo, "_nvml_tried", True)
    assert sysinfo.gpu_stats() == (
        GpuStats(0, "Fake GPU", None, 1024.0, 4096.0),
        GpuStats(2, "Other GPU", None, 1024.0, 4096.0),
    )
    fake.nvmlDeviceGetCount = fail
    assert sysinfo.gpu_stats() == ()
