"""Hostile input and faults (issue 13): no traceback, no hang, no silent corruption, no leaked secret,
no stranger's process killed.

Every case asserts the exit code, a one-line message (no traceback) and that nothing that existed
before changed. Full and read-only filesystems are real tmpfs mounts (root only; skipped otherwise).
Runs are made without training (``completed_run``: a real run directory with a random-init stage
checkpoint), so the whole file takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from idmm_tui.engine import checkpoint as ckpt
from idmm_tui.fsutil import sha256_file
from idmm_tui.launch import create_run
from idmm_tui.models.registry import create_backbone
from idmm_tui.runs.store import RunDir, check_run_name, process_start
from tests.conftest import TINY_RECIPE
from tests.fixtures_data import make_imagefolder

# --dist loadgroup: the module's fixtures are built once, so its tests stay on one xdist worker
pytestmark = pytest.mark.xdist_group("test_hostile")

SECRET = "hf_SECRET_tok3n_987"
ESC = "\x1b"


# ---------------------------------------------------------------------------------------------
# helpers


def tree(*paths: Path) -> dict[str, str]:
    """Every file under ``paths`` with its sha256 (and every folder): proves that nothing changed."""
    out = {}
    for root in paths:
        if root.is_file():
            out[str(root)] = sha256_file(root)
            continue
        for p in sorted(root.rglob("*")) if root.exists() else []:
            out[str(p)] = sha256_file(p) if p.is_file() else "dir"
    return out


def one_line(result, code: int) -> str:
    """The error line of a failed command: exit ``code``, no traceback, one ``error:`` line, no raw ESC."""
    assert result.code == code, (result.code, result.err)
    assert "Traceback" not in result.err, result.err
    assert ESC not in result.err and ESC not in result.out
    lines = [line for line in result.err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.err
    return errors[0]


def recipe_file(folder: Path, images: Path, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.toml"
    path.write_text(TINY_RECIPE.format(root=images) + extra)
    return path


def small_images(root: Path) -> Path:
    make_imagefolder(root, classes=2, per_class=3, test_per_class=1)
    return root


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width`` x ``height`` pixels (a decompression bomb's header), with no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def completed_template(tmp_path_factory, tiny_images) -> Path:
    """A completed pretraining-only run made without training: the real run directory that create_run
    makes, plus a stage checkpoint of a random-init backbone and the summary of a finished run."""
    root = tmp_path_factory.mktemp("hostile-run")
    recipe = recipe_file(root, tiny_images)
    run, resolved = create_run(recipe, ["finetune=[]"], root / "runs", "done")
    backbone = create_backbone("vit_micro_p4", img_size=16, drop_path_rate=0.0)
    tensors = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    meta = {"stage": "pretrain", "kind": "pretrain", "resolution": 16, "backbone": "vit_micro_p4"}
    meta.update(num_classes=0, classes=[], metrics={"loss": 1.5})
    ckpt.save_checkpoint(run.checkpoint("pretrain"), tensors, meta)
    summary = run.read_summary()
    summary.update(
        status="completed",
        stages={"pretrain": {"kind": "pretrain", "resolution": 16, "epochs": 2, "status": "completed", "loss": 1.5}},
        wall_time_s=1.0,
        pid=None,
    )
    run.write_summary(summary)
    return run.path


@pytest.fixture()
def runs(tmp_path, completed_template) -> Path:
    """A runs directory holding a copy of the completed run ``done``."""
    folder = tmp_path / "runs"
    shutil.copytree(completed_template, folder / "done")
    return folder


def edit_summary(run: Path, **changes) -> None:
    path = run / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(changes)
    path.write_text(json.dumps(summary))


@pytest.fixture()
def zoo(tmp_path, monkeypatch) -> Path:
    """A private zoo registry and catalogue, no ambient Hub settings."""
    monkeypatch.setenv("IDMM_ZOO_DIR", str(tmp_path / "zoo"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text("")
    monkeypatch.setenv("IDMM_ZOO_CATALOGUE", str(catalogue))
    for var in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "zoo"


@pytest.fixture()
def zoo_model(cli, runs, zoo) -> Path:
    """The completed run pushed to the local registry as ``m``."""
    result = cli("zoo", "push", runs / "done", "--name", "m")
    assert result.code == 0, result.err
    return zoo / "m"


def flip_byte(path: Path, offset: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture()
def mount_tmpfs(tmp_path):
    """``mount(name, size, read_only)`` -> a real tmpfs folder (root only); unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    mounted: list[Path] = []

    def mount(name: str, size: str = "1m", read_only: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir()
        opts = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def fill(folder: Path) -> None:
    """Fill the filesystem of ``folder`` to the last byte."""
    for name, chunk in (("ballast", 65536), ("ballast2", 1)):
        try:
            with open(folder / name, "wb", buffering=0) as handle:
                while True:
                    handle.write(b"\0" * chunk)
        except OSError:
            pass


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """Tables as wide as they need: no cell is shortened with an ellipsis."""
    monkeypatch.setenv("COLUMNS", "300")


# ---------------------------------------------------------------------------------------------
# recipes


def test_recipe_that_is_not_utf8(cli, tmp_path):
    recipe = tmp_path / "latin1.toml"
    recipe.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    line = one_line(cli("run", recipe, "--runs-dir", tmp_path / "runs"), 2)
    assert str(recipe) in line and "not UTF-8" in line and "0xe9" in line
    assert not (tmp_path / "runs").exists()


def test_recipe_base_that_is_not_utf8_names_the_base(cli, tmp_path):
    (tmp_path / "base.toml").write_bytes(b"seed = 1\n# \xff\xfe\n")
    recipe = tmp_path / "child.toml"
    recipe.write_text('base = "base.toml"\n')
    line = one_line(cli("run", recipe, "--runs-dir", tmp_path / "runs"), 2)
    assert "base.toml" in line and "not UTF-8" in line


def test_recipe_that_is_a_directory(cli, tmp_path):
    line = one_line(cli("run", tmp_path, "--runs-dir", tmp_path / "runs"), 2)
    assert "is a directory" in line and not (tmp_path / "runs").exists()


def test_recipe_of_binary_garbage(cli, tmp_path):
    recipe = tmp_path / "garbage.toml"
    recipe.write_bytes(bytes(range(256)) * 4)
    assert str(recipe) in one_line(cli("run", recipe, "--runs-dir", tmp_path / "runs"), 2)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-base"])
def test_a_recipe_that_is_not_a_regular_file_neither_hangs_nor_fills_memory(cli, tmp_path, kind):
    recipe = tmp_path / "r.toml"
    if kind == "fifo":
        os.mkfifo(recipe)
    else:
        recipe.write_text('base = "/dev/zero"\n')
    line = one_line(cli("run", recipe, "--runs-dir", tmp_path / "runs"), 2)
    assert "not a regular file" in line


def test_init_with_a_pickle_checkpoint_says_what_is_supported(cli, tmp_path, tiny_images):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"\x80\x04pickle")
    recipe = recipe_file(tmp_path, tiny_images)
    line = one_line(cli("run", recipe, "--runs-dir", tmp_path / "runs", "--set", f"init={weights}"), 2)
    assert "not found" not in line and "only safetensors" in line and "zoo:NAME" in line
    assert not (tmp_path / "runs").exists()


