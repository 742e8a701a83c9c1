"""`idmm zoo` end to end against a loopback Hub (tests/hub_server.py) with the real huggingface_hub client.

Nothing of huggingface_hub is mocked: only the server is ours. A real tiny run is trained once per
module; its stages are pushed, pulled, loaded by plain timm in a subprocess that never imports
idmm_tui, and used as the ``init`` of a transfer run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from idmm_tui.engine.checkpoint import load_checkpoint
from idmm_tui.engine.distributed import Placement
from idmm_tui.fsutil import sha256_file
from idmm_tui.launch import create_run, execute
from idmm_tui.methods.base import TwoPart
from idmm_tui.methods.finetune import classifier_head
from idmm_tui.models.registry import create_backbone
from tests.conftest import TINY_RECIPE
from tests.hub_server import LoopbackHub

TOKEN = "hf_loopback_SECRET_token_123"
WRONG = "hf_wrong_SECRET_token_456"
FT, PT = "finetune_24", "pretrain"
# huggingface_hub's LFS upload passes a file object as data=…, which httpx deprecates: not ours to fix.
# --dist loadgroup: the module's fixtures are built once, so its tests stay on one xdist worker
pytestmark = [
    pytest.mark.xdist_group("test_zoo"),
    pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_images):
    """One real tiny run (IDMM pretraining 2 epochs at 16 px, fine-tuning 2 epochs at 24 px)."""
    root = tmp_path_factory.mktemp("zoo-run")
    recipe = root / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(root=tiny_images))
    run, resolved = create_run(recipe, [], root / "runs", "src")
    execute(run, resolved, Placement(torch.device("cpu")))
    return run


@pytest.fixture(scope="module")
def hub_server():
    with LoopbackHub(token=TOKEN, lifetime_s=300) as server:
        yield server


@pytest.fixture()
def hub(hub_server):
    """The module's loopback Hub, reset to inline ("regular") uploads for each test."""
    hub_server.state.lfs_threshold = None
    yield hub_server
    hub_server.state.lfs_threshold = None


