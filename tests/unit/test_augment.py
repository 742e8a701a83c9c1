"""Batched augmentation: crops, colour ops, RandAugment and the three view pipelines (tiny tensors)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from idmm_tui.engine import augment as A
from idmm_tui.engine import randaugment as RA
from idmm_tui.engine import views
from idmm_tui.recipe import FinetuneConfig, PretrainConfig


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sizes(h: int, w: int, b: int) -> torch.Tensor:
    return torch.tensor([[h, w]] * b, dtype=torch.long)


# --------------------------------------------------------------------------------------------
# random-resized boxes


def _box_pixels(boxes: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(width, height) of each box in original pixels."""
    return (boxes[:, 2] - boxes[:, 0]) * w, (boxes[:, 3] - boxes[:, 1]) * h


@pytest.mark.parametrize("h, w", [(1000, 1000), (100, 300), (300, 100)])
def test_random_resized_boxes_are_valid_boxes(h, w):
    b = 256
    boxes = A.random_resized_boxes(_gen(1), _sizes(h, w, b), (0.08, 1.0))
    assert boxes.shape == (b, 4)
    assert bool((boxes >= 0).all()) and bool((boxes <= 1 + 1e-6).all())
    assert bool((boxes[:, 0] < boxes[:, 2]).all()) and bool((boxes[:, 1] < boxes[:, 3]).all())
    bw, bh = _box_pixels(boxes, h, w)
    # whole pixels in the original frame
    torch.testing.assert_close(bw, bw.round(), atol=1e-3, rtol=0)
    torch.testing.assert_close(bh, bh.round(), atol=1e-3, rtol=0)
    # aspect ratio of the box in ORIGINAL pixels within (3/4, 4/3), up to the rounding to pixels
    aspect = bw / bh
    slack = 0.5 / bh.clamp_min(1) + 0.5 / bw.clamp_min(1)
    assert bool((aspect >= 0.75 * (1 - slack) - 1e-6).all()), float(aspect.min())
    assert bool((aspect <= 4 / 3 * (1 + slack) + 1e-6).all()), float(aspect.max())
    area = bw * bh / (h * w)
    assert bool((area >= 0.08 * 0.9).all()) and bool((area <= 1.0 + 1e-6).all())
    # every sample draws its own box
    assert torch.unique(boxes, dim=0).shape[0] > 0.9 * b


def test_random_resized_boxes_area_within_scale():
    # 1000 x 1000 with scale <= 0.5: every attempt fits, so no box is the fallback
    h = w = 1000
    scale = (0.2, 0.5)
    boxes = A.random_resized_boxes(_gen(2), _sizes(h, w, 400), scale)
    bw, bh = _box_pixels(boxes, h, w)
    area = bw * bh / (h * w)
    assert float(area.min()) >= scale[0] * 0.99
    assert float(area.max()) <= scale[1] * 1.01
    # the draws cover the range (uniform in area)
    assert float(area.min()) < 0.23 and float(area.max()) > 0.47
    assert float(area.mean()) == pytest.approx(0.35, abs=0.02)
    # log-aspect uniform in (log 3/4, log 4/3): both ends are reached, mean log-aspect ~ 0
    log_aspect = torch.log(bw / bh)
    assert float(log_aspect.min()) < math.log(0.8) and float(log_aspect.max()) > math.log(1.25)
    assert abs(float(log_aspect.mean())) < 0.03