def test_data_root_that_is_a_file(cli, tmp_path, tiny_images):
    recipe = recipe_file(tmp_path, tiny_images)
    line = one_line(cli("run", recipe, "--runs-dir", tmp_path / "runs", "--set", f"data.root={recipe}"), 3)
    assert str(recipe) in line and not (tmp_path / "runs").exists()


def test_a_recipe_name_with_control_characters_gives_a_clean_default_run_name(tmp_path, tiny_images):
    from idmm_tui.launch import default_run_name, resolve_recipe

    recipe = recipe_file(tmp_path, tiny_images)
    resolved = resolve_recipe(recipe, [f'name="evil{ESC}[2J\\nname/../x"'])
    name = default_run_name(resolved, recipe, tmp_path)
    assert name.startswith("evil_2J_nname_._x-")
    check_run_name(name)


# ---------------------------------------------------------------------------------------------
# run names


@pytest.mark.parametrize(
    "name",
    [
        f"evil{ESC}[2J",
        "two\nlines",
        "a" * 300,
        "../escape",
        ".hidden",
        "-flag",
        "right\u202eto-left",
        "sp ace",
        "[red]markup[/]",
    ],
    ids=["escape", "newline", "too-long", "dotdot", "hidden", "dash", "bidi", "space", "markup"],
)
def test_bad_run_names_are_refused_as_the_message_says(cli, tmp_path, tiny_images, name):
    recipe = recipe_file(tmp_path, tiny_images)
    line = one_line(cli("run", recipe, "--runs-dir", tmp_path / "runs", "--name", name), 2)
    assert "invalid run name" in line and "letters, digits" in line
    assert not (tmp_path / "runs").exists()


def test_names_and_fields_from_files_are_shown_without_control_characters(cli, runs):
    evil = runs / f"evil{ESC}[2Jrun"
    shutil.copytree(runs / "done", evil)
    edit_summary(evil, name=evil.name, backbone=f"[red]vit{ESC}]0;title\x07", error=f"boom{ESC}[31m\nfake line")
    listed = cli("runs", "list", "--runs-dir", runs)
    assert listed.code == 0 and ESC not in listed.out and "\\x1b[2Jrun" in listed.out
    assert "[red]vit" in listed.out  # markup shown literally, not interpreted
    shown = cli("runs", "show", evil)
    assert shown.code == 0 and ESC not in shown.out and "\\x1b[31m\\x0afake line" in shown.out


# ---------------------------------------------------------------------------------------------
# paths and filesystems


def test_runs_dir_that_is_a_file(cli, tmp_path, tiny_images):
    recipe = recipe_file(tmp_path, tiny_images)
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    before = tree(blocker)
    line = one_line(cli("run", recipe, "--runs-dir", blocker), 7)
    assert "is a file, not a directory" in line
    assert "is a file, not a directory" in one_line(cli("runs", "list", "--runs-dir", blocker), 7)
    assert tree(blocker) == before


def test_runs_dir_under_a_file(cli, tmp_path, tiny_images):
    recipe = recipe_file(tmp_path, tiny_images)
    (tmp_path / "blocker").write_text("x")
    line = one_line(cli("run", recipe, "--runs-dir", tmp_path / "blocker" / "runs"), 7)
    assert "blocker" in line


