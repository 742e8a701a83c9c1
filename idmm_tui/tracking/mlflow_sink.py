"""MLflow: one MLflow run per idmm run, in the experiment named by ``[track] mlflow_experiment``, else the
run's sweep group, else ``idmm``.

Tracking URI: ``[track] mlflow_uri``, else ``$MLFLOW_TRACKING_URI``, else a file store ``<dir>/mlruns``
(``mlflow ui --backend-store-uri <dir>/mlruns``; MLflow 3 keeps file stores in maintenance mode, so
idmm sets ``MLFLOW_ALLOW_FILE_STORE=true`` for its own one). Metrics ``<stage>/<kind>/<key>`` at the
record's step, the recipe as params (flattened keys), stage boundaries as tags ``idmm.stage.<name>``,
PNGs as artifacts under ``eval/``, the summary as ``summary.json`` and ``test_acc`` as a metric.
Uses the client API only (``MlflowClient``, no global active run), so it runs on any thread.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from idmm_tui.tracking.core import Sink, StartInfo, hyperparameters, scalars

#: An unreachable server should fail the sink fast, not retry for minutes (kept if the user set them).
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
_STATUS = {"completed": "FINISHED", "interrupted": "KILLED"}


def tracking_uri(info_dir: Path, configured: str) -> str:
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri:
        return uri
    return (info_dir / "mlruns").absolute().as_uri()


def experiment_name(info: StartInfo) -> str:
    return info.settings.mlflow_experiment or info.group or "idmm"


class MlflowSink(Sink):
    name = "mlflow"

    def __init__(self) -> None:
        self.client: Any = None
        self.run_id = ""

    def start(self, info: StartInfo) -> dict[str, Any]:
        for key, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        uri = tracking_uri(info.settings.dir, info.settings.mlflow_uri)
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        previous = info.previous
        if not info.fresh and previous.get("run_id") and previous.get("uri") == uri:
            self.run_id = previous["run_id"]  # a resumed run continues its MLflow run
            self.client.update_run(self.run_id, status="RUNNING")
            return previous
        name = experiment_name(info)
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        tags = {"idmm.run": info.run.name, "idmm.run_dir": str(info.run.path)}
        for key in ("group", "backbone", "dataset", "method"):
            if info.summary.get(key):
                tags[f"idmm.{key}"] = str(info.summary[key])
        run = self.client.create_run(experiment_id, run_name=info.run.name, tags=tags)
        self.run_id = run.info.run_id
        params = [Param(k, str(v)) for k, v in hyperparameters(info.recipe).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        self.client.log_batch(self.run_id, tags=[RunTag("mlflow.note.content", _note(info))])
        return {"uri": uri, "experiment": name, "experiment_id": experiment_id, "run_id": self.run_id}

    def record(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        step, values = scalars(record)
        stamp = _millis(record)
        metrics = [Metric(tag, value, stamp, step) for tag, value in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def stage(self, event: str, stage: str, info: dict[str, Any]) -> None:
        self.client.set_tag(self.run_id, f"idmm.stage.{stage}", event)

    def artifact(self, path: Path, name: str) -> None:
        self.client.log_artifact(self.run_id, str(path), "eval")

    def finish(self, summary: dict[str, Any]) -> None:
        self.client.log_dict(self.run_id, summary, "summary.json")
        if isinstance(summary.get("test_acc"), int | float):
            self.client.log_metric(self.run_id, "test_acc", float(summary["test_acc"]))
        self.client.set_terminated(self.run_id, status=_STATUS.get(str(summary.get("status")), "FAILED"))


def _millis(record: dict[str, Any]) -> int:
    return int(time.time() * 1000)  # when it is logged (the record's own "time" is seconds into the run)


def _note(info: StartInfo) -> str:
    plan = ", ".join(
        f"{p.get('name')} ({p.get('epochs')} ep @ {p.get('resolution')} px)" for p in info.summary.get("plan", [])
    )
    return f"idmm run `{info.run.name}` ({info.run.path}): {plan}. metrics.jsonl in the run directory is the record."


SINK = MlflowSink
