"""Backbone registry, T2T-ViT, position-embedding resampling and state-dict loading (fast, CPU)."""

from __future__ import annotations

import pytest
import timm
import torch
from timm.layers import resample_abs_pos_embed

from idmm_tui.errors import CheckpointError, UnknownNameError, UsageError
from idmm_tui.models import (
    adapt_state_dict,
    backbone_names,
    check_resolution,
    count_params,
    create_backbone,
    get_backbone_spec,
    load_backbone_state,
    timm_model_args,
)

EXPECTED_NAMES = [
    "deit_tiny_patch16_224",
    "deit_small_patch16_224",
    "deit_base_patch16_224",
    "pvt_v2_b0",
    "pvt_v2_b1",
    "pvt_v2_b2",
    "pvt_v2_b3",
    "t2t_vit_7",
    "t2t_vit_14",
    "vit_nano_p2",
    "vit_pico_p4",
    "vit_micro_p4",
    "vit_mini_p4",
]
BIG = 10_000_000  # above this many parameters, build on the meta device (shapes only)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _count_on_meta(name: str, img_size: int, num_classes: int = 0) -> int:
    with torch.device("meta"):
        model = create_backbone(name, img_size=img_size)
        if num_classes:
            model.reset_classifier(num_classes)
        return count_params(model)


def test_registered_names_and_defaults() -> None:
    assert sorted(backbone_names()) == sorted(EXPECTED_NAMES)
    for name in backbone_names():
        spec = get_backbone_spec(name)
        assert spec.name == name and spec.description
        assert spec.family.name in ("vit", "pvt", "t2t")
        if spec.family.name == "vit":
            assert (spec.lr, spec.warmup_epochs) == (5e-4, 2)
        else:
            assert (spec.lr, spec.warmup_epochs) == (1e-3, 10)
        assert spec.needs_idmm == (spec.family.name == "t2t")
    assert get_backbone_spec("vit_micro_p4").default_resolution in (28, 32)
    assert get_backbone_spec("deit_base_patch16_224").default_resolution == 224


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_every_backbone_builds_and_pools(name: str) -> None:
    spec = get_backbone_spec(name)
    img = max(spec.min_resolution, 16)
    meta = _count_on_meta(name, img) > BIG
    with torch.device("meta" if meta else "cpu"):
        model = create_backbone(name, img_size=img).eval()
        x = torch.randn(2, 3, img, img)
        with torch.no_grad():
            out = model(x)
    assert out.shape == (2, model.num_features)
    if not meta:
        assert torch.isfinite(out).all()
    assert spec.timm_arch == model.pretrained_cfg["architecture"]
    assert model.pretrained_cfg.get("tag") is None  # no claim of timm's pretrained weights


@pytest.mark.parametrize(
    ("name", "num_classes", "expected_m"),
    [
        ("deit_tiny_patch16_224", 1000, 5.7),
        ("deit_base_patch16_224", 1000, 86.6),
        ("pvt_v2_b0", 1000, 3.7),
        ("pvt_v2_b3", 1000, 45.2),
        ("t2t_vit_7", 1000, 4.3),
        ("t2t_vit_14", 1000, 21.5),
        ("vit_micro_p4", 0, 0.8),
    ],
)
def test_param_counts_match_the_literature(name: str, num_classes: int, expected_m: float) -> None:
    n = _count_on_meta(name, get_backbone_spec(name).default_resolution, num_classes)
    assert abs(n / 1e6 - expected_m) <= 0.1 * expected_m


def test_small_vit_sizes() -> None:
    assert 0.2e6 <= _count_on_meta("vit_nano_p2", 32) <= 0.4e6
    assert 2e6 <= _count_on_meta("vit_mini_p4", 64) <= 3e6