def test_runs_dir_on_a_read_only_filesystem(cli, tmp_path, tiny_images, mount_tmpfs):
    recipe = recipe_file(tmp_path, tiny_images)
    ro = mount_tmpfs("ro", read_only=True)
    line = one_line(cli("run", recipe, "--runs-dir", ro / "runs"), 7)
    assert "read-only" in line and str(ro) in line


def test_runs_dir_on_a_full_filesystem_leaves_no_half_made_run(cli, tmp_path, tiny_images, mount_tmpfs):
    recipe = recipe_file(tmp_path, tiny_images)
    full = mount_tmpfs("full", size="256k")
    (full / "runs").mkdir()
    fill(full)
    line = one_line(cli("run", recipe, "--runs-dir", full / "runs", "--name", "r"), 7)
    assert "no space left" in line
    assert list((full / "runs").iterdir()) == []  # nothing half-made


def test_a_disk_that_fills_during_training(cli, tmp_path, tiny_images, mount_tmpfs):
    small = mount_tmpfs("small", size="1m")  # room for the run directory, not for a checkpoint
    recipe = recipe_file(tmp_path, tiny_images)
    result = cli("run", recipe, "--runs-dir", small / "runs", "--name", "r", "--set", "finetune=[]")
    line = one_line(result, 7)
    assert "no space left" in line and "idmm run --resume" in line
    assert not list((small / "runs" / "r" / "checkpoints").glob("*.tmp")) and not list(small.rglob(".*.tmp"))


def test_a_catalogue_of_the_wrong_shape(cli, zoo, tmp_path, monkeypatch):
    catalogue = tmp_path / "bad-catalogue.toml"
    monkeypatch.setenv("IDMM_ZOO_CATALOGUE", str(catalogue))
    catalogue.write_text(
        '[models.m]\nrepo = 5\nstatus = "published"\nbackbone = "b"\nmethod = "m"\n'
        'dataset = "d"\nstage = "s"\nkind = "backbone"\nresolution = "big"\n'
    )
    assert "must be" in one_line(cli("zoo", "list"), 2)
    catalogue.write_bytes(b"[models.m]\nrepo = '\xff'\n")
    assert str(catalogue) in one_line(cli("zoo", "list"), 2)


@pytest.mark.parametrize("command", ["report", "viz-params"])
def test_out_naming_an_existing_directory(cli, runs, tmp_path, command):
    target = tmp_path / "already-here"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    before = tree(runs, target)
    args = ["report", "done"] if command == "report" else ["viz", "params", "done", "--no-terminal"]
    line = one_line(cli(*args, "--out", target, "--runs-dir", runs), 2)
    assert "is a directory" in line and tree(runs, target) == before


def test_out_under_a_file(cli, runs, tmp_path):
    (tmp_path / "afile").write_text("x")
    line = one_line(cli("report", "done", "--out", tmp_path / "afile" / "r.md", "--runs-dir", runs), 2)
    assert "is a file, not a directory" in line


def test_zoo_dir_that_is_a_file(cli, runs, zoo):
    zoo.write_text("not a folder")
    before = tree(zoo, runs)
    for args in (["zoo", "list"], ["zoo", "push", str(runs / "done"), "--name", "x"], ["zoo", "show", "x"]):
        assert "is a file, not a directory" in one_line(cli(*args), 7)
    assert tree(zoo, runs) == before


def test_zoo_dir_on_a_full_filesystem(cli, runs, zoo, monkeypatch, mount_tmpfs):
    full = mount_tmpfs("fullzoo", size="512k")
    monkeypatch.setenv("IDMM_ZOO_DIR", str(full / "zoo"))
    (full / "zoo").mkdir()
    fill(full)
    line = one_line(cli("zoo", "push", runs / "done", "--name", "x"), 7)
    assert "no space left" in line
    assert [p.name for p in (full / "zoo").iterdir()] == []  # no entry, no staging folder left


def test_resume_removes_the_temporary_files_of_writes_a_kill_interrupted(runs):
    from idmm_tui.launch import open_for_resume

    run = runs / "done"
    edit_summary(run, status="interrupted")
    leftovers = [run / ".summary.json.abc123.tmp", run / "checkpoints" / ".last.json.x9.tmp"]
    for path in leftovers:
        path.write_text("half")
    keep = run / "checkpoints" / "pretrain.safetensors"
    open_for_resume(run)
    assert not any(p.exists() for p in leftovers) and keep.exists()


# ---------------------------------------------------------------------------------------------
# images


def bad_folder(tmp_path: Path, **bad: bytes | Path) -> Path:
    """A small imagefolder with the given bad files (name -> bytes) added to class 0 of train/."""
    root = small_images(tmp_path / "imgs")
    cls = sorted(p for p in (root / "train").iterdir())[0]
    for name, data in bad.items():
        if isinstance(data, bytes):
            (cls / name).write_bytes(data)
    return root


