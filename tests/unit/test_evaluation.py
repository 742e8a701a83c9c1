"""The evaluation maths: t-SNE, perplexity calibration, the linear probe, kNN scores, parameter counts, plots."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from idmm_tui.evaluation.features import sample_indices
from idmm_tui.evaluation.linear import linear_probe
from idmm_tui.evaluation.neighbours import leave_one_out_knn_accuracy
from idmm_tui.evaluation.params import backbone_params, metric_value
from idmm_tui.evaluation.plots import Series, nice_ticks, palette, scatter_png, scatter_text
from idmm_tui.evaluation.tsne import ITERATIONS, pca, tsne
from idmm_tui.models.registry import create_backbone
from idmm_tui.runs.store import RunDir


def blobs(classes: int, per_class: int, dim: int, spread: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian clusters (unit variance) whose centres are ``spread`` apart on average."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=gen) * spread / math.sqrt(2 * dim)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return centres[labels] + torch.randn(labels.shape[0], dim, generator=gen), labels


# ---------------------------------------------------------------------------------------------
# t-SNE


def test_pca_keeps_the_leading_directions():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(200, 6, generator=gen) * torch.tensor([10.0, 5.0, 0.1, 0.1, 0.1, 0.1])
    reduced = pca(x, 2)
    assert reduced.shape == (200, 2)
    assert float(reduced.var(0).sum() / (x - x.mean(0)).double().var(0).sum()) > 0.99
    assert pca(x, 50).shape == (200, 6)  # fewer dims than asked: centred only


def test_tsne_separates_gaussian_clusters_and_its_kl_falls():
    x, labels = blobs(classes=4, per_class=30, dim=20, spread=12.0)
    result = tsne(x, perplexity=10.0, seed=0)
    assert result.embedding.shape == (120, 2) and torch.isfinite(result.embedding).all()
    assert leave_one_out_knn_accuracy(result.embedding, labels, k=5) == 100.0
    kls = [kl for _, kl in result.kl_history]
    assert kls[-1] < kls[0] and kls[-1] == pytest.approx(result.kl, rel=1e-3)
    assert result.iterations == ITERATIONS and result.kl_history[-1][0] == ITERATIONS
    with pytest.raises(ValueError, match="perplexity"):
        tsne(x[:20], perplexity=25.0)
    # every cluster is tighter than the distance to the nearest other cluster
    centres = torch.stack([result.embedding[labels == c].mean(0) for c in range(4)])
    radius = max(float((result.embedding[labels == c] - centres[c]).norm(dim=1).max()) for c in range(4))
    gaps = torch.cdist(centres, centres) + torch.eye(4) * 1e9
    assert float(gaps.min()) > radius
    again = tsne(x, perplexity=10.0, seed=0)
    assert torch.equal(again.embedding, result.embedding)  # seeded: the same map


# ---------------------------------------------------------------------------------------------
# kNN, the linear probe


def test_leave_one_out_knn_never_counts_a_point_as_its_own_neighbour():
    points = torch.tensor([[0.0], [0.1], [10.0], [10.1]])
    assert leave_one_out_knn_accuracy(points, torch.tensor([0, 0, 1, 1]), k=1) == 100.0
    assert leave_one_out_knn_accuracy(points, torch.tensor([0, 1, 0, 1]), k=1) == 0.0  # self would give 100


def test_linear_probe_fits_linearly_separable_features():
    x, y = blobs(classes=5, per_class=40, dim=16, spread=20.0, seed=4)
    xt, yt = blobs(classes=5, per_class=20, dim=16, spread=20.0, seed=4)
    result = linear_probe(x, y, xt, yt, epochs=30, seed=0)
    assert result.train_acc == 100.0 and result.test_acc >= 99.0
    assert result.steps == 30 and result.batch_size == 200


def test_linear_probe_beats_chance_on_overlapping_classes_and_is_deterministic():
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(32, 4, generator=gen)
    x, xt = torch.randn(600, 32, generator=gen), torch.randn(300, 32, generator=gen)
    noisy = lambda z: (z @ w + 1.5 * torch.randn(z.shape[0], 4, generator=gen)).argmax(1)  # noqa: E731
    y, yt = noisy(x), noisy(xt)
    result = linear_probe(x, y, xt, yt, epochs=20, seed=1)
    assert 50.0 < result.test_acc < 100.0  # chance is about 25 %
    assert linear_probe(x, y, xt, yt, epochs=20, seed=1) == result
    with pytest.raises(ValueError):
        linear_probe(x, y, xt, yt, epochs=0)


def test_sample_indices_draws_a_seeded_subset_of_the_first_classes():
    labels = torch.arange(5).repeat(20)
    picked = sample_indices(labels, max_points=30, max_classes=3, seed=7)
    assert picked.shape == (30,) and bool((labels[picked] < 3).all()) and torch.equal(picked, picked.sort().values)
    assert torch.equal(picked, sample_indices(labels, max_points=30, max_classes=3, seed=7))
    assert sample_indices(labels, max_points=None, max_classes=None, seed=0).shape == (100,)


# ---------------------------------------------------------------------------------------------
# parameter counts and metrics


@pytest.mark.parametrize("name", ["vit_nano_p2", "vit_pico_p4", "vit_micro_p4"])
def test_meta_device_parameter_count_matches_a_real_model(name):
    from idmm_tui.models.registry import get_backbone_spec

    real = create_backbone(name, img_size=get_backbone_spec(name).default_resolution)
    assert backbone_params(name) == sum(p.numel() for p in real.parameters())
    hits = backbone_params.cache_info().hits
    backbone_params(name)
    assert backbone_params.cache_info().hits == hits + 1  # counted once per backbone


def test_metric_value_reads_dotted_summary_keys(tmp_path):
    run = RunDir(tmp_path)
    summary = {
        "test_acc": 51.5,
        "stages": {"pretrain": {"knn_acc": 40}},
        "evals": {"linear": {"pretrain": {}}},
        "flag": True,
    }
    assert metric_value(run, summary, "stages.pretrain.knn_acc") == 40.0
    assert metric_value(run, summary, "evals.linear.pretrain.test_acc") is None
    assert metric_value(run, summary, "flag") is None
    assert metric_value(run, summary, "nope.deeper") is None


# ---------------------------------------------------------------------------------------------
# pictures


def test_palette_colours_are_distinct():
    colours = palette(45)
    assert len(set(colours)) == 45 and all(0 <= c <= 255 for rgb in colours for c in rgb)


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0.3, 9.7) == [2.0, 4.0, 6.0, 8.0]
    assert nice_ticks(-1.0, 1.0, target=4) == [-1.0, -0.5, 0.0, 0.5, 1.0]


def test_scatter_png_and_terminal_plot(tmp_path):
    cats = Series("cats", [0.0, 1.0], [0.0, 1.0], (255, 0, 0), ["a", "b"])
    series = [cats, Series("dogs", [2.0], [3.0], (0, 0, 255))]
    out = tmp_path / "sub" / "plot.png"
    scatter_png(out, series, title="pets", x_label="x", y_label="y", size=(640, 480))
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (640, 480)
        colours = {c for _, c in image.convert("RGB").getcolors(1 << 20)}
    assert (255, 0, 0) in colours and (0, 0, 255) in colours
    scatter_png(out, series, title="log", log_x=False, ticks=False)  # replaced atomically
    assert not list(out.parent.glob(".*.tmp"))
    text = scatter_text(series, title="pets", width=60, height=15, color=False)
    assert "pets" in text and "● cats" in text and "● dogs" in text and "\x1b[" not in text
    assert any(0x2800 <= ord(ch) <= 0x28FF for ch in text)  # braille dots
    assert "\x1b[" in scatter_text(series, title="pets", width=60, height=15, color=True)
