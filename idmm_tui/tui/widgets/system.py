"""The system pane: one or two lines of CPU, memory and GPU use, fed by the app's sampler worker."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from idmm_tui.tui.sysinfo import SystemStats


def _bar(pct: float | None, width: int = 10) -> Text:
    if pct is None:
        return Text("·" * width, style="dim")
    pct = min(max(pct, 0.0), 100.0)
    full = int(round(pct / 100 * width))
    style = "green" if pct < 60 else "yellow" if pct < 85 else "red"
    return Text("█" * full, style=style) + Text("░" * (width - full), style="dim")


def render_stats(stats: SystemStats | None) -> Text:
    if stats is None:
        return Text("system: sampling…", style="dim")
    out = Text()
    out.append("CPU ", style="bold")
    out.append_text(_bar(stats.cpu_pct))
    out.append(f" {stats.cpu_pct:3.0f}%" if stats.cpu_pct is not None else "   –")
    out.append(f" of {stats.cpus}")
    if stats.load1 is not None:
        out.append(f"  load {stats.load1:.1f}")
    if stats.mem_total_gib:
        pct = 100 * (stats.mem_used_gib or 0) / stats.mem_total_gib
        out.append("   MEM ", style="bold")
        out.append_text(_bar(pct))
        out.append(f" {stats.mem_used_gib:.1f}/{stats.mem_total_gib:.1f} GiB")
    for gpu in stats.gpus:
        out.append(f"   GPU{gpu.index} ", style="bold")
        out.append_text(_bar(gpu.util_pct, 6))
        out.append(f" {gpu.util_pct:3.0f}%" if gpu.util_pct is not None else "   –")
        if gpu.mem_used_mib is not None and gpu.mem_total_mib:
            out.append(f" {gpu.mem_used_mib / 1024:.1f}/{gpu.mem_total_mib / 1024:.0f} GiB")
    if not stats.gpus:
        out.append("   no GPU", style="dim")
    return out


class SystemPane(Static):
    """Shows the latest sample published on the app's ``system_signal``."""

    DEFAULT_CSS = """
    SystemPane {
        height: auto;
        padding: 0 1;
        background: $panel;
        color: $text-muted;
    }
    """

    def on_mount(self) -> None:
        app = self.app
        signal = getattr(app, "system_signal", None)
        if signal is not None:
            signal.subscribe(self, self.show_stats)
        self.show_stats(getattr(app, "system_stats", None))

    def show_stats(self, stats: SystemStats | None) -> None:
        self.update(render_stats(stats))