def truncated_jpeg(path: Path) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("filename", "content", "reason"),
    [
        ("empty.png", b"", "empty file"),
        ("text.png", b"hello, I am not a picture\n", "UnidentifiedImageError"),
        ("half.png", None, "broken"),
    ],
    ids=["empty", "text-named-png", "truncated-png"],
)
def test_undecodable_images_stop_before_the_run_is_created(cli, tmp_path, filename, content, reason):
    root = small_images(tmp_path / "imgs")
    target = sorted((root / "train").iterdir())[0] / filename
    if content is None:
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(target)
        target.write_bytes(target.read_bytes()[:-30])
    else:
        target.write_bytes(content)
    recipe = recipe_file(tmp_path, root)
    line = one_line(cli("run", recipe, "--runs-dir", tmp_path / "runs"), 3)
    assert str(target) in line and "skip_bad_images" in line
    assert reason.lower() in line.lower() or "truncated" in line.lower() or "Error" in line
    assert not (tmp_path / "runs").exists()


def test_a_decompression_bomb_is_named(cli, tmp_path):
    root = small_images(tmp_path / "imgs")
    bomb = png_header_only(sorted((root / "train").iterdir())[0] / "bomb.png", 60000, 60000)
    line = one_line(cli("run", recipe_file(tmp_path, root), "--runs-dir", tmp_path / "runs"), 3)
    assert str(bomb) in line and "decompression bomb" in line


def test_every_bad_image_is_listed_at_once(cli, tmp_path):
    root = small_images(tmp_path / "imgs")
    classes = sorted((root / "train").iterdir())
    bad = [classes[0] / "a.png", classes[1] / "b.jpg", root / "test" / classes[0].name / "c.png"]
    for path in bad:
        path.write_bytes(b"")
    line = one_line(cli("run", recipe_file(tmp_path, root), "--runs-dir", tmp_path / "runs"), 3)
    assert all(str(p) in line for p in bad[:2]) and "2 images cannot be decoded" in line


def test_a_truncated_jpeg_in_a_dataloader_worker_is_reported_once_by_name(cli, tmp_path):
    root = small_images(tmp_path / "imgs")
    bad = truncated_jpeg(sorted((root / "train").iterdir())[0] / "cut.jpg")
    recipe = recipe_file(tmp_path, root)
    result = cli("run", recipe, "--runs-dir", tmp_path / "runs", "--name", "r", "--set", "data.num_workers=1")
    line = one_line(result, 3)
    assert str(bad) in line and "truncated" in line and result.err.count(str(bad)) == 1
    summary = json.loads((tmp_path / "runs" / "r" / "summary.json").read_text())
    assert summary["status"] == "failed" and str(bad) in summary["error"]


def test_bad_images_are_skipped_when_the_recipe_says_so(tmp_path):
    from idmm_tui.data.registry import load_split
    from idmm_tui.engine.batches import BadImagesError, build_bank, preflight_images

    root = small_images(tmp_path / "imgs")
    cls = sorted((root / "train").iterdir())[0]
    (cls / "empty.png").write_bytes(b"")
    cut = truncated_jpeg(cls / "cut.jpg")
    split = load_split("imagefolder", root, "train")
    assert [b.name for b in preflight_images(split)] == [str(cls / "empty.png")]  # headers only
    with pytest.raises(BadImagesError) as info:
        build_bank(split, 32, cache="yes", num_workers=0)
    assert {b.name for b in info.value.bad} == {str(cls / "empty.png"), str(cut)}
    bank = build_bank(split, 32, cache="yes", num_workers=0, skip_bad=True)
    assert len(bank) == len(split) - 2 and len(bank.skipped) == 2 and "left out 2 images" in bank.describe()
    streamed = build_bank(split, 32, cache="no", num_workers=0)
    with pytest.raises(BadImagesError, match="cut.jpg|empty.png"):
        list(streamed.batches([torch.arange(len(split))]))
    streamed = build_bank(split, 32, cache="no", num_workers=0, skip_bad=True)  # one pass finds them
    assert len(streamed) == len(split) - 2 and len(streamed.skipped) == 2
    (images, _, labels, ids), *_ = list(streamed.batches([torch.arange(len(streamed))]))
    assert len(ids) == len(streamed) and torch.equal(labels, streamed.labels) and (labels >= 0).all()


def test_a_run_with_skip_bad_images_trains_without_them_and_says_which(cli, tmp_path):
    root = small_images(tmp_path / "imgs")
    cls = sorted((root / "train").iterdir())[0]
    (cls / "empty.png").write_bytes(b"")
    cut = truncated_jpeg(cls / "cut.jpg")
    recipe = recipe_file(tmp_path, root, "")
    args = ["--set", "data.skip_bad_images=true", "--set", "pretrain.epochs=1", "--set", "finetune.0.epochs=1"]
    result = cli("run", recipe, "--runs-dir", tmp_path / "runs", "--name", "r", "--json", *args)
    assert result.code == 0, result.err
    assert result.json()["status"] == "completed"
    log = (tmp_path / "runs" / "r" / "run.log").read_text()
    assert str(cls / "empty.png") in log and str(cut) in log and "left out 2 images" in log


