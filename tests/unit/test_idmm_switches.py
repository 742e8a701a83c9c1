"""IDMM's switches for small budgets: feature-initialised W, the head's own lr / wd, a cosine head,
local crops that do not train W, and exact resume with all of them on."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from idmm_tui.engine.optim import make_optimizer
from idmm_tui.errors import RecipeError
from idmm_tui.methods import get_method
from idmm_tui.methods.base import Batch
from idmm_tui.models.registry import create_backbone
from idmm_tui.recipe import pretrain_config, validate

IDMM = get_method("idmm")
ALL_ON = dict(
    head_init="features",
    head_init_scale=3.0,
    head_lr_mult=10.0,
    head_weight_decay=0.0,
    cosine_head=True,
    cosine_temperature=0.2,
    local_crops_train_head=False,
)


def _module(**switches):
    cfg = pretrain_config(method="idmm", resolution=16, local_crops=2, lr=1e-3, **switches)
    torch.manual_seed(0)
    return IDMM.build(create_backbone("vit_nano_p2", img_size=16), 64, 8, cfg), cfg


def _batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 3, 20, 20), dtype=torch.uint8, generator=g)
    return Batch(images, torch.tensor([[20, 20]] * 8), torch.arange(8) % 2, torch.arange(8))


@pytest.mark.parametrize("cosine", [False, True])
def test_feature_initialised_rows_equal_the_normalised_features(cosine):
    module, cfg = _module(head_init="features", head_init_scale=3.0, cosine_head=cosine)
    feats = F.normalize(torch.randn(8, 64), dim=1)
    IDMM.start(module, cfg, lambda: feats)
    assert torch.allclose(module.head.weight, 3.0 * feats)
    if not cosine:
        assert torch.count_nonzero(module.head.bias) == 0
    untouched, cfg_random = _module()
    before = untouched.head.weight.clone()
    IDMM.start(untouched, cfg_random, lambda: pytest.fail("features must not be computed for random init"))
    assert torch.equal(untouched.head.weight, before)


def test_trainer_features_are_the_normalised_test_time_features_in_instance_order(tmp_path, tiny_images):
    from idmm_tui.engine.distributed import Placement
    from idmm_tui.engine.trainer import Trainer
    from idmm_tui.runs.store import RunDir
    from idmm_tui.stages import plan_stages

    raw = {
        "model": {"backbone": "vit_nano_p2"},
        "data": {"dataset": "imagefolder", "root": str(tiny_images)},
        "pretrain": {"resolution": 16, "idmm": {"head_init": "features"}},
    }
    recipe = validate(raw, "t")
    trainer = Trainer(RunDir(tmp_path), recipe, Placement(torch.device("cpu")))
    stage = plan_stages(recipe)[0]
    module = trainer.build_module(stage, trainer.objective(stage), 24)
    feats = trainer.train_features(stage, module)
    assert feats.shape == (24, 64) and torch.allclose(feats.norm(dim=1), torch.ones(24), atol=1e-5)


def test_the_head_gets_its_own_learning_rate_and_weight_decay():
    module, cfg = _module(head_lr_mult=10.0, head_weight_decay=0.0)
    optimizer = make_optimizer(module, cfg)
    head = {id(p) for p in module.head.parameters()}
    head_groups = [g for g in optimizer.param_groups if any(id(p) in head for p in g["params"])]
    rest = [g for g in optimizer.param_groups if not any(id(p) in head for p in g["params"])]
    assert head_groups and all(g["lr_mult"] == 10.0 and g["weight_decay"] == 0.0 for g in head_groups)
    assert all(id(p) in head for g in head_groups for p in g["params"])
    assert rest and all(g.get("lr_mult", 1.0) == 1.0 and g["weight_decay"] == cfg.weight_decay for g in rest)


def test_cosine_logits_are_bounded_by_one_over_tau():
    module, _ = _module(cosine_head=True, cosine_temperature=0.2)
    logits = module(torch.randn(5, 3, 16, 16) * 10)
    assert logits.abs().max() <= 1 / 0.2 + 1e-4
    assert not hasattr(module.head, "bias")


def test_local_crops_train_the_backbone_but_not_w():
    def head_grad_norm(**switches) -> tuple[float, float]:
        module, cfg = _module(**switches, global_crops=1)
        loss, _ = IDMM.loss(module, _batch(), torch.Generator().manual_seed(1), cfg, 0)
        loss.backward()
        return float(module.head.weight.grad.norm()), float(module.backbone.patch_embed.proj.weight.grad.norm())

    both_head, both_bb = head_grad_norm()
    global_only_head, _ = head_grad_norm(local_crops_train_head=False)
    assert 0 < global_only_head < both_head  # W learns from the global crops only
    assert both_bb > 0


def test_feature_init_with_a_projection_mlp_is_refused():
    with pytest.raises(RecipeError, match="head_init = 'features' needs projection_mlp = false"):
        validate({"pretrain": {"head_init": "features", "projection_mlp": True}}, "t")


def test_exact_resume_with_every_switch_on(cli, tiny_recipe, tmp_path):
    """Stop at a step through the core API, resume from the CLI: same metrics and weights as uninterrupted."""
    from idmm_tui.engine.distributed import Placement
    from idmm_tui.engine.events import NullReporter, RunInterrupted, StopRequest
    from idmm_tui.fsutil import sha256_file
    from idmm_tui.launch import create_run, execute
    from idmm_tui.runs.store import RunDir

    sets = [f"pretrain.idmm.{k}={str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in ALL_ON.items()]
    sets = [s.replace("'", '"') for s in sets] + ["finetune.0.epochs=1", 'pretrain.sampler="sliding"']

    def final(run) -> tuple:
        epochs = [(m["stage"], m["epoch"], m["loss"]) for m in RunDir(run).read_metrics() if m["kind"] == "epoch"]
        weights = {
            p.name: sha256_file(p)
            for p in sorted((run / "checkpoints").glob("*.safetensors"))
            if not p.name.startswith("last.")
        }
        return epochs, weights

    whole = cli("run", tiny_recipe, "--runs-dir", tmp_path, "--name", "whole", *sum((["--set", s] for s in sets), []))
    assert whole.code == 0, whole.err
    run, resolved = create_run(tiny_recipe, sets, tmp_path, "cut")
    assert resolved.pretrain.head_init == "features" and resolved.pretrain.cosine_head
    assert resolved.pretrain.sampler == "sliding" and resolved.pretrain.revisits == 2
    stop = StopRequest()

    class StopAt(NullReporter):
        def step(self, stage, epoch, step, loss, images_per_s):
            if step == 4:
                stop.request("test")

    with pytest.raises(RunInterrupted):
        execute(run, resolved, Placement(torch.device("cpu")), reporter=StopAt(), stop=stop)
    resumed = cli("run", "--resume", run.path, "--json")
    assert resumed.code == 0, resumed.err
    assert final(run.path) == final(tmp_path / "whole")
