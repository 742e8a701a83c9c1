"""TensorBoard: event files under ``<dir>/tensorboard/[<group>/]<run>`` (``tensorboard --logdir <dir>/tensorboard``).

Scalars ``<stage>/<kind>/<key>`` at the record's step; the recipe in the HParams tab (flattened keys)
and as text; stage boundaries and the final summary as text; PNGs as images. Written with
``torch.utils.tensorboard`` (it needs the ``tensorboard`` package: ``pip install 'idmm[tensorboard]'``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from idmm_tui.tracking.core import Sink, StartInfo, hyperparameters, scalars


def logdir(info: StartInfo) -> Path:
    base = info.settings.dir / "tensorboard"
    return (base / info.group / info.run.name) if info.group else base / info.run.name


class TensorBoardSink(Sink):
    name = "tensorboard"

    def __init__(self) -> None:
        self.writer: Any = None

    def start(self, info: StartInfo) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        folder = logdir(info)
        if info.fresh:  # idmm export: the run's files replace an earlier mirror of it
            for old in folder.glob("events.out.tfevents.*"):
                old.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(folder), flush_secs=10)
        if not info.fresh and info.previous.get("logdir") == str(folder):
            return info.previous  # a resumed run (or a later picture): its recipe is there already
        params = hyperparameters(info.recipe)
        metric_names = (
            {"test_acc": None} if any(p.get("kind") == "finetune" for p in info.summary.get("plan", [])) else {}
        )
        experiment, session_start, session_end = hparams(params, metric_names or {"loss": None})
        file_writer = self.writer._get_file_writer()  # the HParams tab in this run's own folder
        for summary in (experiment, session_start, session_end):
            file_writer.add_summary(summary)
        recipe_text = "\n".join(f"    {k} = {json.dumps(v)}" for k, v in params.items())
        self.writer.add_text("idmm/recipe", recipe_text, 0)
        self.writer.add_text("idmm/run", f"    {info.run.path}", 0)
        return {"logdir": str(folder)}

    def record(self, record: dict[str, Any]) -> None:
        step, values = scalars(record)
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def stage(self, event: str, stage: str, info: dict[str, Any]) -> None:
        text = ", ".join(f"{k} = {v}" for k, v in info.items())
        self.writer.add_text(f"{stage}/events", f"{stage} {event}: {text}", int(info.get("step", 0) or 0))
        self.writer.flush()

    def artifact(self, path: Path, name: str) -> None:
        import numpy as np
        from PIL import Image

        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        self.writer.add_image(f"eval/{name}", pixels, 0, dataformats="HWC")
        self.writer.flush()

    def finish(self, summary: dict[str, Any]) -> None:
        keys = ("status", "test_acc", "wall_time_s", "stages", "evals", "error")
        shown = {k: summary[k] for k in keys if summary.get(k) is not None}
        text = "\n".join("    " + line for line in json.dumps(shown, indent=2).splitlines())
        self.writer.add_text("idmm/summary", text, 0)
        self.writer.close()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()


SINK = TensorBoardSink