@pytest.mark.parametrize(
    ("array", "mode"),
    [
        (np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16), "I;16"),
        (np.linspace(0, 1, 64 * 64).reshape(64, 64).astype(np.float32), "F"),
        (np.linspace(-5e6, 5e6, 64 * 64).reshape(64, 64).astype(np.int32), "I"),
    ],
    ids=["16-bit", "float", "32-bit-int"],
)
def test_high_bit_depth_images_are_scaled_not_clipped(array, mode):
    from idmm_tui.engine.batches import pil_to_uint8

    image = Image.fromarray(array)
    assert image.mode == mode
    tensor, _ = pil_to_uint8(image, 64)
    values = tensor[0].float()
    assert values.min() <= 2 and values.max() >= 253  # the full range, not all white / all black
    assert 100 < values.mean() < 155  # a ramp: mid-grey on average
    assert (values == 255).float().mean() < 0.05


def test_a_16_bit_png_file_trains_as_grey_not_white(tmp_path):
    from idmm_tui.data.base import open_image
    from idmm_tui.engine.batches import pil_to_uint8

    path = tmp_path / "deep.png"
    Image.fromarray(np.full((16, 16), 30000, np.uint16)).save(path)
    tensor, _ = pil_to_uint8(open_image(path), 16)
    assert abs(int(tensor[0, 0, 0]) - round(30000 / 65535 * 255)) <= 1


# ---------------------------------------------------------------------------------------------
# checkpoints


def interrupted(runs: Path) -> Path:
    """The completed run turned into one interrupted mid-stage (a real last checkpoint, the pretrain weights)."""
    run = runs / "done"
    tensors, _ = ckpt.load_checkpoint(RunDir(run).checkpoint("pretrain"))
    state = {
        "run": "done",
        "stage": "pretrain",
        "stage_index": 0,
        "stage_done": False,
        "epoch": 1,
        "step_in_epoch": 0,
        "global_step": 3,
        "accumulators": dict.fromkeys(
            (
                "epoch_loss",
                "epoch_steps",
                "epoch_images",
                "epoch_time",
                "window_loss",
                "window_steps",
                "window_images",
                "window_time",
            ),
            0,
        ),
        "wall_time_s": 1.0,
        "world_size": 1,
    }
    ckpt.save_checkpoint(RunDir(run).checkpoint("last"), tensors, state, versioned=True)
    edit_summary(run, status="interrupted", stages={})
    return run


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ({"stage_index": "zero"}, "'stage_index' has the wrong type"),
        ({"accumulators": [1, 2]}, "'accumulators' has the wrong type"),
        ({"epoch": -3}, "'epoch' has the wrong type"),
        ({"stage": "pretrain_999", "stage_index": 7}, "names stage 'pretrain_999'"),
        ({"stage": "finetune_24"}, "names stage 'finetune_24'"),
        ({"stage_done": "yes"}, "'stage_done' has the wrong type"),
    ],
    ids=["index-type", "accumulators-list", "negative-epoch", "stage-out-of-plan", "stage-renamed", "done-type"],
)
def test_resume_refuses_a_damaged_checkpoint_state(cli, runs, damage, needle):
    run = interrupted(runs)
    state_path = run / "checkpoints" / "last.json"
    state = json.loads(state_path.read_text())
    state.update(damage)
    state_path.write_text(json.dumps(state))
    before = tree(run)
    line = one_line(cli("run", "--resume", run), 4)
    assert needle in line
    assert tree(run) == before
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"  # never "completed"


def test_resume_refuses_a_checkpoint_state_that_is_not_an_object(cli, runs):
    run = interrupted(runs)
    (run / "checkpoints" / "last.json").write_text("[1, 2, 3]")
    before = tree(run)
    assert "not an idmm checkpoint" in one_line(cli("run", "--resume", run), 4)
    assert tree(run) == before


def test_stage_checkpoint_json_with_wrong_types(cli, runs, zoo):
    meta = runs / "done" / "checkpoints" / "pretrain.json"
    data = json.loads(meta.read_text())
    data["resolution"] = "sixteen"
    meta.write_text(json.dumps(data))
    before = tree(runs)
    assert "'resolution' has the wrong type" in one_line(cli("zoo", "push", runs / "done", "--name", "x"), 4)
    assert tree(runs) == before and not (zoo / "x").exists()


# ---------------------------------------------------------------------------------------------
# summaries


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "the file is empty"),
        ("{not json", "not valid JSON"),
        ('["a list"]', "not an object"),
        ('{"format": "idmm-run/1", "current": [1]}', "'current'"),
        ('{"format": "idmm-run/1", "stages": ["pretrain"]}', "'stages'"),
        ('{"format": "idmm-run/1", "test_acc": "high"}', "'test_acc'"),
        ('{"format": "idmm-run/1", "plan": [{"name": 3}]}', "'plan'"),
    ],
    ids=["empty", "not-json", "list", "current-list", "stages-list", "test-acc-string", "plan-name-number"],
)
def test_a_run_whose_summary_cannot_be_read_is_listed_as_unreadable(cli, runs, content, reason):
    shutil.copytree(runs / "done", runs / "broken")
    (runs / "broken" / "summary.json").write_text(content)
    before = tree(runs)
    listed = cli("runs", "list", "--runs-dir", runs, "--json")
    assert listed.code == 0, listed.err
    rows = {r["name"]: r for r in listed.json()}
    assert rows["done"]["status"] == "completed"  # the neighbour is untouched
    assert rows["broken"]["status"] == "unreadable" and reason in rows["broken"]["reason"]
    table = cli("runs", "list", "--runs-dir", runs)
    assert table.code == 0 and "unreadable" in table.out and "warning" in table.err
    assert reason in one_line(cli("runs", "show", runs / "broken"), 4)
    assert tree(runs) == before