@pytest.fixture(autouse=True)
def zoo_env(tmp_path, monkeypatch):
    """A private registry, HF home and (empty) catalogue per test; no ambient Hub settings."""
    monkeypatch.setenv("IDMM_ZOO_DIR", str(tmp_path / "zoo"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text("")
    monkeypatch.setenv("IDMM_ZOO_CATALOGUE", str(catalogue))
    for var in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_XET"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "zoo"


def hub_args(hub, token: str | None = TOKEN) -> list[str]:
    return ["--endpoint", hub.url] + (["--token", token] if token else [])


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text and WRONG not in text


def scan_for_secrets(*folders: Path) -> None:
    """No file under ``folders`` (registry, HF home, run dir) holds a token."""
    for folder in folders:
        for path in folder.rglob("*") if folder.exists() else []:
            if path.is_file():
                data = path.read_bytes()
                assert TOKEN.encode() not in data and WRONG.encode() not in data, path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line_error(result) -> str:
    lines = [line for line in result.err.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.err
    return lines[-1]


def idmm_module(run, stage: str) -> torch.nn.Module:
    """The run's own model for ``stage`` (idmm's classes), to compare predictions with."""
    tensors, meta = load_checkpoint(run.checkpoint(stage))
    backbone = create_backbone("vit_micro_p4", img_size=meta["resolution"], drop_path_rate=0.0)
    backbone.load_state_dict({k.removeprefix("backbone."): v for k, v in tensors.items() if k.startswith("backbone.")})
    if meta["kind"] != "finetune":
        return backbone.eval()
    head = classifier_head(backbone.num_features, meta["num_classes"])
    head.load_state_dict({k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")})
    return TwoPart(backbone, head).eval()


# Runs in a fresh interpreter that imports timm, never idmm_tui.
TIMM_ONLY = r"""
import json, sys
import timm, torch
from safetensors.torch import load_file, save_file
torch.set_num_threads(1)
spec = json.loads(sys.argv[1])
out = {}
for key, (ref, x_key) in spec["models"].items():
    model = timm.create_model(ref, pretrained=True).eval()
    with torch.no_grad():
        out[key] = model(load_file(spec["inputs"])[x_key]).contiguous()
save_file(out, spec["output"])
leaked = sorted(m for m in sys.modules if m.split(".")[0] == "idmm_tui")
assert not leaked, leaked
print("timm-only ok", sorted(out))
"""


def test_push_pull_round_trip_regular_and_lfs_loads_in_plain_timm(cli, trained, hub, tmp_path, monkeypatch):
    outputs = []
    # 1. inline ("regular") upload of the fine-tuned classifier
    hub.state.lfs_threshold = None
    r = cli("zoo", "push", trained.path, "--stage", FT, "--name", "tiny-ft", "--repo", "org/tiny-ft", *hub_args(hub))
    outputs.append(r)
    assert r.code == 0, r.err
    assert "pushed tiny-ft to org/tiny-ft" in r.err
    assert not [p for p in hub.requests() if "/lfs-upload/" in p]
    # 2. LFS upload (HF_HUB_DISABLE_XET=1: plain Git LFS basic transfer) of the pretrained backbone
    hub.state.lfs_threshold = 1024
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    r = cli("zoo", "push", trained.path, "--stage", PT, "--name", "tiny-bb", "--repo", "org/tiny-bb", *hub_args(hub))
    outputs.append(r)
    assert r.code == 0, r.err
    bb_sha = sha256_file(tmp_path / "zoo" / "tiny-bb" / "model.safetensors")
    assert f"/lfs-upload/{bb_sha}" in hub.requests("PUT")
    assert any(p == f"/lfs-verify/{bb_sha}" for p in hub.requests("POST"))

    # 3. pull both into a fresh registry: byte-identical weights
    fresh = tmp_path / "fresh-zoo"
    monkeypatch.setenv("IDMM_ZOO_DIR", str(fresh))
    for repo, name in (("org/tiny-ft", "tiny-ft"), ("org/tiny-bb", "tiny-bb")):
        r = cli("zoo", "pull", repo, "--endpoint", hub.url, "--json")
        outputs.append(r)
        assert r.code == 0, r.err
        assert r.json()["name"] == name and not r.json()["fallback"]
        assert "Fetching" in r.err  # huggingface_hub's progress bar
        for file in ("model.safetensors", "config.json", "README.md"):
            assert (fresh / name / file).read_bytes() == (tmp_path / "zoo" / name / file).read_bytes(), file
    r = cli("zoo", "list", "--json")
    assert {row["name"]: row["repo"] for row in r.json()} == {"tiny-bb": "org/tiny-bb", "tiny-ft": "org/tiny-ft"}
    assert all(row["local"] for row in r.json())

    # 4. plain timm, no idmm: local-dir: and hf-hub: both load and predict like the run's own model
    g = torch.Generator().manual_seed(0)
    inputs = {"x24": torch.randn(4, 3, 24, 24, generator=g), "x16": torch.randn(4, 3, 16, 16, generator=g)}
    save_file(inputs, tmp_path / "inputs.safetensors")
    spec = {
        "inputs": str(tmp_path / "inputs.safetensors"),
        "output": str(tmp_path / "out.safetensors"),
        "models": {
            "local_ft": [f"local-dir:{fresh / 'tiny-ft'}", "x24"],
            "local_bb": [f"local-dir:{fresh / 'tiny-bb'}", "x16"],
            "hub_ft": ["hf-hub:org/tiny-ft", "x24"],
            "hub_bb": ["hf-hub:org/tiny-bb", "x16"],
        },
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "IDMM_"))}
    env.update(
        HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-sub"), HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1"
    )
    proc = subprocess.run(
        [sys.executable, "-c", TIMM_ONLY, json.dumps(spec)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = load_file(tmp_path / "out.safetensors")
    with torch.no_grad():
        want_ft = idmm_module(trained, FT)(inputs["x24"])
        want_bb = idmm_module(trained, PT)(inputs["x16"])
    for key, want in (("local_ft", want_ft), ("hub_ft", want_ft), ("local_bb", want_bb), ("hub_bb", want_bb)):
        torch.testing.assert_close(got[key], want, rtol=1e-5, atol=1e-6, msg=key)
    assert torch.equal(got["local_ft"].argmax(1), want_ft.argmax(1))

    for result in outputs:
        assert_no_secret(result.out, result.err)
    scan_for_secrets(tmp_path / "zoo", fresh, tmp_path / "hf-home", tmp_path / "hf-sub", trained.path)


def test_transfer_from_a_pulled_zoo_model_and_lineage(cli, trained, hub, tmp_path, tiny_images):
    r = cli("zoo", "push", trained.path, "--stage", FT, "--name", "parent", "--repo", "org/parent", *hub_args(hub))
    assert r.code == 0, r.err
    cli("zoo", "rm", "parent")
    r = cli("zoo", "pull", "org/parent", *hub_args(hub, None))
    assert r.code == 0, r.err
    zoo_weights = load_file(tmp_path / "zoo" / "parent" / "model.safetensors")

    # Fine-tune from the zoo model with a vanishing learning rate: the finished weights are the
    # starting weights (to ~1e-9), so they must equal the zoo weights (a random start would differ by ~1e-2).
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(root=tiny_images))
    overrides = [
        "init=zoo:parent",
        "pretrain.method=none",
        "finetune.0.epochs=1",
        "finetune.0.lr=1e-9",
        "finetune.0.warmup_epochs=0",
    ]
    run, resolved = create_run(recipe, overrides, tmp_path / "runs", "child")
    summary = execute(run, resolved, Placement(torch.device("cpu")))
    assert summary["init"] == "zoo:parent" and summary["status"] == "completed"
    assert "finetune_24: 1 epochs at 24px, batch 8, from init zoo:parent" in run.log.read_text()
    tensors, _ = load_checkpoint(run.checkpoint(FT))
    backbone = {k.removeprefix("backbone."): v for k, v in tensors.items() if k.startswith("backbone.")}
    assert set(backbone) == {k for k in zoo_weights if not k.startswith("head.")}
    for key, value in backbone.items():
        torch.testing.assert_close(value, zoo_weights[key], rtol=0, atol=1e-6, msg=key)
    fresh = create_backbone("vit_micro_p4", img_size=24).state_dict()
    assert max((fresh[k] - backbone[k]).abs().max().item() for k in fresh) > 1e-2

    # a model pushed from the child run names its parent (config.json and model card)
    r = cli("zoo", "push", run.path, "--name", "child")
    assert r.code == 0, r.err
    child = tmp_path / "zoo" / "child"
    parent = json.loads((child / "config.json").read_text())["idmm"]["parent"]
    assert parent["init"] == "zoo:parent" and parent["repo"] == "org/parent"
    assert parent["sha256"] == sha256_file(tmp_path / "zoo" / "parent" / "model.safetensors")
    card = (child / "README.md").read_text()
    assert "\nbase_model: org/parent\n" in card and "initialised from `zoo:parent`" in card  # huggingface_hub's YAML
    r = cli("zoo", "show", "child")
    assert "parent: zoo:parent" in r.out


def test_hub_faults_are_one_line_errors(cli, trained, hub, tmp_path, monkeypatch):
    outputs = []
    # no token at all: refused before anything is written
    r = cli("zoo", "push", trained.path, "--name", "m", "--repo", "org/m", *hub_args(hub, None))
    outputs.append(r)
    assert r.code == 5 and "no Hub token" in one_line_error(r)
    assert not (tmp_path / "zoo" / "m").exists()
    # a rejected token: 401, the token never echoed
    r = cli("zoo", "push", trained.path, "--name", "m", "--repo", "org/m", *hub_args(hub, WRONG))
    outputs.append(r)
    assert r.code == 5 and "rejected the token (401" in one_line_error(r)
    # private repo: invisible without the token, readable with it
    r = cli("zoo", "push", trained.path, "--name", "m", "--repo", "org/private-m", "--private", *hub_args(hub))
    outputs.append(r)
    assert r.code == 0, r.err
    monkeypatch.setenv("IDMM_ZOO_DIR", str(tmp_path / "zoo2"))
    r = cli("zoo", "pull", "org/private-m", *hub_args(hub, WRONG))
    outputs.append(r)
    assert r.code == 5 and "repo org/private-m not found" in one_line_error(r) and "private" in r.err
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the token from the environment
    r = cli("zoo", "pull", "org/private-m", "--endpoint", hub.url)
    outputs.append(r)
    assert r.code == 0, r.err
    monkeypatch.delenv("HF_TOKEN")
    # unknown repo, unknown revision: 404s
    r = cli("zoo", "pull", "org/nope", *hub_args(hub, None))
    assert r.code == 5 and "repo org/nope not found" in one_line_error(r)
    r = cli("zoo", "pull", "org/private-m", "--revision", "v9", "--name", "other", *hub_args(hub))
    outputs.append(r)
    assert r.code == 5 and "revision 'v9' not found in org/private-m" in one_line_error(r)
    assert sorted(p.name for p in (tmp_path / "zoo2").iterdir()) == ["private-m"]  # nothing half-written
    for result in outputs:
        assert_no_secret(result.out, result.err)
    scan_for_secrets(tmp_path / "zoo", tmp_path / "zoo2", tmp_path / "hf-home")


def test_unreachable_hub_answers_fast_and_falls_back_to_the_local_copy(cli, trained, hub, tmp_path):
    dead = f"http://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    r = cli("zoo", "pull", "org/anything", "--endpoint", dead)
    assert time.monotonic() - start < 3
    assert r.code == 6 and "hub unreachable" in one_line_error(r)
    assert not (tmp_path / "zoo" / "anything").exists()
    start = time.monotonic()
    r = cli("zoo", "push", trained.path, "--name", "kept", "--repo", "org/kept", "--endpoint", dead, "--token", TOKEN)
    assert time.monotonic() - start < 5
    assert r.code == 6 and "saved locally as kept" in one_line_error(r)
    assert_no_secret(r.out, r.err)
    # a model pulled earlier is still usable when the Hub is gone
    assert cli("zoo", "push", trained.path, "--name", "fb", "--repo", "org/fb", *hub_args(hub)).code == 0
    assert cli("zoo", "rm", "fb").code == 0
    assert cli("zoo", "pull", "org/fb", "--endpoint", hub.url).code == 0
    start = time.monotonic()
    r = cli("zoo", "pull", "org/fb", "--endpoint", dead, "--json")
    assert time.monotonic() - start < 3
    assert r.code == 0 and r.json()["fallback"] and "using the local copy of fb" in r.err


def test_catalogue_sha256_mismatch_is_refused_and_leaves_no_trace(cli, trained, hub, tmp_path):
    assert cli("zoo", "push", trained.path, "--stage", PT, "--name", "c", "--repo", "org/c", *hub_args(hub)).code == 0
    good = sha256_file(tmp_path / "zoo" / "c" / "model.safetensors")
    entry = (
        'repo = "org/c"\nstatus = "published"\nbackbone = "vit_micro_p4"\nmethod = "idmm"\n'
        'dataset = "imagefolder"\nstage = "pretrain"\nkind = "backbone"\nresolution = 16\n'
        'metrics = {{loss = 6.5}}\nsource_run = "src"\nsha256 = "{sha}"\n'
    )
    (tmp_path / "catalogue.toml").write_text(
        "[models.cat-good]\n"
        + entry.format(sha=good)
        + "\n[models.cat-bad]\n"
        + entry.format(sha="0" * 64)
        + '\n[models.planned]\nrepo = "org/planned"\nstatus = "not-published"\nbackbone = "pvt_v2_b0"\n'
        'method = "idmm"\ndataset = "flowers102"\nstage = "pretrain"\nkind = "backbone"\nresolution = 112\n'
    )
    before = sorted(p.name for p in (tmp_path / "zoo").iterdir())
    r = cli("zoo", "pull", "cat-bad", "--endpoint", hub.url)
    assert r.code == 4 and "refused, nothing installed" in one_line_error(r)
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir()) == before  # no entry, no staging folder
    r = cli("zoo", "pull", "cat-good", "--endpoint", hub.url)
    assert r.code == 0 and "matches the catalogue" in r.err
    r = cli("zoo", "pull", "planned")
    assert r.code == 2 and "is not-published" in one_line_error(r)
    r = cli("zoo", "list", "--json")
    rows = {row["name"]: row for row in r.json()}
    assert rows["cat-good"]["local"] and rows["cat-good"]["local_matches"] and not rows["cat-bad"]["local"]
    assert rows["planned"]["status"] == "not-published" and rows["c"]["status"] == "local"
    r = cli("zoo", "show", "cat-good")
    assert r.code == 0 and "published" in r.out and "org/c" in r.out


def test_push_refuses_to_overwrite_a_name_without_force(cli, trained, tmp_path):
    assert cli("zoo", "push", trained.path, "--stage", PT, "--name", "taken").code == 0
    weights = tmp_path / "zoo" / "taken" / "model.safetensors"
    before = weights.read_bytes()
    r = cli("zoo", "push", trained.path, "--stage", FT, "--name", "taken")
    assert r.code == 2 and "already exists" in one_line_error(r) and "--force" in r.err
    assert weights.read_bytes() == before
    assert cli("zoo", "push", trained.path, "--stage", PT, "--name", "taken").code == 0  # same source: fine
    r = cli("zoo", "push", trained.path, "--stage", FT, "--name", "taken", "--force")
    assert r.code == 0 and weights.read_bytes() != before
    assert json.loads((tmp_path / "zoo" / "taken" / "config.json").read_text())["num_classes"] == 3


@pytest.mark.parametrize(
    "args",
    [
        ["zoo", "rm", "../x"],
        ["zoo", "show", "/etc"],
        ["zoo", "pull", "../x"],
        ["zoo", "pull", "/abs/path"],
        ["zoo", "pull", "org/x", "--name", "../x"],
        ["zoo", "push", "RUN", "--name", "../x"],
        ["zoo", "push", "RUN", "--name", "/tmp/evil"],
    ],
)
def test_names_that_escape_the_registry_are_refused(cli, trained, tmp_path, args):
    args = [str(trained.path) if a == "RUN" else a for a in args]
    r = cli(*args)
    assert r.code == 2 and "invalid zoo" in one_line_error(r)
    assert not (tmp_path / "x").exists() and not Path("/tmp/evil").exists()
    assert not (tmp_path / "zoo").exists() or not list((tmp_path / "zoo").iterdir())


def test_run_without_a_finished_stage_cannot_be_pushed(cli, tmp_path, tiny_images):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(root=tiny_images))
    run, _ = create_run(recipe, [], tmp_path / "runs", "unfinished")
    r = cli("zoo", "push", run.path)
    assert r.code == 2 and "no finished stage" in one_line_error(r)
    r = cli("zoo", "push", tmp_path)
    assert r.code == 2 and "not an idmm run directory" in one_line_error(r)
    assert not (tmp_path / "zoo").exists() or not list((tmp_path / "zoo").iterdir())


def test_init_zoo_name_missing_locally_says_how_to_pull(cli, tmp_path, tiny_images):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(root=tiny_images))
    r = cli("run", recipe, "--set", "init=zoo:absent", "--runs-dir", tmp_path / "runs")
    assert r.code == 2 and "idmm zoo pull absent" in one_line_error(r)
    r = cli("run", recipe, "--set", "init=zoo:../x", "--runs-dir", tmp_path / "runs")
    assert r.code == 2 and "invalid zoo model name" in one_line_error(r)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
