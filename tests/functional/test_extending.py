"""docs/extending.md stays true: its plugin files, copied out of the page, extend a real `idmm run`."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import idmm_subprocess_cmd

# --dist loadgroup: the module's fixtures are built once, so its tests stay on one xdist worker
pytestmark = pytest.mark.xdist_group("test_extending")

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "extending.md"

RECIPE = """
seed = 1
device = "cpu"
checkpoint_every_s = 0
[data]
dataset = "toy_shapes"
num_workers = 0
[model]
backbone = "vit_femto_p4"
[pretrain]
method = "toy"
epochs = 2
resolution = 8
batch_size = 8
warmup_epochs = 0
[pretrain.toy]
scale = 2.0
[[finetune]]
epochs = 1
resolution = 8
batch_size = 8
warmup_epochs = 0
"""


def doc_files() -> dict[str, str]:
    """Every fenced block of the page whose first line is ``# file: NAME``, by NAME."""
    blocks = re.findall(r"```[a-z]*\n# file: (\S+)\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return {name: body for name, body in blocks}


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    """The page's plugin as an installed distribution: its modules plus a dist-info with the entry points."""
    root = tmp_path_factory.mktemp("plugin")
    files = doc_files()
    assert {"toy_method.py", "toy_dataset.py", "toy_backbone.py"} <= set(files)
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body, encoding="utf-8")
    (root / "toy_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: toy-plugin\nVersion: 1.0\n"
    )
    return root


def idmm(plugin: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), str(REPO)]), "IDMM_RUNS_DIR": str(cwd / "runs")}
    return subprocess.run(
        [*idmm_subprocess_cmd(), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_documented_plugin_registers_and_trains(plugin, tmp_path):
    listed = idmm(plugin, "methods", cwd=tmp_path)
    assert listed.returncode == 0 and re.search(r"^toy\s+toy: one crop", listed.stdout, flags=re.M), listed
    datasets = json.loads(idmm(plugin, "data", "list", "--json", cwd=tmp_path).stdout)
    assert {"name": "toy_shapes", "classes": 2} in [{k: d[k] for k in ("name", "classes")} for d in datasets]
    models = json.loads(idmm(plugin, "models", "--json", cwd=tmp_path).stdout)
    assert any(m["name"] == "vit_femto_p4" and m["family"] == "vit" for m in models)

    recipe = tmp_path / "toy.toml"
    recipe.write_text(RECIPE)
    run = idmm(plugin, "run", recipe, "--name", "toy", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["method"] == "toy" and summary["dataset"] == "toy_shapes" and summary["backbone"] == "vit_femto_p4"
    assert set(summary["stages"]) == {"pretrain", "finetune_8"} and summary["test_acc"] is not None
    saved = (tmp_path / "runs" / "toy" / "recipe.toml").read_text()
    assert "[pretrain.toy]\nscale = 2.0" in saved  # the method's own settings, resolved


def test_a_key_the_plugin_method_lacks_is_an_error_naming_it(plugin, tmp_path):
    recipe = tmp_path / "toy.toml"
    recipe.write_text(RECIPE)
    bad = idmm(plugin, "run", recipe, "--set", "pretrain.scal=3", cwd=tmp_path)
    assert bad.returncode == 2
    assert (
        "pretrain.scal: unknown key (did you mean 'scale'" in bad.stderr
        and "for pretraining method 'toy'" in bad.stderr
    )
    assert not (tmp_path / "runs").exists()


def test_a_broken_plugin_names_itself(tmp_path):
    root = tmp_path / "broken"
    (root / "broken_plugin-1.0.dist-info").mkdir(parents=True)
    (root / "broken_plugin-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1\n")
    (root / "broken_plugin-1.0.dist-info" / "entry_points.txt").write_text("[idmm.methods]\nbroken = no_such_module\n")
    result = idmm(root, "methods", cwd=tmp_path)
    assert result.returncode == 2
    assert "pretraining method plugin 'broken' (no_such_module" in result.stderr and "Traceback" not in result.stderr
