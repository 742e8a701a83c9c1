"""Weights & Biases: one W&B run per idmm run, in ``[track] wandb_project`` (default ``idmm``), grouped by
``wandb_group``, else the run's sweep group.

``wandb_mode = "auto"`` follows ``$WANDB_MODE`` (online when unset; ``offline`` writes
``<dir>/wandb/offline-run-*`` for ``wandb sync`` later). Each stage has its own x axis
(``define_metric("<stage>/*", step_metric="<stage>/step")``), since steps restart with every stage;
the recipe is the run config, stage boundaries and the final summary go to the run summary, PNGs are
logged as ``wandb.Image``. The console is not captured (``idmm run --json`` keeps stdout clean).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from idmm_tui.tracking.core import Sink, StartInfo, scalars


class WandbSink(Sink):
    name = "wandb"

    def __init__(self) -> None:
        self.run: Any = None
        self.stages: set[str] = set()

    def start(self, info: StartInfo) -> dict[str, Any]:
        import wandb

        s = info.settings
        folder = s.dir.absolute()
        folder.mkdir(parents=True, exist_ok=True)
        mode = None if s.wandb_mode == "auto" else s.wandb_mode
        previous = info.previous
        resume_id = previous.get("id") if not info.fresh and previous.get("project") == s.wandb_project else None
        recipe = {k: v for k, v in info.recipe.items() if k != "track"}
        self.run = wandb.init(
            project=s.wandb_project,
            entity=s.wandb_entity or None,
            group=s.wandb_group or info.group or None,
            name=info.run.name,
            id=resume_id,
            resume="allow" if resume_id else None,
            dir=str(folder),
            mode=mode,
            config=recipe,
            tags=[t for t in (info.summary.get("method"), info.summary.get("backbone")) if t],
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True, disable_git=True, save_code=False),
        )
        self.run.summary["idmm/run_dir"] = str(info.run.path)
        return {"id": self.run.id, "project": s.wandb_project, "mode": os.environ.get("WANDB_MODE", mode or "online")}

    def _axis(self, stage: str) -> None:
        if stage not in self.stages:
            self.stages.add(stage)
            self.run.define_metric(f"{stage}/step", hidden=True)
            self.run.define_metric(f"{stage}/*", step_metric=f"{stage}/step")

    def record(self, record: dict[str, Any]) -> None:
        step, values = scalars(record)
        stage = str(record.get("stage", "run"))
        self._axis(stage)
        self.run.log({f"{stage}/step": step, **values})

    def stage(self, event: str, stage: str, info: dict[str, Any]) -> None:
        self.run.summary[f"stages/{stage}/status"] = event
        if event == "completed":
            for key, value in info.items():
                self.run.summary[f"stages/{stage}/{key}"] = value

    def artifact(self, path: Path, name: str) -> None:
        import wandb

        self.run.log({f"eval/{name}": wandb.Image(str(path), caption=name)})

    def finish(self, summary: dict[str, Any]) -> None:
        for key in ("status", "test_acc", "wall_time_s", "knn_start", "evals"):
            if summary.get(key) is not None:
                self.run.summary[key] = summary[key]
        self.run.finish(exit_code=0 if summary.get("status") == "completed" else 1)
        self.run = None

    def abort(self) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1)
            self.run = None


SINK = WandbSink