def test_a_summary_that_is_a_fifo_does_not_hang_the_listing(cli, runs):
    shutil.copytree(runs / "done", runs / "piped")
    (runs / "piped" / "summary.json").unlink()
    os.mkfifo(runs / "piped" / "summary.json")
    (runs / "piped" / "metrics.jsonl").unlink(missing_ok=True)
    os.mkfifo(runs / "piped" / "metrics.jsonl")
    rows = {r["name"]: r for r in cli("runs", "list", "--runs-dir", runs, "--json").json()}
    assert rows["piped"]["status"] == "unreadable" and "not a regular file" in rows["piped"]["reason"]
    assert rows["done"]["status"] == "completed"


def test_an_image_file_that_is_a_fifo_is_named_not_waited_for(tmp_path):
    from idmm_tui.data.base import FileListDataset
    from idmm_tui.engine.batches import BadImagesError, build_bank, preflight_images

    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(good)
    os.mkfifo(tmp_path / "pipe.jpg")
    split = FileListDataset([good, tmp_path / "pipe.jpg"], [0, 1], ["a", "b"])
    assert [(b.name, b.reason) for b in preflight_images(split)] == [(str(tmp_path / "pipe.jpg"), "not a regular file")]
    with pytest.raises(BadImagesError, match="pipe.jpg"):
        build_bank(split, 8, cache="yes", num_workers=0)


def test_report_of_a_group_survives_a_damaged_summary(cli, runs):
    from idmm_tui.experiments.groups import Cell, Group

    shutil.copytree(runs / "done", runs / "g.seed-1")
    shutil.copytree(runs / "done", runs / "g.seed-2")
    (runs / "g.seed-2" / "summary.json").write_text('{"format": "idmm-run/1", "stages": 5}')
    cells = [Cell("g.seed-1", {"seed": "1"}), Cell("g.seed-2", {"seed": "2"})]
    Group("g", runs, {"recipe": "x.toml", "axes": []}, cells).save()
    result = cli("report", "g", "--runs-dir", runs, "--format", "json")
    assert result.code == 0, result.err
    assert any("unreadable" in p for cell in result.json()["cells"] for p in cell["pending"])


@pytest.mark.parametrize(
    "recipe",
    [
        'model = 3\n[pretrain]\nepochs = "many"\n[[finetune]]\nepochs = [1]\n',
        'seed = "x"\n[data]\nclasses = "all"\n',
        b"\xff\xfe not toml",
    ],
    ids=["wrong-types", "wrong-types-2", "not-utf8"],
)
def test_report_and_params_survive_a_run_recipe_of_the_wrong_shape(cli, runs, recipe):
    shutil.copytree(runs / "done", runs / "odd")
    path = runs / "odd" / "recipe.toml"
    path.write_bytes(recipe if isinstance(recipe, bytes) else recipe.encode())
    before = tree(runs)
    result = cli("report", "done", "odd", "--runs-dir", runs, "--format", "json")
    assert result.code == 0, result.err
    params = cli("viz", "params", "done", "odd", "--runs-dir", runs, "--no-terminal", "--metric", "wall_time_s")
    assert params.code == 0, params.err
    assert tree(runs) == before


def test_resume_of_a_run_whose_summary_is_damaged(cli, runs):
    (runs / "done" / "summary.json").write_text('{"format": "idmm-run/1", "status": 7}')
    before = tree(runs)
    assert "'status'" in one_line(cli("run", "--resume", runs / "done"), 4)
    assert tree(runs) == before


# ---------------------------------------------------------------------------------------------
# process identity


