"""Read a run's mirrors back with each tracker's own reader (for the tracking tests).

* TensorBoard: ``tensorboard``'s ``EventAccumulator`` over the event files;
* MLflow: ``MlflowClient`` on the file store;
* W&B: an offline run's ``run-<id>.wandb`` transaction log (LevelDB log framing, W&B's own ``:W&B`` header)
  decoded with W&B's own protobuf ``Record`` (wandb ≥ 0.2x ships no Python scanner for it any more).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Scalars = dict[tuple[str, int], float]  # (tag, step) -> value


def expected_scalars(metrics: list[dict[str, Any]]) -> Scalars:
    from idmm_tui.tracking.core import scalars

    out: Scalars = {}
    for record in metrics:
        step, values = scalars(record)
        out.update({(tag, step): value for tag, value in values.items()})
    return out


def tensorboard_scalars(logdir: Path) -> tuple[Scalars, Any]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    out = {(tag, e.step): e.value for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)}
    return out, acc


def mlflow_scalars(uri: str, run_id: str) -> tuple[Scalars, Any]:
    import os

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    out = {}
    for key in run.data.metrics:
        for m in client.get_metric_history(run_id, key):
            out[(key, m.step)] = m.value
    return out, run


def wandb_records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1, "not a W&B transaction log"
    block, header = 32768, 7
    pos, buf = 7, b""
    while pos + header <= len(data):
        left = block - pos % block
        if left < header:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        pos += header
        chunk = data[pos : pos + length]
        pos += length
        if kind == 0 and length == 0:
            break
        if kind in (1, 2):  # full, first
            buf = chunk
        else:  # middle, last
            buf += chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            yield record


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def wandb_run(path: Path) -> dict[str, Any]:
    """History rows, config, summary and run info of an offline run file."""
    history, config, summary, info = [], {}, {}, {}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "run":
            info = {
                "id": record.run.run_id,
                "project": record.run.project,
                "group": record.run.run_group,
                "name": record.run.display_name,
            }
            config.update({_key(i): json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            config.update({_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "summary":
            summary.update({_key(i): json.loads(i.value_json) for i in record.summary.update})
    return {"history": history, "config": config, "summary": summary, "run": info}


def wandb_scalars(path: Path) -> tuple[Scalars, dict[str, Any]]:
    run = wandb_run(path)
    out: Scalars = {}
    for row in run["history"]:
        for key, value in row.items():
            stage = key.split("/", 1)[0]
            if key.startswith("_") or key == f"{stage}/step" or f"{stage}/step" not in row:
                continue
            if isinstance(value, int | float):
                out[(key, int(row[f"{stage}/step"]))] = float(value)
    return out, run


def wandb_file(folder: Path, run_id: str) -> Path:
    found = sorted(Path(folder).glob(f"wandb/*-{run_id}/run-{run_id}.wandb"))
    assert found, f"no W&B run {run_id} under {folder}"
    return found[0]  # the first: a later one with the same id holds what was added after (a picture)
