"""Checkpoints (safetensors + JSON, sha256-verified), optimiser / RNG state, atomic writes."""

from __future__ import annotations

import json

import pytest
import torch

from idmm_tui.engine.checkpoint import (
    FORMAT,
    load_checkpoint,
    load_optimizer_tensors,
    load_weights,
    optimizer_tensors,
    read_state,
    restore_rng,
    rng_tensors,
    save_checkpoint,
)
from idmm_tui.errors import CheckpointError
from idmm_tui.fsutil import atomic_write, atomic_write_json, atomic_write_text, sha256_file


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "model.weight": torch.randn(4, 3, generator=g),
        "model.bias": torch.zeros(4),
        "ids": torch.arange(5),
        "flags": torch.tensor([1, 0, 1], dtype=torch.uint8),
        "half": torch.randn(2, 2, generator=g).to(torch.bfloat16),
    }


def _save(tmp_path, state=None):
    stem = tmp_path / "ckpt" / "last"
    save_checkpoint(stem, _tensors(), state or {"epoch": 3, "global_step": 120, "stage": "pretrain"})
    return stem


def test_round_trip(tmp_path):
    stem = _save(tmp_path)
    assert stem.with_suffix(".safetensors").is_file() and stem.with_suffix(".json").is_file()
    tensors, state = load_checkpoint(stem)
    want = _tensors()
    assert set(tensors) == set(want)
    for key, value in want.items():
        assert tensors[key].dtype == value.dtype
        assert torch.equal(tensors[key], value), key
    assert state["epoch"] == 3 and state["global_step"] == 120 and state["stage"] == "pretrain"
    assert state["format"] == FORMAT
    assert state["sha256"] == sha256_file(stem.with_suffix(".safetensors"))
    assert read_state(stem) == state
    # no temporary files are left beside the checkpoint
    assert sorted(p.name for p in stem.parent.iterdir()) == ["last.json", "last.safetensors"]


def test_save_accepts_non_contiguous_and_grad_tensors(tmp_path):
    w = torch.randn(3, 5, requires_grad=True)
    save_checkpoint(tmp_path / "c", {"w": w, "t": w.detach().t()}, {})
    tensors, _ = load_checkpoint(tmp_path / "c")
    assert torch.equal(tensors["w"], w.detach()) and torch.equal(tensors["t"], w.detach().t())


def test_overwrite_replaces_pair(tmp_path):
    stem = _save(tmp_path, {"epoch": 1})
    save_checkpoint(stem, {"x": torch.ones(2)}, {"epoch": 2})
    tensors, state = load_checkpoint(stem)
    assert list(tensors) == ["x"] and state["epoch"] == 2


def test_flipped_byte_is_corrupt(tmp_path):
    stem = _save(tmp_path)
    weights = stem.with_suffix(".safetensors")
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # inside the tensor data: still parseable, wrong values
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(stem)


def test_truncated_file_is_corrupt(tmp_path):
    stem = _save(tmp_path)
    weights = stem.with_suffix(".safetensors")
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(stem)
    weights.write_bytes(b"")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(stem)


