"""Learning-rate schedule: linear warmup per iteration, then cosine decay to min_lr."""

from __future__ import annotations

import math

import pytest

from idmm_tui.engine.schedule import lr_at


def _curve(total, warmup, peak, min_lr=0.0):
    return [lr_at(s, total_steps=total, warmup_steps=warmup, peak=peak, min_lr=min_lr) for s in range(total)]


def test_linear_warmup_reaches_peak_at_end_of_warmup():
    total, warmup, peak = 100, 10, 5e-4
    lrs = _curve(total, warmup, peak)
    # step s (0-based) of the warmup gets peak * (s + 1) / warmup: linear, never 0
    for s in range(warmup):
        assert lrs[s] == pytest.approx(peak * (s + 1) / warmup)
    assert lrs[0] > 0
    assert lrs[warmup - 1] == pytest.approx(peak)
    assert lrs[warmup] == pytest.approx(peak)  # the cosine starts at the peak
    assert all(b > a for a, b in zip(lrs[:warmup], lrs[1:warmup], strict=False))


@pytest.mark.parametrize("min_lr", [0.0, 1e-5])
def test_cosine_is_monotone_and_ends_at_min_lr(min_lr):
    total, warmup, peak = 120, 20, 1e-3
    lrs = _curve(total, warmup, peak, min_lr)
    after = lrs[warmup:]
    assert all(b <= a for a, b in zip(after, after[1:], strict=False))
    assert all(min_lr <= lr <= peak for lr in lrs)
    # the last step is within one cosine step of min_lr; min_lr is reached at step == total_steps
    decay = total - warmup
    last_gap = (peak - min_lr) * math.sin(math.pi / (2 * decay)) ** 2
    assert lrs[-1] == pytest.approx(min_lr + last_gap, abs=1e-15)
    assert lrs[-1] - min_lr < 1e-3 * (peak - min_lr)
    for step in (total, total + 50):  # past the end it stays at min_lr
        lr = lr_at(step, total_steps=total, warmup_steps=warmup, peak=peak, min_lr=min_lr)
        assert lr == pytest.approx(min_lr)


@pytest.mark.parametrize("warmup", [0, 10])
def test_half_way_is_the_midpoint(warmup):
    total, peak, min_lr = 110, 2.0, 0.4
    half = warmup + (total - warmup) // 2
    assert (total - warmup) % 2 == 0
    got = lr_at(half, total_steps=total, warmup_steps=warmup, peak=peak, min_lr=min_lr)
    assert got == pytest.approx((peak + min_lr) / 2)


def test_no_warmup_starts_at_peak():
    total, peak = 50, 3e-4
    lrs = _curve(total, 0, peak)
    assert lrs[0] == pytest.approx(peak)
    assert all(b < a for a, b in zip(lrs, lrs[1:], strict=False))
    # cosine shape: lr(t) = peak * (1 + cos(pi t / T)) / 2
    for s in (0, 7, 25, 49):
        assert lrs[s] == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * s / total)))


def test_degenerate_schedules():
    # warmup as long as the whole stage: all steps are warmup, ending at the peak
    lrs = _curve(10, 10, 1.0)
    assert lrs == pytest.approx([(s + 1) / 10 for s in range(10)])
    # a single step without warmup runs at the peak
    assert lr_at(0, total_steps=1, warmup_steps=0, peak=0.1) == pytest.approx(0.1)
