"""CutMix / Mixup and the label-smoothed, mixed cross-entropy (Eqs. 17-19) against dense references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from idmm_tui.engine.mixing import cutmix, mixed_smoothed_ce, mixup, sample_beta, smoothed_ce


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth_target(target: torch.Tensor, n: int, eps: float) -> torch.Tensor:
    """Eq. 17, dense: 1 - eps on the true class, eps / (N - 1) on every other class."""
    y = torch.full((target.shape[0], n), eps / (n - 1), dtype=torch.float64)
    y[torch.arange(target.shape[0]), target] = 1.0 - eps
    return y


def _dense_ce(logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Per-sample -sum(y * log_softmax), slowly, in float64."""
    logp = F.log_softmax(logits.double(), dim=-1)
    return -(soft * logp).sum(-1)


# --------------------------------------------------------------------------------------------
# losses


@pytest.mark.parametrize("n", [2, 5, 17])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_smoothed_ce_matches_dense_eq17(n, eps):
    torch.manual_seed(n)
    logits = torch.randn(6, n) * 3
    target = torch.randint(n, (6,))
    got = smoothed_ce(logits, target, eps)
    assert got.shape == (6,)
    want = _dense_ce(logits, _smooth_target(target, n, eps))
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [2, 10])
def test_smoothed_ce_without_smoothing_is_cross_entropy(n):
    torch.manual_seed(1)
    logits = torch.randn(7, n)
    target = torch.randint(n, (7,))
    want = F.cross_entropy(logits, target, reduction="none")
    torch.testing.assert_close(smoothed_ce(logits, target, 0.0), want, rtol=1e-6, atol=1e-6)


def _eq19_target(y_a, y_b, lam, n, eps):
    """Eq. 19's coefficients: C_i on y_a, C_i' on y_b, C on every other class (1 - eps when y_a == y_b)."""
    c = eps / (n - 1)
    t = torch.full((y_a.shape[0], n), c, dtype=torch.float64)
    for i, (a, b) in enumerate(zip(y_a.tolist(), y_b.tolist(), strict=True)):
        if a == b:
            t[i, a] = 1.0 - eps
        else:
            t[i, a] = lam * (1.0 - eps) + (1.0 - lam) * c  # C_i
            t[i, b] = (1.0 - lam) * (1.0 - eps) + lam * c  # C_i'
    return t


@pytest.mark.parametrize("n", [3, 11])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("lam", [1.0, 0.73, 0.5])
def test_mixed_smoothed_ce_matches_dense_references(n, eps, lam):
    torch.manual_seed(2)
    logits = torch.randn(8, n) * 2
    y_a = torch.randint(n, (8,))
    y_b = y_a[torch.randperm(8)]
    y_b[0] = y_a[0]  # at least one sample mixed with its own class
    got = mixed_smoothed_ce(logits, y_a, y_b, lam, eps)
    assert got.dim() == 0

    # λ·CE_ε(y_a) + (1 − λ)·CE_ε(y_b), batch mean
    ce_a = _dense_ce(logits, _smooth_target(y_a, n, eps))
    ce_b = _dense_ce(logits, _smooth_target(y_b, n, eps))
    torch.testing.assert_close(got.double(), (lam * ce_a + (1 - lam) * ce_b).mean(), rtol=1e-5, atol=1e-5)

    # CE against the mixed soft target λ·ỹ_a + (1 − λ)·ỹ_b ...
    soft = lam * _smooth_target(y_a, n, eps) + (1 - lam) * _smooth_target(y_b, n, eps)
    torch.testing.assert_close(got.double(), _dense_ce(logits, soft).mean(), rtol=1e-5, atol=1e-5)
    # ... which is the target written with Eq. 19's coefficients
    eq19 = _eq19_target(y_a, y_b, lam, n, eps)
    torch.testing.assert_close(soft, eq19)
    assert torch.allclose(eq19.sum(-1), torch.ones(8, dtype=torch.float64))


# --------------------------------------------------------------------------------------------
# CutMix / Mixup


