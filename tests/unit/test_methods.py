"""Baseline pretraining methods (Table 2): each loss against a slow re-computation of its formula,
the momentum / queue / center updates step by step, and a one-step smoke test per method."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from idmm_tui.methods import config_class, get_method, method_names
from idmm_tui.methods.base import Batch
from idmm_tui.methods.dino import DINOConfig, dino_loss, teacher_temperature, update_center
from idmm_tui.methods.moco import cosine_momentum, enqueue, infonce_queue, moco_v3_ctr
from idmm_tui.methods.simclr import nt_xent
from idmm_tui.methods.supcon import supcon_loss
from idmm_tui.models.registry import create_backbone
from idmm_tui.recipe import PretrainConfig

BASELINES = ["simclr", "supcon", "mocov2", "mocov3", "dino"]


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


# --------------------------------------------------------------------------------------------
# losses vs. slow formulas


def test_nt_xent_matches_loop():
    torch.manual_seed(0)
    b, tau = 3, 0.1
    z = torch.randn(2 * b, 5, dtype=torch.float64)
    total = 0.0
    for i in range(2 * b):
        j = (i + b) % (2 * b)
        denom = sum(math.exp(_cos(z[i], z[k]) / tau) for k in range(2 * b) if k != i)
        total += -math.log(math.exp(_cos(z[i], z[j]) / tau) / denom)
    assert float(nt_xent(z, tau)) == pytest.approx(total / (2 * b), rel=1e-5)


def test_supcon_matches_explicit_positive_sets():
    torch.manual_seed(1)
    tau = 0.1
    z = torch.randn(8, 5, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 0, 1, 0, 2])
    total = 0.0
    for i in range(8):
        others = [a for a in range(8) if a != i]
        positives = [p for p in others if labels[p] == labels[i]]
        denom = sum(math.exp(_cos(z[i], z[a]) / tau) for a in others)
        total += -sum(math.log(math.exp(_cos(z[i], z[p]) / tau) / denom) for p in positives) / len(positives)
    assert float(supcon_loss(z, labels, tau)) == pytest.approx(total / 8, rel=1e-5)


def test_supcon_with_distinct_labels_is_nt_xent():
    torch.manual_seed(2)
    z = torch.randn(6, 4)
    assert float(supcon_loss(z, torch.arange(3).repeat(2), 0.2)) == pytest.approx(float(nt_xent(z, 0.2)), rel=1e-5)


def test_moco_v2_infonce_with_explicit_queue():
    torch.manual_seed(3)
    tau = 0.2
    q, k = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    queue = F.normalize(torch.randn(5, 4, dtype=torch.float64), dim=1)
    total = 0.0
    for i in range(3):
        pos = math.exp(_cos(q[i], k[i]) / tau)
        neg = sum(math.exp(_cos(q[i], queue[j]) / tau) for j in range(5))
        total += -math.log(pos / (pos + neg))
    assert float(infonce_queue(q, k, queue, tau)) == pytest.approx(total / 3, rel=1e-5)


def test_moco_v3_ctr_with_2tau_scaling():
    torch.manual_seed(4)
    tau = 0.2
    q, k = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    total = 0.0
    for i in range(3):
        denom = sum(math.exp(_cos(q[i], k[j]) / tau) for j in range(3))
        total += -math.log(math.exp(_cos(q[i], k[i]) / tau) / denom)
    assert float(moco_v3_ctr(q, k, tau)) == pytest.approx(2 * tau * total / 3, rel=1e-5)
    # with an offset, the positives are further down the gathered keys (this rank's slice)
    keys = torch.cat([torch.randn(3, 4, dtype=torch.float64), k])
    total = 0.0
    for i in range(3):
        denom = sum(math.exp(_cos(q[i], keys[j]) / tau) for j in range(6))
        total += -math.log(math.exp(_cos(q[i], keys[3 + i]) / tau) / denom)
    assert float(moco_v3_ctr(q, keys, tau, offset=3)) == pytest.approx(2 * tau * total / 3, rel=1e-5)


def test_dino_loss_explicit_centering_sharpening():
    torch.manual_seed(5)
    b, k, n_global, n_views, t_s, t_t = 2, 6, 2, 4, 0.1, 0.04
    student = torch.randn(n_views * b, k, dtype=torch.float64)
    teacher = torch.randn(n_global * b, k, dtype=torch.float64)
    center = torch.randn(1, k, dtype=torch.float64)
    total = 0.0
    for t in range(n_global):
        for s in range(n_views):
            if s == t:
                continue
            h = 0.0
            for i in range(b):
                tl = [(float(teacher[t * b + i, c]) - float(center[0, c])) / t_t for c in range(k)]
                sl = [float(student[s * b + i, c]) / t_s for c in range(k)]
                tz, sz = sum(math.exp(x) for x in tl), sum(math.exp(x) for x in sl)
                h += -sum(math.exp(tl[c]) / tz * math.log(math.exp(sl[c]) / sz) for c in range(k))
            total += h / b
    got = dino_loss(student, teacher, center, n_global, t_s, t_t)
    assert float(got) == pytest.approx(total, rel=1e-5)


def test_teacher_temperature_warmup():
    cfg = DINOConfig(epochs=100, teacher_temp_start=0.04, teacher_temp=0.07, teacher_temp_epochs=30)
    assert teacher_temperature(cfg, 0.0) == pytest.approx(0.04)
    assert teacher_temperature(cfg, 0.15) == pytest.approx(0.055)
    assert teacher_temperature(cfg, 0.5) == pytest.approx(0.07)


# --------------------------------------------------------------------------------------------
# state updates


def test_dino_center_update():
    center = torch.ones(1, 3)
    teacher = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    update_center(center, teacher, 0.9)
    assert torch.allclose(center, 0.9 * torch.ones(1, 3) + 0.1 * torch.tensor([[2.0, 3.0, 4.0]]))


def test_queue_enqueue_wraps_around():
    queue, ptr = torch.zeros(5, 2), torch.zeros((), dtype=torch.long)
    enqueue(queue, ptr, torch.full((3, 2), 1.0))
    assert int(ptr) == 3 and queue[:3].eq(1).all() and queue[3:].eq(0).all()
    enqueue(queue, ptr, torch.tensor([[2.0, 2], [3, 3], [4, 4]]))
    assert int(ptr) == 1
    assert queue[:, 0].tolist() == [4.0, 1.0, 1.0, 2.0, 3.0]
    enqueue(queue, ptr, torch.arange(14.0).view(7, 2))  # more keys than slots: the newest 5 are kept
    assert int(ptr) == 1 and sorted(queue[:, 0].tolist()) == [4.0, 6.0, 8.0, 10.0, 12.0]


def test_cosine_momentum():
    assert cosine_momentum(0.99, 0.0) == pytest.approx(0.99)
    assert cosine_momentum(0.99, 0.5) == pytest.approx(0.995)
    assert cosine_momentum(0.99, 1.0) == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# one training step of every method


def _cfg(**kw) -> PretrainConfig:
    base = dict(
        epochs=2,
        resolution=16,
        global_crops=2,
        local_crops=2,
        proj_dim=8,
        proj_hidden=16,
        queue_size=12,
        dino_out=10,
        blur_prob=0.0,
    )
    values = {**base, **kw}
    cls = config_class(values.get("method", "idmm"))
    return cls(**{k: v for k, v in values.items() if k in cls.model_fields})  # the keys this method has


def _batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8, generator=g)
    return Batch(images, torch.tensor([[16, 16]] * 8), torch.tensor([0, 1, 2, 3] * 2), torch.arange(8))


def test_baselines_registered():
    assert set(BASELINES) <= set(method_names())
    assert get_method("supcon").uses_labels
    assert not any(get_method(n).uses_labels for n in BASELINES if n != "supcon")


@pytest.mark.parametrize("name", BASELINES)
def test_one_step(name):
    torch.manual_seed(0)
    method, cfg = get_method(name), _cfg(method=name)
    backbone = create_backbone("vit_nano_p2", img_size=16)
    module = method.build(backbone, int(backbone.num_features), 8, cfg)
    assert module.backbone is backbone
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    loss, seen = method.loss(module, _batch(), torch.Generator().manual_seed(1), cfg, 0)
    assert torch.isfinite(loss) and seen >= 16
    opt.zero_grad()
    loss.backward()
    assert backbone.patch_embed.proj.weight.grad is not None
    opt.step()
    teacher = getattr(module, "teacher_backbone", None)
    if teacher is None:
        return
    # teacher: not trained by the optimiser, synced to the student at the first loss call
    assert all(not p.requires_grad and p.grad is None for p in module.teacher_parameters())
    before = [p.clone() for p in module.teacher_parameters()]
    students = [p.detach().clone() for p in module.student_parameters()]
    progress = 0.25
    method.after_step(module, progress)
    m = cfg.momentum if name == "mocov2" else cosine_momentum(cfg.momentum, progress)
    changed = False
    for t, t0, s in zip(module.teacher_parameters(), before, students, strict=True):
        assert torch.allclose(t, m * t0 + (1 - m) * s, atol=1e-6)
        changed |= not torch.equal(t, t0)
    assert changed
    state = module.state_dict()
    assert "synced" in state and any(k.startswith("teacher_backbone.") for k in state)
    if name == "mocov2":
        assert int(state["queue_ptr"]) == 8 and state["queue"].shape == (12, 8)
    if name == "dino":
        assert float(state["progress"]) == progress and state["center"].abs().sum() > 0


# --------------------------------------------------------------------------------------------
# recipes and `idmm run --set pretrain.method=…`


@pytest.mark.parametrize("name", BASELINES)
def test_recipe_accepts_method(tmp_path, name):
    from idmm_tui.launch import resolve_recipe

    path = tmp_path / "r.toml"
    path.write_text("")
    recipe = resolve_recipe(
        path, [f"pretrain.method={name}", "pretrain.temperature=0.3", "pretrain.mocov2.queue_size=64"]
    )
    assert recipe.pretrain.method == name and recipe.pretrain.temperature == 0.3
    assert getattr(recipe.pretrain, "queue_size", 64) == 64  # a [pretrain.mocov2] value reaches mocov2 only


@pytest.mark.parametrize("name", ["idmm", *(n for n in BASELINES if n != "mocov2")])
def test_a_key_of_another_method_is_an_error_naming_the_method(tmp_path, name):
    from idmm_tui.errors import RecipeError
    from idmm_tui.launch import resolve_recipe

    path = tmp_path / "r.toml"
    path.write_text("")
    with pytest.raises(
        RecipeError,
        match=rf"pretrain.queue_size: unknown key for pretraining method '{name}'.*"
        r"\[pretrain.mocov2\]",
    ):
        resolve_recipe(path, [f"pretrain.method={name}", "pretrain.queue_size=64"])


def test_idmm_run_every_baseline(cli, tiny_recipe, tmp_path):
    """One pretraining epoch of each baseline through the real CLI (no fine-tuning)."""
    for name in BASELINES:
        result = cli(
            "run",
            tiny_recipe,
            "--runs-dir",
            tmp_path / "runs",
            "--name",
            name,
            "--json",
            "--set",
            f"pretrain.method={name}",
            "--set",
            "pretrain.epochs=1",
            "--set",
            "finetune.0.epochs=0",
            "--set",
            "pretrain.dino.dino_out=64",
            "--set",
            "pretrain.proj_hidden=32",
            "--set",
            "pretrain.mocov2.queue_size=16",
        )
        assert result.code == 0, result.err
        summary = result.json()
        assert summary["status"] == "completed" and "pretrain" in summary["stages"]


@pytest.mark.parametrize("name", ["mocov2", "mocov3", "dino"])
def test_state_dict_resume_is_exact(name):
    """Everything the next step depends on (teacher, queue, pointer, center, progress) is in state_dict."""
    method, cfg = get_method(name), _cfg(method=name)

    def build():
        backbone = create_backbone("vit_nano_p2", img_size=16)
        return method.build(backbone, int(backbone.num_features), 8, cfg)

    torch.manual_seed(0)
    a = build()
    opt = torch.optim.AdamW(a.parameters(), lr=1e-3)
    for step in range(2):
        loss, _ = method.loss(a, _batch(), torch.Generator().manual_seed(step), cfg, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step(a, 0.1 * (step + 1))
    b = build()
    b.load_state_dict(a.state_dict())
    results = []
    for m in (a, b):
        torch.manual_seed(7)
        loss, _ = method.loss(m, _batch(), torch.Generator().manual_seed(9), cfg, 0)
        results.append((float(loss.detach()), {k: v.clone() for k, v in m.state_dict().items()}))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(v, results[1][1][k]) for k, v in results[0][1].items())


# --------------------------------------------------------------------------------------------
# Table 10 optimisers and the Table 9 projection-MLP switch


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("idmm", "adamw"),
        ("simclr", "sgd"),
        ("supcon", "sgd"),
        ("mocov2", "sgd"),
        ("mocov3", "adamw"),
        ("dino", "adamw"),
    ],
)
def test_auto_optimizer_follows_table_10_and_is_written_into_the_resolved_recipe(tmp_path, name, expected):
    from idmm_tui.engine.optim import make_optimizer
    from idmm_tui.launch import resolve_recipe

    path = tmp_path / "r.toml"
    path.write_text("")
    recipe = resolve_recipe(path, [f"pretrain.method={name}"])
    assert recipe.pretrain.optimizer == expected
    assert resolve_recipe(path, [f"pretrain.method={name}", "pretrain.optimizer=adamw"]).pretrain.optimizer == "adamw"
    optimizer = make_optimizer(torch.nn.Linear(2, 2), recipe.pretrain)
    assert isinstance(optimizer, torch.optim.SGD if expected == "sgd" else torch.optim.AdamW)
    if expected == "sgd":
        assert optimizer.param_groups[0]["momentum"] == 0.9


def test_projection_mlp_defaults_per_method_and_switches_idmm():
    backbone = create_backbone("vit_nano_p2", img_size=16)
    d = int(backbone.num_features)
    plain = get_method("idmm").build(backbone, d, 8, _cfg(method="idmm"))
    assert isinstance(plain.head, torch.nn.Linear) and plain.head.in_features == d  # W on the features
    cfg = _cfg(method="idmm", projection_mlp=True, proj_hidden=32, proj_dim=16)
    mlp = get_method("idmm").build(create_backbone("vit_nano_p2", img_size=16), d, 8, cfg)
    assert isinstance(mlp.head, torch.nn.Sequential) and mlp.head[-1].in_features == 16
    assert mlp(torch.randn(4, 3, 16, 16)).shape == (4, 8)
    loss, _ = get_method("idmm").loss(mlp, _batch(), torch.Generator().manual_seed(0), cfg, 0)
    assert torch.isfinite(loss)
    simclr = get_method("simclr")
    assert not isinstance(simclr.build(backbone, d, 8, _cfg(method="simclr")).head, torch.nn.Identity)
    off = simclr.build(backbone, d, 8, _cfg(method="simclr", projection_mlp=False))
    assert isinstance(off.head, torch.nn.Identity)


@pytest.mark.parametrize("backbone_name", ["deit_tiny_patch16_224", "pvt_v2_b0", "t2t_vit_7"])
@pytest.mark.parametrize("name", [*BASELINES, "idmm"])
def test_every_method_trains_every_backbone_family(name, backbone_name):
    """One loss + backward on each paper backbone family (32 px, 4 images) — the same pipeline for all."""
    torch.manual_seed(0)
    cfg = _cfg(method=name, resolution=32, local_crops=1)
    backbone = create_backbone(backbone_name, img_size=32)
    module = get_method(name).build(backbone, int(backbone.num_features), 4, cfg)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8, generator=g)
    batch = Batch(images, torch.tensor([[40, 40]] * 4), torch.tensor([0, 1, 0, 1]), torch.arange(4))
    loss, _ = get_method(name).loss(module, batch, torch.Generator().manual_seed(1), cfg, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone.parameters())
