"""The package as users get it: `python -m build` (sdist, then the wheel from the sdist), installed into a
fresh venv, runs `idmm run` on the embedded demo from an empty directory outside the source tree.

The fresh venv sees this environment's installed dependencies (torch, timm…) through a .pth file
instead of downloading them again; idmm itself comes from the wheel alone (checked).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

# --dist loadgroup: the module's fixtures are built once, so its tests stay on one xdist worker
pytestmark = pytest.mark.xdist_group("test_wheel")

pytest.importorskip("build")

REPO = Path(__file__).resolve().parents[2]
SKIP = {".git", ".venv", "runs", "build", "dist", ".pytest_cache", ".ruff_cache", ".cache", ".gl"}  # top level


def copy_source(dest: Path) -> Path:
    """The source tree without local state (as a clean clone has it)."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = Path(folder) == REPO
        return {
            n
            for n in names
            if (top and (n in SKIP or n.startswith(".gpu"))) or n == "__pycache__" or n.endswith((".egg-info", ".pyc"))
        }

    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    src = copy_source(tmp / "src")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("idmm-*.whl")
    (sdist,) = (tmp / "dist").glob("idmm-*.tar.gz")
    return wheel, sdist


def test_the_wheel_ships_recipes_catalogue_and_licence(built):
    wheel, sdist = built
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    shipped = {n.removeprefix("idmm_tui/_shipped/") for n in names if n.startswith("idmm_tui/_shipped/")}
    assert {f"recipes/{p.name}" for p in (REPO / "recipes").glob("*.toml")} <= shipped
    assert "zoo/catalogue.toml" in shipped
    assert "idmm_tui/data/embedded/fashion_mnist_2040.npz" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    assert not any(n.startswith(("recipes/", "zoo/", "tests/")) for n in names)  # nothing outside the package
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
    assert any(m.endswith("/recipes/demo.toml") for m in members) and any(m.endswith("/CHANGELOG.md") for m in members)


def test_the_installed_wheel_runs_the_demo_from_an_empty_directory(built, tmp_path):
    wheel, _ = built
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # this environment's dependencies, seen from the fresh venv (its .pth files are not processed there,
    # so an editable idmm installed here stays invisible)
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_idmm_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "IDMM_RUNS_DIR", "IDMM_ZOO_CATALOGUE")}
    env["OMP_NUM_THREADS"] = "1"
    idmm = str(env_dir / "bin" / "idmm")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([idmm, *args], capture_output=True, text=True, cwd=empty, env=env, timeout=600)

    where = subprocess.run(
        [python, "-c", "import idmm_tui; print(idmm_tui.__file__)"], capture_output=True, text=True, cwd=empty, env=env
    )
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr  # the wheel's, not the repo's
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("idmm "), version.stderr
    assert "demo" in run("recipes", "list").stdout
    zoo = run("zoo", "list", "--json")
    assert zoo.returncode == 0 and "vit-micro-embedded-idmm" in zoo.stdout, zoo.stderr  # the shipped catalogue
    proc = run(
        "run", "recipes/demo.toml", "--json",
        "--set", "data.classes=[0,1]", "--set", "pretrain.epochs=1", "--set", "pretrain.warmup_epochs=1",
        "--set", "pretrain.knn_every=0",
        "--set", "finetune.0.epochs=1", "--set", "device=\"cpu\"",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["status"] == "completed" and summary["dataset"] == "embedded"
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == empty / "runs" and (run_dir / "checkpoints" / "finetune_28.safetensors").is_file()
    assert 0.0 <= summary["test_acc"] <= 100.0
