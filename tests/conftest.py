"""Shared fixtures: tiny real-format datasets, tiny recipes, and an in-process CLI runner."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.fixtures_data import make_imagefolder

torch.set_num_threads(1)  # deterministic, and fair to the other core

TINY_RECIPE = """
name = "tiny"
seed = 3
device = "cpu"
log_every = 2
checkpoint_every_s = 0
[data]
dataset = "imagefolder"
root = "{root}"
num_workers = 0
[model]
backbone = "vit_micro_p4"
[pretrain]
method = "idmm"
epochs = 2
resolution = 16
batch_size = 8
warmup_epochs = 1
[[finetune]]
epochs = 2
resolution = 24
batch_size = 8
warmup_epochs = 1
"""


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory) -> Path:
    """3 classes x 8 training images (+4 test each) of mixed modes, formats and odd sizes."""
    root = tmp_path_factory.mktemp("images")
    make_imagefolder(root, classes=3, per_class=8, test_per_class=4)
    return root


@pytest.fixture()
def tiny_recipe(tmp_path, tiny_images) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_RECIPE.format(root=tiny_images))
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture()
def cli(capsys):
    """Run ``idmm ARGS…`` in-process, returning exit code, stdout and stderr."""
    from idmm_tui.cli import main

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


def idmm_subprocess_cmd() -> list[str]:
    return [sys.executable, "-m", "idmm_tui"]