def test_random_resized_boxes_non_square_uses_original_aspect():
    # a 100 x 300 image stored as a square: the box is 3:4..4:3 in ORIGINAL pixels, not in fractions
    h, w = 100, 300
    boxes = A.random_resized_boxes(_gen(3), _sizes(h, w, 200), (0.08, 1.0))
    frac_aspect = (boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1])
    assert float(frac_aspect.max()) < 0.5  # as fractions the boxes are tall ...
    bw, bh = _box_pixels(boxes, h, w)
    aspect = bw / bh  # ... in pixels they are near-square
    assert float(aspect.min()) > 0.74 and float(aspect.max()) < 1.35
    # fallback (nothing fits): the largest centred box with the aspect clamped into the range
    fb = A.random_resized_boxes(_gen(0), _sizes(h, w, 4), (1.0, 1.0))
    bw, bh = _box_pixels(fb, h, w)
    torch.testing.assert_close(bh, torch.full((4,), 100.0))
    torch.testing.assert_close(bw, torch.full((4,), 133.0))
    torch.testing.assert_close((fb[:, 0] + fb[:, 2]) / 2, torch.full((4,), 0.5), atol=1 / w, rtol=0)


def test_random_resized_boxes_reproducible():
    sizes = torch.tensor([[28, 28], [50, 80], [80, 50], [224, 224]])
    a = A.random_resized_boxes(_gen(5), sizes, (0.05, 0.4))
    b = A.random_resized_boxes(_gen(5), sizes, (0.05, 0.4))
    c = A.random_resized_boxes(_gen(6), sizes, (0.05, 0.4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_center_boxes():
    boxes = A.center_boxes(torch.tensor([[64, 64]]), 0.875)
    torch.testing.assert_close(boxes, torch.tensor([[1 / 16, 1 / 16, 15 / 16, 15 / 16]]))
    # 2:1 image (h=100, w=200): the crop is square in original pixels, short side * crop_pct
    h, w = 100, 200
    box = A.center_boxes(torch.tensor([[h, w]]), 0.875)[0]
    bw, bh = float(box[2] - box[0]) * w, float(box[3] - box[1]) * h
    assert bw == pytest.approx(bh) == pytest.approx(87.5)
    assert float(box[0] + box[2]) / 2 == pytest.approx(0.5)
    assert float(box[1] + box[3]) / 2 == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------
# crop + resize


def test_crop_resize_full_box_same_size_is_identity():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 12, 12)
    out = A.crop_resize(x, torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 2), 12)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_crop_resize_constant_image_and_shape():
    x = torch.full((3, 3, 10, 14), 0.3)
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.1, 0.2, 0.5, 0.9], [0.3, 0.3, 0.4, 0.35]])
    out = A.crop_resize(x, boxes, 7)
    assert out.shape == (3, 3, 7, 7)
    torch.testing.assert_close(out, torch.full_like(out, 0.3))


def test_crop_resize_cuts_the_requested_region():
    # left half one colour, right half another; each box lies inside one half
    x = torch.zeros(2, 3, 20, 40)
    left = torch.tensor([0.9, 0.1, 0.2]).view(3, 1, 1)
    right = torch.tensor([0.1, 0.7, 0.4]).view(3, 1, 1)
    x[:, :, :, :20] = left
    x[:, :, :, 20:] = right
    boxes = torch.tensor([[0.05, 0.1, 0.4, 0.9], [0.6, 0.0, 1.0, 1.0]])
    out = A.crop_resize(x, boxes, 5)
    assert out.shape == (2, 3, 5, 5)
    torch.testing.assert_close(out[0], left.expand(3, 5, 5))
    torch.testing.assert_close(out[1], right.expand(3, 5, 5))


def test_crop_resize_repeats_cut_from_one_copy_as_from_repeated_images():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 30, 24, generator=gen)
    boxes = torch.rand(6, 2, generator=gen).sort(dim=1).values.repeat(1, 2)[:, [0, 2, 1, 3]] * 0.8
    boxes[:, 2:] += 0.1
    copied = A.crop_resize(x.repeat(2, 1, 1, 1), boxes, 9)
    torch.testing.assert_close(A.crop_resize(x, boxes, 9, repeats=2), copied, atol=0, rtol=0)


# --------------------------------------------------------------------------------------------
# colour ops