def test_missing_or_bad_parts(tmp_path):
    stem = _save(tmp_path)
    stem.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(stem)
    with pytest.raises(CheckpointError, match="missing"):
        read_state(stem)

    stem = _save(tmp_path)
    stem.with_suffix(".safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(stem)

    stem = _save(tmp_path)
    stem.with_suffix(".json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(stem)
    stem.with_suffix(".json").write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(CheckpointError, match="not an idmm checkpoint"):
        load_checkpoint(stem)


def test_load_weights(tmp_path):
    stem = _save(tmp_path)
    weights = load_weights(stem.with_suffix(".safetensors"))
    assert torch.equal(weights["model.weight"], _tensors()["model.weight"])
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_weights(bad)


# --------------------------------------------------------------------------------------------
# optimiser state


def _model_and_optimizer(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.GELU(), torch.nn.Linear(4, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)
    return model, opt


def _model_weights(tensors):
    return {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}


def _step(model, opt, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(8, 5, generator=g), torch.randint(3, (8,), generator=g)
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def test_optimizer_round_trip_gives_identical_next_step(tmp_path):
    model, opt = _model_and_optimizer()
    for s in range(3):
        _step(model, opt, s)
    flat = optimizer_tensors(opt)
    assert flat and all(k.startswith("optim.") for k in flat)
    assert any(k.endswith(".exp_avg") for k in flat) and any(k.endswith(".exp_avg_sq") for k in flat)
    params = {f"model.{k}": v for k, v in model.state_dict().items()}
    save_checkpoint(tmp_path / "c", {**params, **flat}, {"step": 3})
    tensors, _ = load_checkpoint(tmp_path / "c")

    # a fresh model + optimiser restored from the checkpoint
    model2, opt2 = _model_and_optimizer(seed=99)
    model2.load_state_dict(_model_weights(tensors))
    load_optimizer_tensors(opt2, tensors)
    for (i, a), (j, b) in zip(opt.state_dict()["state"].items(), opt2.state_dict()["state"].items(), strict=True):
        assert i == j and a.keys() == b.keys()
        for name in a:
            assert torch.equal(torch.as_tensor(a[name]), torch.as_tensor(b[name])), name

    _step(model, opt, 10)
    _step(model2, opt2, 10)
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)
    # and the restored state really matters: a fresh optimiser's step differs
    model3, opt3 = _model_and_optimizer(seed=99)
    model3.load_state_dict(_model_weights(tensors))
    _step(model3, opt3, 10)
    assert not all(torch.equal(p, q) for p, q in zip(model.parameters(), model3.parameters(), strict=True))


def test_load_optimizer_tensors_ignores_other_keys():
    model, opt = _model_and_optimizer()
    _step(model, opt, 0)
    flat = optimizer_tensors(opt)
    model2, opt2 = _model_and_optimizer()
    load_optimizer_tensors(opt2, {**flat, "model.0.weight": torch.zeros(1), "rng.torch": torch.zeros(1)})
    assert set(optimizer_tensors(opt2)) == set(flat)


# --------------------------------------------------------------------------------------------
# RNG state


def test_rng_round_trip():
    gens = {"aug": torch.Generator().manual_seed(5), "order": torch.Generator().manual_seed(6)}
    torch.manual_seed(1234)
    saved = rng_tensors(gens)
    assert set(saved) >= {"rng.torch", "rng.aug", "rng.order"}
    assert all(v.dtype == torch.uint8 for v in saved.values())

    def draws():
        aug, order = gens["aug"], gens["order"]
        return torch.rand(4), torch.rand(4, generator=aug), torch.randint(9, (4,), generator=order)

    first = draws()
    torch.rand(7)  # move everything on
    torch.rand(7, generator=gens["aug"])
    restore_rng(saved, gens)
    second = draws()
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def test_rng_round_trip_through_checkpoint(tmp_path):
    gen = torch.Generator().manual_seed(7)
    torch.rand(3, generator=gen)
    save_checkpoint(tmp_path / "r", rng_tensors({"aug": gen}), {})
    want = torch.rand(5, generator=gen)
    fresh = torch.Generator()
    tensors, _ = load_checkpoint(tmp_path / "r")
    restore_rng(tensors, {"aug": fresh})
    assert torch.equal(torch.rand(5, generator=fresh), want)


# --------------------------------------------------------------------------------------------
# atomic writes


def test_atomic_write_keeps_old_file_when_writer_raises(tmp_path):
    path = tmp_path / "state.json"
    atomic_write_text(path, "old contents")

    def failing(tmp):
        tmp.write_text("half-written", encoding="utf-8")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(path, failing)
    assert path.read_text(encoding="utf-8") == "old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # the temporary file is gone


def test_atomic_write_creates_parents_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "data.json"
    atomic_write_json(path, {"x": 1})
    assert json.loads(path.read_text(encoding="utf-8")) == {"x": 1}
    atomic_write_json(path, {"x": 2, "y": [1, 2]})
    assert json.loads(path.read_text(encoding="utf-8")) == {"x": 2, "y": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["data.json"]
    # a failing first write leaves nothing behind
    with pytest.raises(ValueError):
        atomic_write(tmp_path / "new.bin", lambda tmp: (_ for _ in ()).throw(ValueError("no")))
    assert not (tmp_path / "new.bin").exists()


def test_sha256_file(tmp_path):
    import hashlib

    path = tmp_path / "blob"
    data = bytes(range(256)) * 5000
    path.write_bytes(data)
    assert sha256_file(path, chunk=4096) == hashlib.sha256(data).hexdigest()


def test_versioned_checkpoint_survives_a_crash_between_tensors_and_state(tmp_path):
    """The JSON commits the pair: new tensors written but the JSON not yet switched still load the old pair."""
    import json

    import torch

    from idmm_tui.engine.checkpoint import load_checkpoint, save_checkpoint

    stem = tmp_path / "last"
    save_checkpoint(stem, {"w": torch.zeros(3)}, {"step": 1}, versioned=True)
    first = json.loads(stem.with_suffix(".json").read_text())["weights"]
    # a crash after writing the next tensors but before the JSON: simulate the orphan file
    (tmp_path / "last.999.safetensors").write_bytes(b"half-written")
    tensors, state = load_checkpoint(stem)
    assert state["step"] == 1 and torch.equal(tensors["w"], torch.zeros(3))
    save_checkpoint(stem, {"w": torch.ones(3)}, {"step": 2}, versioned=True)
    tensors, state = load_checkpoint(stem)
    assert state["step"] == 2 and torch.equal(tensors["w"], torch.ones(3))
    assert [p.name for p in tmp_path.glob("last.*.safetensors")] == [state["weights"]] != [first]