@pytest.fixture()
def stranger():
    """A process that is not a run (a sleeping child), killed afterwards."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_reused_pid_is_not_the_run_and_is_never_signalled(cli, runs, stranger):
    from idmm_tui.launch import open_for_resume
    from idmm_tui.tui.procs import stop_run

    run = runs / "done"
    # the run was killed with -9 while running; its pid now belongs to another process
    edit_summary(run, status="running", pid=stranger.pid, pid_start="some-boot:12345", host=socket.gethostname())
    summary = json.loads((run / "summary.json").read_text())
    listed = {r["name"]: r for r in cli("runs", "list", "--runs-dir", runs, "--json").json()}
    assert listed["done"]["status"] == "interrupted"
    with pytest.raises(Exception, match="is not running|is gone"):
        stop_run(run, summary)
    time.sleep(0.1)
    assert stranger.poll() is None  # still alive: no SIGTERM was sent to it
    open_for_resume(run)  # not refused as "still running"


def test_a_live_run_is_still_recognised_and_resume_refused(cli, runs, stranger):
    run = runs / "done"
    live = stranger.pid  # stands for the training process: its recorded identity matches
    edit_summary(run, status="running", pid=live, pid_start=process_start(live), host=socket.gethostname())
    before = tree(run)
    assert "still running" in one_line(cli("run", "--resume", run), 2)
    listed = {r["name"]: r for r in cli("runs", "list", "--runs-dir", runs, "--json").json()}
    assert listed["done"]["status"] == "running" and tree(run) == before


# ---------------------------------------------------------------------------------------------
# zoo integrity


def test_zoo_show_refuses_weights_that_changed_on_disk(cli, zoo_model):
    weights = zoo_model / "model.safetensors"
    good = sha256_file(weights)
    flip_byte(weights)
    bad = sha256_file(weights)
    before = tree(zoo_model)
    line = one_line(cli("zoo", "show", "m"), 4)
    assert str(weights) in line and good in line and bad in line
    assert tree(zoo_model) == before


def test_init_from_a_zoo_model_that_changed_on_disk_is_refused(cli, zoo_model, tmp_path, tiny_images):
    flip_byte(zoo_model / "model.safetensors")
    recipe = recipe_file(tmp_path / "r", tiny_images)
    line = one_line(cli("run", recipe, "--runs-dir", tmp_path / "new", "--set", 'init="zoo:m"'), 4)
    assert "sha256" in line and "model.safetensors" in line
    assert not (tmp_path / "new").exists()


def test_init_from_a_run_whose_stage_weights_changed_is_refused(cli, runs, tmp_path, tiny_images):
    flip_byte(runs / "done" / "checkpoints" / "pretrain.safetensors")
    recipe = recipe_file(tmp_path / "r", tiny_images)
    line = one_line(cli("run", recipe, "--runs-dir", tmp_path / "new", "--set", f'init="{runs / "done"}"'), 4)
    assert "pretrain.safetensors" in line and "pretrain.json" in line


def test_zoo_verify_checks_every_local_model(cli, runs, zoo_model):
    assert cli("zoo", "push", runs / "done", "--name", "n").code == 0
    ok = cli("zoo", "verify", "--json")
    assert ok.code == 0 and {r["status"] for r in ok.json()} == {"ok"}
    flip_byte(zoo_model / "model.safetensors")
    result = cli("zoo", "verify")
    line = one_line(result, 4)
    assert "1 of 2" in line and str(zoo_model / "model.safetensors") in line
    assert "mismatch" in result.out and "ok" in result.out
    assert one_line(cli("zoo", "verify", "nope"), 2)


def test_zoo_files_with_wrong_types_do_not_break_the_listing(cli, zoo_model):
    (zoo_model / "source.json").write_text('{"sha256": 5, "published": "x"}')
    config = json.loads((zoo_model / "config.json").read_text())
    config["idmm"]["metrics"] = "lots"
    config["idmm"]["backbone"] = f"vit{ESC}[2J"
    (zoo_model / "config.json").write_text(json.dumps(config))
    listed = cli("zoo", "list")
    assert listed.code == 0 and ESC not in listed.out and "m" in listed.out, listed.err
    shown = cli("zoo", "show", "m")
    assert shown.code == 0 and ESC not in shown.out, shown.err


# ---------------------------------------------------------------------------------------------
# Hub: timeouts and credentials


@pytest.fixture()
def silent_hub():
    """An endpoint that accepts TCP connections and never answers (the kernel's backlog accepts them)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.fixture()
def short_timeout(monkeypatch):
    monkeypatch.setenv("IDMM_HUB_TIMEOUT", "1")


def test_pull_from_a_hub_that_never_answers_times_out(cli, zoo, silent_hub, short_timeout):
    start = time.monotonic()
    line = one_line(cli("zoo", "pull", "org/model", "--endpoint", silent_hub), 6)
    assert time.monotonic() - start < 30
    assert "did not answer within 1 s" in line and not zoo.exists() or not any(zoo.iterdir())


def test_push_to_a_hub_that_never_answers_times_out_and_keeps_the_local_model(
    cli, runs, zoo, silent_hub, short_timeout
):
    start = time.monotonic()
    args = ["zoo", "push", runs / "done", "--name", "m", "--repo", "org/m", "--endpoint", silent_hub]
    line = one_line(cli(*args, "--token", SECRET), 6)
    assert time.monotonic() - start < 30
    assert "did not answer" in line and "saved locally as m" in line and (zoo / "m" / "model.safetensors").is_file()


def test_a_silent_hub_falls_back_to_the_local_copy(cli, zoo_model, silent_hub, short_timeout):
    source = json.loads((zoo_model / "source.json").read_text())
    source["repo"] = "org/m"
    (zoo_model / "source.json").write_text(json.dumps(source))
    result = cli("zoo", "pull", "org/m", "--name", "m", "--endpoint", silent_hub)
    assert result.code == 0, result.err
    assert "using the local copy" in result.err and "did not answer" in result.err


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://user:{secret}@127.0.0.1:{port}",
        "http://{secret}@127.0.0.1:{port}",
        "http://127.0.0.1:{port}/?token={secret}",
        "http://127.0.0.1:{port}/api?x=1&access_token={secret}#frag",
    ],
    ids=["user-password", "user-only", "query-token", "query-fragment"],
)
def test_credentials_in_the_endpoint_url_are_never_printed(cli, zoo, runs, endpoint):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = endpoint.format(secret=SECRET, port=port)
    pulled = cli("zoo", "pull", "org/model", "--endpoint", url)
    assert "***" in one_line(pulled, 6)
    pushed = cli("zoo", "push", runs / "done", "--name", "m", "--repo", "org/m", "--endpoint", url, "--token", "t0k3n")
    one_line(pushed, 6)
    for text in (pulled.err, pulled.out, pushed.err, pushed.out):
        assert SECRET not in text
    for path in zoo.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes()