def test_colour_ops_with_factor_one_are_identity():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 6, 6)
    one = torch.ones(4)
    torch.testing.assert_close(A.adjust_brightness(x, one), x)
    torch.testing.assert_close(A.adjust_contrast(x, one), x)
    torch.testing.assert_close(A.adjust_saturation(x, one), x)
    torch.testing.assert_close(A.adjust_hue(x, torch.zeros(4)), x, atol=1e-5, rtol=0)
    # factor 0: contrast -> the grey mean, saturation -> grey
    zero = torch.zeros(4)
    sat0 = A.adjust_saturation(x, zero)
    assert torch.allclose(sat0[:, 0], sat0[:, 1]) and torch.allclose(sat0[:, 1], sat0[:, 2])
    con0 = A.adjust_contrast(x, zero)
    assert torch.allclose(con0, con0.mean(dim=(1, 2, 3), keepdim=True).expand_as(con0), atol=1e-6)


def test_colour_factors_are_per_sample():
    x = torch.full((2, 3, 4, 4), 0.4)
    out = A.adjust_brightness(x, torch.tensor([0.5, 2.0]))
    torch.testing.assert_close(out[0], torch.full((3, 4, 4), 0.2))
    torch.testing.assert_close(out[1], torch.full((3, 4, 4), 0.8))


def test_hsv_round_trip():
    torch.manual_seed(1)
    x = torch.rand(3, 3, 8, 8)
    x[0, :, 0, 0] = 0.5  # grey pixel (no hue)
    x[0, :, 0, 1] = 0.0  # black
    x[0, :, 0, 2] = 1.0  # white
    hsv = A.rgb_to_hsv(x)
    assert bool((hsv >= 0).all()) and bool((hsv <= 1).all())
    torch.testing.assert_close(A.hsv_to_rgb(hsv), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shift", [-0.5, -0.3, 0.05, 0.2, 0.45])
def test_adjust_hue_matches_torchvision(shift):
    torch.manual_seed(2)
    x = torch.rand(1, 3, 7, 9)
    ours = A.adjust_hue(x, torch.tensor([shift]))
    theirs = TF.adjust_hue(x, shift)
    torch.testing.assert_close(ours, theirs, atol=1e-3, rtol=0)


def test_random_grayscale_and_flip():
    torch.manual_seed(3)
    x = torch.rand(4, 3, 5, 6)
    g = A.random_grayscale(_gen(), x, 1.0)
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2])
    torch.testing.assert_close(g[:, :1], A.rgb_to_gray(x))
    assert torch.equal(A.random_grayscale(_gen(), x, 0.0), x)
    assert torch.equal(A.random_hflip(_gen(), x, 1.0), x.flip(-1))
    assert torch.equal(A.random_hflip(_gen(), x, 0.0), x)
    # p = 0.5 flips some samples, not all, each sample whole
    z = torch.rand(64, 3, 2, 3)
    y = A.random_hflip(_gen(4), z, 0.5)
    flipped = [torch.equal(y[i], z[i].flip(-1)) for i in range(64)]
    kept = [torch.equal(y[i], z[i]) for i in range(64)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))
    assert 10 < sum(flipped) < 54


def test_gaussian_blur_preserves_constant_and_mean():
    const = torch.full((2, 3, 9, 9), 0.6)
    torch.testing.assert_close(A.gaussian_blur(const, torch.tensor([0.5, 2.0])), const)
    torch.manual_seed(4)
    x = torch.rand(2, 3, 32, 32)
    out = A.gaussian_blur(x, torch.tensor([1.0, 2.0]))
    assert out.shape == x.shape
    torch.testing.assert_close(out.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-2, rtol=0)
    assert float(out.std()) < float(x.std())  # it smooths
    # per-sample sigma: a tiny sigma leaves its sample unchanged while the other is blurred
    mixed = A.gaussian_blur(x, torch.tensor([1e-3, 2.0]))
    torch.testing.assert_close(mixed[0], x[0])
    assert not torch.allclose(mixed[1], x[1])


