"""The paper's protocol: Table 10 per method, weight-decay groups, fine-tuning CutMix, DINO's gradient rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from idmm_tui.engine.optim import make_optimizer, param_groups
from idmm_tui.launch import resolve_recipe
from idmm_tui.methods import get_method
from idmm_tui.methods.base import Batch
from idmm_tui.methods.supcon import supcon_loss
from idmm_tui.models.registry import create_backbone
from idmm_tui.recipe import FinetuneConfig, pretrain_config

FLOWERS = Path(__file__).resolve().parents[2] / "recipes" / "flowers.toml"

TABLE_10 = {  # method: (lr, weight decay, batch, optimiser)
    "simclr": (5e-4, 1e-3, 512, "sgd"),
    "supcon": (5e-4, 1e-3, 512, "sgd"),
    "mocov2": (5e-4, 1e-3, 256, "sgd"),
    "mocov3": (1.5e-4, 0.1, 256, "adamw"),
    "dino": (5e-4, 0.04, 512, "adamw"),
    "idmm": (5e-4, 1e-3, 256, "adamw"),  # IDMM: the backbone's lr (DeiT-Tiny 5e-4), the paper's wd and batch
}


@pytest.mark.parametrize("method", list(TABLE_10))
def test_a_sweep_over_methods_from_the_paper_recipe_gives_each_its_table_10_values(method):
    p = resolve_recipe(FLOWERS, [f"pretrain.method={method}"]).pretrain
    assert (p.lr, p.weight_decay, p.batch_size, p.optimizer) == TABLE_10[method]


def test_idmm_lr_follows_the_backbone_and_the_baselines_do_not():
    pvt = ["model.backbone=pvt_v2_b0"]
    assert resolve_recipe(FLOWERS, pvt).pretrain.lr == 1e-3
    assert resolve_recipe(FLOWERS, [*pvt, "pretrain.method=mocov3"]).pretrain.lr == 1.5e-4


def test_an_explicit_value_wins_and_the_resolved_recipe_shows_it():
    p = resolve_recipe(
        FLOWERS, ["pretrain.method=dino", "pretrain.weight_decay=0.1", "pretrain.batch_size=64"]
    ).pretrain
    assert (p.weight_decay, p.batch_size, p.lr) == (0.1, 64, 5e-4)


def test_momentum_defaults_are_the_methods_own_papers():
    assert pretrain_config(method="mocov2").momentum == 0.999
    assert pretrain_config(method="dino").momentum == 0.996
    assert pretrain_config(method="mocov3").momentum == 0.99


def test_supcon_keeps_the_reference_tau_over_tau_base_factor():
    z, labels = torch.randn(8, 5), torch.tensor([0, 1, 0, 2, 0, 1, 0, 2])
    plain = supcon_loss(z, labels, 0.1)
    assert float(supcon_loss(z, labels, 0.1, 0.07)) == pytest.approx(float(plain) * 0.1 / 0.07, rel=1e-6)
    assert pretrain_config(method="supcon").base_temperature == 0.07


def test_finetuning_keeps_biases_norms_pos_embed_and_cls_token_out_of_weight_decay():
    model = create_backbone("vit_nano_p2", img_size=16)
    optimizer = make_optimizer(model, FinetuneConfig(lr=1e-3, weight_decay=0.05))
    decayed, free = optimizer.param_groups
    assert (decayed["weight_decay"], free["weight_decay"]) == (0.05, 0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    free_names = {names[id(p)] for p in free["params"]}
    assert {"pos_embed", "cls_token"} <= free_names
    assert all(n.endswith(".bias") or "norm" in n or n in ("pos_embed", "cls_token") for n in free_names)
    assert all(p.ndim >= 2 for p in decayed["params"]) and "patch_embed.proj.weight" not in free_names


def test_pretraining_decays_every_parameter_as_the_release():
    model = create_backbone("vit_nano_p2", img_size=16)
    groups = param_groups(model, 1e-3, exclude=False)
    assert len(groups) == 1 and len(groups[0]["params"]) == len(list(model.parameters()))


def test_finetuning_cutmix_and_mixup_take_the_larger_lambda(monkeypatch):
    from idmm_tui.methods import finetune

    seen = {}

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            seen[name] = (out.lam, kwargs)
            return out

        return wrapped

    monkeypatch.setattr(finetune, "cutmix", spy("cutmix", finetune.cutmix))
    monkeypatch.setattr(finetune, "mixup", spy("mixup", finetune.mixup))
    cfg = FinetuneConfig(resolution=16, lr=1e-3, randaugment_ops=0)
    module = finetune.FINETUNE.build(create_backbone("vit_nano_p2", img_size=16), 64, 3, cfg)
    images = torch.randint(0, 256, (6, 3, 20, 20), dtype=torch.uint8)
    batch = Batch(images, torch.tensor([[20, 20]] * 6), torch.tensor([0, 1, 2] * 2), torch.arange(6))
    for epoch in range(6):
        gen = torch.Generator().manual_seed(epoch)
        finetune.FINETUNE.loss(module, batch, gen, cfg, epoch)
        assert min(lam for lam, _ in seen.values()) >= 0.5
    assert set(seen) == {"cutmix", "mixup"}


def test_dino_clips_each_gradient_to_3_and_freezes_the_last_layer_in_the_first_epoch():
    dino = get_method("dino")
    cfg = pretrain_config(method="dino", proj_dim=8, proj_hidden=16, dino_out=10)
    module = dino.build(create_backbone("vit_nano_p2", img_size=16), 64, 8, cfg)
    for p in module.student_parameters():
        p.grad = torch.full_like(p, 10.0)
    dino.before_step(module, cfg, epoch=0)
    assert all(p.grad is None for p in module.head.last_layer.parameters())
    norms = [float(p.grad.norm()) for p in module.student_parameters() if p.grad is not None]
    assert max(norms) == pytest.approx(3.0, rel=1e-4)
    for p in module.student_parameters():
        p.grad = torch.full_like(p, 10.0)
    dino.before_step(module, cfg, epoch=1)
    assert all(p.grad is not None for p in module.head.last_layer.parameters())


def test_compile_switch_compiles_the_backbone_in_place_and_keeps_checkpoint_keys(tmp_path):
    from idmm_tui.engine.distributed import Placement
    from idmm_tui.engine.trainer import Trainer
    from idmm_tui.recipe import validate
    from idmm_tui.runs.store import RunDir
    from idmm_tui.stages import plan_stages

    recipe = validate({"compile": True, "model": {"backbone": "vit_nano_p2"}, "pretrain": {"resolution": 16}}, "t")
    trainer = Trainer(RunDir(tmp_path), recipe, Placement(torch.device("cpu")))
    stage = plan_stages(recipe)[0]
    module = trainer.build_module(stage, trainer.objective(stage), 8)
    assert module.backbone._compiled_call_impl is not None  # compiled lazily at the first call
    plain = Trainer(RunDir(tmp_path), recipe.model_copy(update={"compile": False}), Placement(torch.device("cpu")))
    assert list(module.state_dict()) == list(plain.build_module(stage, plain.objective(stage), 8).state_dict())