@pytest.mark.parametrize("name", ["vit_nano_p2", "vit_pico_p4", "vit_micro_p4", "vit_mini_p4"])
@pytest.mark.parametrize("img", [16, 28, 32, 64])
def test_small_vits_take_tiny_images(name: str, img: int) -> None:
    model = create_backbone(name, img_size=img, drop_path_rate=0.0).eval()
    patch = get_backbone_spec(name).model_args["patch_size"]
    assert model.pos_embed.shape[1] == 1 + (img // patch) ** 2
    with torch.no_grad():
        out = model(torch.randn(2, 3, img, img))
    assert out.shape == (2, model.num_features) and torch.isfinite(out).all()


def test_pos_embed_resize_vit_16_to_28() -> None:
    small = create_backbone("vit_micro_p4", img_size=16)
    big = create_backbone("vit_micro_p4", img_size=28).eval()
    sd = small.state_dict()
    assert sd["pos_embed"].shape == (1, 1 + 16, 128)

    adapted = adapt_state_dict(big, sd)
    assert adapted["pos_embed"].shape == (1, 1 + 49, 128)
    assert sd["pos_embed"].shape == (1, 17, 128)  # the input is not modified
    torch.testing.assert_close(adapted["pos_embed"][:, :1], sd["pos_embed"][:, :1])  # CLS kept
    grid = resample_abs_pos_embed(sd["pos_embed"][:, 1:], new_size=[7, 7], num_prefix_tokens=0)
    torch.testing.assert_close(adapted["pos_embed"][:, 1:], grid)

    load_backbone_state(big, sd)
    torch.testing.assert_close(big.pos_embed.data, adapted["pos_embed"])
    torch.testing.assert_close(big.blocks[0].attn.qkv.weight, small.blocks[0].attn.qkv.weight)
    with torch.no_grad():
        out = big(torch.randn(2, 3, 28, 28))
    assert out.shape == (2, 128) and torch.isfinite(out).all()


def test_t2t_vit_7_count_shape_and_resize_32_to_64() -> None:
    model = timm.create_model("t2t_vit_7", num_classes=1000)  # registered with timm by idmm_tui.models
    assert abs(count_params(model) / 1e6 - 4.3) <= 0.43
    small = create_backbone("t2t_vit_7", img_size=32)
    assert small.pos_embed.shape == (1, 1 + 2 * 2, 256) and small.num_features == 256
    big = create_backbone("t2t_vit_7", img_size=64).eval()
    assert big.pos_embed.shape == (1, 1 + 4 * 4, 256)
    load_backbone_state(big, small.state_dict())
    torch.testing.assert_close(big.pos_embed.data[:, :1], small.pos_embed.data[:, :1])
    expected = resample_abs_pos_embed(small.pos_embed.data, new_size=[4, 4], num_prefix_tokens=1)
    torch.testing.assert_close(big.pos_embed.data, expected)
    with torch.no_grad():
        feats = big.forward_features(torch.randn(2, 3, 64, 64))
        pooled = big.forward_head(feats, pre_logits=True)
    assert feats.shape == (2, 17, 256) and pooled.shape == (2, 256) and torch.isfinite(pooled).all()
    big.reset_classifier(5)
    assert big.forward_head(feats).shape == (2, 5)
    with pytest.raises(ValueError, match="img_size"):
        big(torch.randn(1, 3, 32, 32))


def test_t2t_timm_registration() -> None:
    assert "t2t_vit_7" in timm.list_models("t2t_vit*")
    with pytest.raises(ValueError, match="pretrained"):
        timm.create_model("t2t_vit_7", pretrained=True)


def test_pvt_ignores_resolution_and_needs_no_resize() -> None:
    a = create_backbone("pvt_v2_b0", img_size=32)
    b = create_backbone("pvt_v2_b0", img_size=64).eval()
    assert "img_size" not in timm_model_args("pvt_v2_b0", img_size=64)
    assert not any("pos_embed" in k for k in a.state_dict())
    load_backbone_state(b, a.state_dict())
    with torch.no_grad():
        assert b(torch.randn(2, 3, 64, 64)).shape == (2, 256)


def test_adapt_state_dict_drops_head_keys() -> None:
    model = create_backbone("vit_nano_p2", img_size=16)
    sd = dict(model.state_dict())
    sd["head.weight"], sd["head.bias"] = torch.zeros(10, 64), torch.zeros(10)
    sd["fc.weight"] = torch.zeros(10, 64)
    sd["fc_norm.weight"] = torch.ones(64)  # not a head: kept
    out = adapt_state_dict(model, sd)
    assert not any(k.startswith(("head.", "fc.")) for k in out)
    assert "fc_norm.weight" in out and "head.weight" in sd
    assert out["pos_embed"] is sd["pos_embed"]  # same grid: untouched


def test_load_keeps_the_models_own_head() -> None:
    src = create_backbone("vit_nano_p2", img_size=16)
    src.reset_classifier(7)
    dst = create_backbone("vit_nano_p2", img_size=32)
    dst.reset_classifier(3)
    head = dst.head.weight.detach().clone()
    load_backbone_state(dst, src.state_dict())
    torch.testing.assert_close(dst.head.weight, head)


def test_load_mismatched_checkpoint_names_keys_and_leaves_model_unchanged() -> None:
    model = create_backbone("vit_nano_p2", img_size=16)
    before = model.patch_embed.proj.weight.detach().clone()
    other = create_backbone("vit_micro_p4", img_size=16).state_dict()
    expected = r"missing keys: blocks\.4.*shape mismatch: .*\(128,\) vs model \(64,\)"
    with pytest.raises(CheckpointError, match=expected):
        load_backbone_state(model, other)
    torch.testing.assert_close(model.patch_embed.proj.weight, before)
    sd = dict(model.state_dict())
    del sd["norm.weight"]
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing keys: norm\.weight.*unexpected keys: extra\.weight"):
        load_backbone_state(model, sd)


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(UnknownNameError, match="deit_tiny_patch16_224") as info:
        get_backbone_spec("deit_tiny")
    assert info.value.exit_code == 2
    with pytest.raises(UnknownNameError):
        create_backbone("resnet50", img_size=32)


@pytest.mark.parametrize(
    ("name", "img"),
    [("vit_micro_p4", 30), ("t2t_vit_7", 40), ("t2t_vit_7", 16), ("pvt_v2_b0", 16), ("deit_tiny_patch16_224", 100)],
)
def test_bad_resolution_is_a_usage_error(name: str, img: int) -> None:
    with pytest.raises(UsageError, match=f"{img}-px"):
        check_resolution(name, img)


def test_exported_small_vit_rebuilds_with_plain_timm(tmp_path) -> None:
    from timm.models import save_for_hf

    model = create_backbone("vit_nano_p2", img_size=16).eval()
    spec = get_backbone_spec("vit_nano_p2")
    save_for_hf(model, str(tmp_path), model_args=timm_model_args("vit_nano_p2", img_size=16))
    rebuilt = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    assert rebuilt.pretrained_cfg["architecture"] == spec.timm_arch
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_t2t_export_loads_back_through_timm_local_dir(tmp_path) -> None:
    """A T2T-ViT saved in timm's hub layout (as the zoo does) is rebuilt by timm once idmm is imported."""
    from timm.models import save_for_hf

    model = timm.create_model("t2t_vit_7", num_classes=3, img_size=32).eval()
    save_for_hf(model, tmp_path, safe_serialization=True, model_args={"img_size": 32, "num_classes": 3})
    rebuilt = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(model(x), rebuilt(x))