def test_color_jitter_range_probability_and_reproducibility():
    torch.manual_seed(5)
    x = torch.rand(8, 3, 6, 6)
    a = A.color_jitter(_gen(7), x, 0.8, 0.2, 1.0)
    b = A.color_jitter(_gen(7), x, 0.8, 0.2, 1.0)
    assert torch.equal(a, b)
    assert bool((a >= 0).all()) and bool((a <= 1).all())
    assert not torch.allclose(a, x)
    assert torch.equal(A.color_jitter(_gen(7), x, 0.8, 0.2, 0.0), x)


# --------------------------------------------------------------------------------------------
# RandAugment


def test_rand_augment_shape_range_reproducible():
    torch.manual_seed(6)
    x = torch.rand(32, 3, 8, 8)
    a = RA.rand_augment(_gen(1), x)
    b = RA.rand_augment(_gen(1), x)
    assert a.shape == x.shape
    assert torch.equal(a, b)
    assert bool(torch.isfinite(a).all())
    assert bool((a >= 0).all()) and bool((a <= 1).all())
    assert not torch.equal(a, x)
    assert torch.equal(RA.rand_augment(_gen(1), x, num_ops=0), x)
    # prob = 0: no sample is changed
    torch.testing.assert_close(RA.rand_augment(_gen(1), x, prob=0.0), x)