def _constant_batch(b: int, h: int, w: int) -> torch.Tensor:
    """Sample i is the constant value i (distinct per sample), 3 channels."""
    return torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 3, h, w).clone()


@pytest.mark.parametrize("h, w", [(16, 16), (12, 20)])
def test_cutmix_lambda_is_the_unpasted_fraction_of_pixels(h, w):
    b = 6
    images = _constant_batch(b, h, w)
    checked = 0
    for seed in range(20):
        mixed = cutmix(_gen(seed), images, alpha=0.5)
        assert mixed.images.shape == images.shape
        assert 0.0 <= mixed.lam <= 1.0
        for i in range(b):
            j = int(mixed.perm[i])
            if j == i:  # pasting from itself is invisible
                assert torch.equal(mixed.images[i], images[i])
                continue
            pasted = mixed.images[i, 0] != i
            # pasted pixels come from the partner, in every channel
            assert torch.all(mixed.images[i][:, pasted] == j)
            assert torch.all(mixed.images[i][:, ~pasted] == i)
            assert mixed.lam == pytest.approx(1.0 - int(pasted.sum()) / (h * w), abs=1e-12)
            checked += 1
        # the pasted region is one rectangle, the same for the whole batch
        rows, cols = torch.nonzero(mixed.images[:, 0] != images[:, 0], as_tuple=True)[1:]
        if rows.numel():
            area = (int(rows.max()) - int(rows.min()) + 1) * (int(cols.max()) - int(cols.min()) + 1)
            assert mixed.lam == pytest.approx(1.0 - area / (h * w), abs=1e-12)
    assert checked > 0


def test_cutmix_lambda_at_least_half():
    images = torch.rand(4, 3, 16, 16)
    lams = [cutmix(_gen(seed), images, alpha=0.5).lam for seed in range(200)]
    # λ = max(λ, 1 − λ) before the box: the box covers at most half, clipping only shrinks it
    assert min(lams) >= 0.5
    assert sum(lams) / len(lams) > 0.5
    # without the max, λ < 0.5 happens (Beta(0.5, 0.5) is symmetric)
    free = [cutmix(_gen(seed), images, alpha=0.5, lam_at_least_half=False).lam for seed in range(200)]
    assert min(free) < 0.5


def test_cutmix_perm_is_a_permutation_and_reproducible():
    images = torch.rand(9, 3, 8, 8)
    before = images.clone()
    a = cutmix(_gen(123), images, alpha=0.5)
    b = cutmix(_gen(123), images, alpha=0.5)
    assert sorted(a.perm.tolist()) == list(range(9))
    assert torch.equal(a.perm, b.perm)
    assert torch.equal(a.images, b.images)
    assert a.lam == b.lam
    assert torch.equal(images, before)  # the input is not modified
    c = cutmix(_gen(124), images, alpha=0.5)
    assert not (torch.equal(a.perm, c.perm) and a.lam == c.lam)


def test_mixup_pixels_are_the_convex_mix():
    images = torch.rand(5, 3, 6, 7)
    for seed in range(5):
        m = mixup(_gen(seed), images, alpha=0.5)
        assert sorted(m.perm.tolist()) == list(range(5))
        assert 0.0 < m.lam < 1.0
        want = m.lam * images + (1 - m.lam) * images[m.perm]
        torch.testing.assert_close(m.images, want)
    a, b = mixup(_gen(7), images, 0.5), mixup(_gen(7), images, 0.5)
    assert torch.equal(a.images, b.images) and torch.equal(a.perm, b.perm) and a.lam == b.lam


def test_sample_beta_is_symmetric_in_unit_interval():
    gen = _gen(0)
    draws = torch.tensor([sample_beta(gen, 0.5) for _ in range(2000)])
    assert bool(((draws > 0) & (draws < 1)).all())
    assert float(draws.mean()) == pytest.approx(0.5, abs=0.03)
    # Beta(0.5, 0.5) is U-shaped: variance 1/8 (uniform would be 1/12)
    assert float(draws.var()) == pytest.approx(1 / 8, abs=0.015)
    assert [sample_beta(_gen(3), 0.5) for _ in range(2)] == [sample_beta(_gen(3), 0.5)] * 2