def test_credentials_in_hf_endpoint_are_redacted_from_progress_lines(cli, zoo, silent_hub, short_timeout, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", silent_hub.replace("http://", f"http://me:{SECRET}@"))
    result = cli("zoo", "pull", "org/model")
    one_line(result, 6)
    assert "pulling org/model@main from http://***@127.0.0.1" in result.err and SECRET not in result.err


def test_an_invalid_endpoint_with_credentials_is_refused_without_them(cli, zoo):
    line = one_line(cli("zoo", "pull", "org/model", "--endpoint", f"ftp://u:{SECRET}@host"), 2)
    assert "invalid hub endpoint" in line and SECRET not in line


# ---------------------------------------------------------------------------------------------
# sweeps


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{garbage", "not valid JSON"),
        ("", "the file is empty"),
        ('{"format": "idmm-sweep/1", "recipe": "r.toml", "cells": "all"}', "'cells' is not a list"),
        ('{"format": "idmm-sweep/1", "recipe": "r.toml", "cells": [{"name": "../x"}]}', "not a valid run name"),
        ('{"format": "idmm-sweep/1", "recipe": 5, "cells": []}', "'recipe' is not a string"),
        ('{"format": "idmm-sweep/1", "recipe": "r", "seeds": ["0"], "cells": []}', "'seeds'"),
    ],
    ids=["garbage", "empty", "cells-string", "cell-escapes", "recipe-number", "seeds-strings"],
)
def test_a_damaged_sweep_manifest_is_reported_as_damaged_not_missing(cli, tmp_path, content, needle):
    runs = tmp_path / "runs"
    (runs / "sweeps").mkdir(parents=True)
    manifest = runs / "sweeps" / "g.json"
    manifest.write_text(content)
    before = tree(runs)
    for args in (["sweep", "--group", "g"], ["report", "g"]):
        line = one_line(cli(*args, "--runs-dir", runs), 4)
        assert "damaged" in line and needle in line and "no sweep group" not in line
    assert tree(runs) == before


@pytest.mark.parametrize(
    ("launcher", "needle"),
    [("no-such-launcher-xyz --nproc 2", "not found on $PATH"), ('torchrun "unterminated', "does not parse")],
    ids=["missing", "unparsable"],
)
def test_a_bad_launcher_is_refused_before_anything_runs(cli, tmp_path, tiny_images, launcher, needle):
    recipe = recipe_file(tmp_path, tiny_images)
    args = ["sweep", recipe, "--axis", "model.drop_path=0.1,0.2", "--launcher", launcher]
    assert needle in one_line(cli(*args, "--runs-dir", tmp_path / "runs"), 2)
    assert not (tmp_path / "runs").exists()


def test_a_group_name_that_makes_run_names_too_long(cli, tmp_path, tiny_images):
    recipe = recipe_file(tmp_path, tiny_images)
    args = ["sweep", recipe, "--axis", "model.drop_path=0.1,0.2", "--group", "g" * 190, "--dry-run"]
    line = one_line(cli(*args, "--runs-dir", tmp_path / "runs"), 2)
    assert "invalid run name" in line and "shorter --group" in line and not (tmp_path / "runs").exists()


def test_a_report_of_a_random_init_sweep_names_no_pretraining_epochs():
    from idmm_tui.experiments.report import RunFacts, describe_runs

    def facts(seed: int) -> RunFacts:
        recipe = {"pretrain": {"method": "none", "epochs": 800}, "finetune": [{"epochs": 12}], "seed": seed}
        return RunFacts(f"r{seed}", "completed", {}, seed, recipe, {})

    notes = describe_runs([facts(0), facts(1)])[0]
    assert "pretraining epochs" not in notes and "fine-tuning epochs: 12" in notes


# ---------------------------------------------------------------------------------------------
# the boundary itself


def test_a_genuine_bug_shows_its_traceback_and_says_it_is_a_bug(cli, monkeypatch):
    import idmm_tui.cli as cli_module

    def broken(*args, **kwargs):
        raise RuntimeError("an internal inconsistency")

    monkeypatch.setattr("idmm_tui.methods.method_names", broken)
    result = cli("methods")
    assert result.code == 70 and "Traceback" in result.err and "this is a bug in idmm" in result.err
    assert cli_module.BUG_EXIT == 70


def test_any_error_message_is_redacted_and_escaped_at_the_boundary(cli, monkeypatch):
    from idmm_tui.errors import IdmmError

    def failing(*args, **kwargs):
        raise IdmmError(f"could not reach http://u:{SECRET}@h/x?token={SECRET} while {ESC}[2J doing [red]it")

    monkeypatch.setattr("idmm_tui.methods.method_names", failing)
    line = one_line(cli("methods"), 1)
    assert SECRET not in line and "http://***@h/x?token=***" in line and "\\x1b[2J" in line and "[red]it" in line


def test_an_os_error_anywhere_is_one_line_with_the_filesystem_exit_code(cli, monkeypatch):
    def failing(*args, **kwargs):
        raise OSError(28, "No space left on device", "/some/where/file")

    monkeypatch.setattr("idmm_tui.methods.method_names", failing)
    line = one_line(cli("methods"), 7)
    assert "/some/where/file" in line and "no space left" in line