def _apply_geometric(op: str, x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """One geometric op the way rand_augment applies it (grey fill)."""
    theta = RA._affine(op, level, sign)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    moved = F.grid_sample(x - RA.FILL, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return moved + RA.FILL


@pytest.mark.parametrize("op", RA.OPS)
def test_each_op_alone_stays_in_unit_range(op):
    torch.manual_seed(7)
    x = torch.rand(6, 3, 8, 8)
    x[0] = 0.0  # flat images: AutoContrast / Equalize edge cases
    x[1] = 1.0
    level = torch.tensor([0.0, 10.0, 9.0, 9.5, 5.0, 10.0])
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    if op in RA.GEOMETRIC:
        out = _apply_geometric(op, x, level, sign)
        # level 0 is the identity transform
        torch.testing.assert_close(
            RA._affine(op, torch.zeros(2), torch.ones(2)), RA._affine("Identity", torch.zeros(2), torch.ones(2))
        )
        assert not torch.allclose(out[2:], x[2:])
        tol = 1e-6
    else:
        out = RA._photometric(op, x, level, sign)
        tol = 0.0
    assert out.shape == x.shape
    assert bool(torch.isfinite(out).all()), op
    assert float(out.min()) >= -tol and float(out.max()) <= 1 + tol, (op, float(out.min()), float(out.max()))


def test_rand_augment_hits_every_op():
    # with a fixed generator, check that the draws (same sequence as rand_augment) cover all ops
    gen = _gen(0)
    seen = set(torch.randint(len(RA.OPS), (256,), generator=gen).tolist())
    assert seen == set(range(len(RA.OPS)))
    out = RA.rand_augment(_gen(0), torch.rand(256, 3, 6, 6), num_ops=2, prob=1.0)
    assert bool(torch.isfinite(out).all()) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_photometric_op_semantics():
    x = torch.rand(2, 3, 5, 5)
    lvl, sgn = torch.tensor([9.0, 9.0]), torch.ones(2)
    torch.testing.assert_close(RA._photometric("Invert", x, lvl, sgn), 1 - x)
    ac = RA._photometric("AutoContrast", x * 0.5 + 0.2, lvl, sgn)
    torch.testing.assert_close(ac.amin(dim=(2, 3)), torch.zeros(2, 3))
    torch.testing.assert_close(ac.amax(dim=(2, 3)), torch.ones(2, 3))
    with pytest.raises(ValueError):
        RA._photometric("NoSuchOp", x, lvl, sgn)


# --------------------------------------------------------------------------------------------
# views


def _uint8_batch(b: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, 1, 28, 28), generator=_gen(seed), dtype=torch.uint8)


def test_pretrain_crops_shape_and_normalisation():
    b, n = 4, 3
    cfg = PretrainConfig(resolution=16)
    out = views.pretrain_crops(_gen(0), _uint8_batch(b), _sizes(28, 28, b), n, (0.14, 1.0), cfg)
    assert out.shape == (n * b, 3, 16, 16)
    assert out.dtype == torch.float32
    assert bool(torch.isfinite(out).all())
    lo = min((0 - m) / s for m, s in zip(A.IMAGENET_MEAN, A.IMAGENET_STD, strict=True))
    hi = max((1 - m) / s for m, s in zip(A.IMAGENET_MEAN, A.IMAGENET_STD, strict=True))
    assert float(out.min()) >= lo - 1e-4 and float(out.max()) <= hi + 1e-4
    assert abs(float(out.mean())) < 1.0 and 0.1 < float(out.std()) < 2.0
    again = views.pretrain_crops(_gen(0), _uint8_batch(b), _sizes(28, 28, b), n, (0.14, 1.0), cfg)
    assert torch.equal(out, again)


def test_pretrain_crops_row_order():
    # crop k of image i is row k * B + i: with constant images and no colour ops it keeps image i's value
    b, n = 3, 2
    values = torch.tensor([10, 120, 250], dtype=torch.uint8)
    images = values.view(b, 1, 1, 1).expand(b, 1, 28, 28).contiguous()
    cfg = PretrainConfig(resolution=8, color_jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0)
    out = views.pretrain_crops(_gen(0), images, _sizes(28, 28, b), n, (0.05, 0.4), cfg)
    expected = A.normalize(A.to_float_rgb(images))[:, :, :1, :1]
    for k in range(n):
        for i in range(b):
            torch.testing.assert_close(out[k * b + i], expected[i].expand(3, 8, 8), atol=1e-5, rtol=0)


def test_finetune_and_eval_views():
    b = 5
    images, sizes = _uint8_batch(b, 1), _sizes(28, 28, b)
    ft = views.finetune_views(_gen(0), images, sizes, FinetuneConfig(resolution=24))
    assert ft.shape == (b, 3, 24, 24) and bool(torch.isfinite(ft).all())
    ev = views.eval_views(images, sizes, 32, 0.875)
    assert ev.shape == (b, 3, 32, 32) and bool(torch.isfinite(ev).all())
    assert torch.equal(ev, views.eval_views(images, sizes, 32, 0.875))
    rgb = torch.randint(0, 256, (2, 3, 20, 30), generator=_gen(2), dtype=torch.uint8)
    ev = views.eval_views(rgb, _sizes(20, 30, 2), 16, 1.0)
    assert ev.shape == (2, 3, 16, 16)


def test_blur_sigma_scales_with_resolution():
    assert views.blur_sigma(112) == pytest.approx((0.1, 2.0))
    assert views.blur_sigma(224) == pytest.approx((0.2, 4.0))


def test_equalize():
    # a channel with a single grey level is left as it is (PIL / torchvision), not turned black
    flat = torch.full((2, 3, 4, 4), 0.6)
    flat[1, 2] = 1.0
    torch.testing.assert_close(RA._equalize(flat), flat)
    # two levels are spread to the full range; the mapping preserves the order of grey levels
    two = torch.full((1, 3, 4, 4), 0.2)
    two[..., :2] = 0.4
    eq = RA._equalize(two)
    assert torch.equal(eq.unique(), torch.tensor([0.0, 1.0]))
    torch.manual_seed(8)
    x = torch.rand(1, 3, 8, 8)
    eq = RA._equalize(x)
    assert float(eq.min()) >= 0 and float(eq.max()) <= 1
    order = x.flatten(2).argsort(-1)
    sorted_eq = eq.flatten(2).gather(-1, order)
    assert bool((sorted_eq[..., 1:] >= sorted_eq[..., :-1]).all())
