"""Multi-node DDP: two torchrun "nodes" on localhost (c10d rendezvous, gloo) train like one process on the
global batch, rank 0 writes the run directory, and the summary names the world size, nodes and hosts.

The comparison needs training without randomness (the ranks draw their augmentations from their own
generators, so an augmenting method gives other crops under DDP than in one process): a test plugin
method classifies the instance id of each image's centre view, drop path is off. What is compared is
then the trainer's DDP path itself: each rank's shard of every global batch, the gradient average, the
loss sums over ranks, one writer.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from idmm_tui.runs.store import RunDir

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

METHOD = """
from typing import Literal

import torch.nn.functional as F
from torch import nn

from idmm_tui.engine.views import eval_views
from idmm_tui.methods.base import Objective, TwoPart, register_method
from idmm_tui.recipe import PretrainConfig


class FixedViewConfig(PretrainConfig):
    method: Literal["fixedview"] = "fixedview"


@register_method
class FixedView(Objective):
    name = "fixedview"
    description = "test: instance classification of each image's centre view (no augmentation)"
    Config = FixedViewConfig

    def build(self, backbone, num_features, num_outputs, cfg):
        return TwoPart(backbone, nn.Linear(num_features, num_outputs))

    def loss(self, module, batch, gen, cfg, epoch):
        views = eval_views(batch.images, batch.sizes, cfg.resolution, 1.0)
        return F.cross_entropy(module(views), batch.instance_ids), views.shape[0]
"""

RECIPE = """
seed = 5
device = "cpu"
log_every = 1
checkpoint_every_s = 0
finetune = []
[data]
dataset = "imagefolder"
root = "{root}"
num_workers = 0
[model]
backbone = "vit_micro_p4"
drop_path = 0.0
[pretrain]
method = "fixedview"
epochs = 2
resolution = 16
batch_size = 8
warmup_epochs = 0
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_train_like_one_process_on_the_global_batch(tmp_path, tiny_images):
    from safetensors.torch import load_file

    plugin = tmp_path / "plugin"
    (plugin / "fixedview_plugin-1.0.dist-info").mkdir(parents=True)
    (plugin / "fixedview_method.py").write_text(METHOD)
    (plugin / "fixedview_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[idmm.methods]\nfixedview = fixedview_method\n"
    )
    (plugin / "fixedview_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fixedview-plugin\nVersion: 1.0\n"
    )
    recipe = tmp_path / "fixed.toml"
    recipe.write_text(RECIPE.format(root=tiny_images))
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(plugin), str(REPO)])}
    run = ["-m", "idmm_tui", "run", str(recipe), "--runs-dir", str(runs)]
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    rdzv = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "two-nodes"]
    procs = [
        subprocess.Popen(
            [torchrun, "--nnodes", "2", "--node-rank", str(k), "--nproc_per_node", "1", *rdzv, *run, "--name", "two"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for k in (0, 1)
    ]
    procs.append(
        subprocess.Popen(
            [sys.executable, *run, "--name", "one"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    )
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(o[-2000:] for o in outputs)

    two = json.loads((runs / "two" / "summary.json").read_text())
    assert two["status"] == "completed" and two["world_size"] == 2 and two["nodes"] == 2
    assert two["hosts"] == [socket.gethostname()]  # both "nodes" are this machine
    launch = two["launch"]
    assert launch["launcher"] == "torchrun" and launch["nproc_per_node"] == 1
    assert "--rdzv-endpoint" in launch["argv"] and launch["program"] == ["-m", "idmm_tui"]
    assert [r["rank"] for r in launch["ranks"]] == [0, 1]
    assert sorted(p.name for p in runs.iterdir()) == ["one", "two"]  # the rank on the other "node" wrote nothing

    epochs = {
        name: [(m["step"], m["loss"]) for m in RunDir(runs / name).read_metrics() if m["kind"] == "epoch"]
        for name in ("one", "two")
    }
    assert [s for s, _ in epochs["two"]] == [s for s, _ in epochs["one"]] == [3, 6]  # 24 images, global batch 8
    assert [loss for _, loss in epochs["two"]] == pytest.approx([loss for _, loss in epochs["one"]], abs=1e-5)
    one_w = load_file(runs / "one" / "checkpoints" / "pretrain.safetensors")
    two_w = load_file(runs / "two" / "checkpoints" / "pretrain.safetensors")
    assert one_w.keys() == two_w.keys()
    # Not bit-identical: the gradient is a sum in another order (two halves, then their average), and
    # AdamW's normalised step turns that ~1e-7 relative difference into a fraction of one step (lr 5e-4)
    # where a gradient is near zero. A different shard, batch or step would differ by whole steps.
    worst = max(float((one_w[k] - two_w[k]).abs().max()) for k in one_w)
    assert worst < 2e-4, worst
