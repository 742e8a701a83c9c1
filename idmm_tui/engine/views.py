"""The three augmentation pipelines of a run, built from the batched ops in :mod:`augment`.

* :func:`pretrain_crops` — one IDMM crop group (METHOD.md "Pretraining"): RandomResizedCrop at the
  pretraining resolution → flip → ColorJitter(0.8, 0.8, 0.8, 0.2) p=0.8 → grayscale p=0.2 →
  Gaussian blur p=0.5 → normalize.
* :func:`finetune_views` — DeiT-style fine-tuning: RandomResizedCrop → ColorJitter(0.4…) p=0.4 →
  grayscale p=0.2 → RandAugment (2 ops, m9) → flip → normalize.
* :func:`eval_views` — resize + centre crop (crop_pct 0.875: 256→224, 512→448) → normalize.

Inputs are uint8 image batches [B, C, H, W] (C = 1 or 3) and each image's original size [B, 2].
"""

from __future__ import annotations

import torch

from idmm_tui.engine import augment as A
from idmm_tui.engine.randaugment import rand_augment
from idmm_tui.recipe import FinetuneConfig, PretrainConfig

BLUR_SIGMA_AT_112 = (0.1, 2.0)  # pixels at the paper's 112 px; scaled with the resolution


def blur_sigma(resolution: int) -> tuple[float, float]:
    """σ range of the pretraining blur in pixels, proportional to the resolution.

    The paper blurs 112 px crops with σ ∈ [0.1, 2]; a 16 px crop blurred with σ = 2 would be a
    smear, so σ is scaled by ``resolution / 112`` (identical to the paper at 112 px).
    """
    k = resolution / 112.0
    return BLUR_SIGMA_AT_112[0] * k, BLUR_SIGMA_AT_112[1] * k


def crop_groups(cfg: PretrainConfig) -> list[tuple[int, tuple[float, float]]]:
    """(number of crops, RandomResizedCrop scale) of each non-empty crop group: global, then local."""
    groups = [(cfg.global_crops, tuple(cfg.global_scale)), (cfg.local_crops, tuple(cfg.local_scale))]
    return [(n, s) for n, s in groups if n > 0]


def pretrain_crops(
    gen: torch.Generator,
    images: torch.Tensor,
    sizes: torch.Tensor,
    n_crops: int,
    scale: tuple[float, float],
    cfg: PretrainConfig,
) -> torch.Tensor:
    """``n_crops`` augmented crops of every image, crop ``k`` of image ``i`` at row ``k * B + i``."""
    boxes = A.random_resized_boxes(gen, sizes.repeat(n_crops, 1), scale)
    x = A.crop_resize(A.to_float_rgb(images), boxes, cfg.resolution, repeats=n_crops)
    x = A.random_hflip(gen, x)
    x = A.color_jitter(gen, x, cfg.color_jitter, cfg.color_jitter / 4, cfg.color_jitter_prob)
    x = A.random_grayscale(gen, x, cfg.grayscale_prob)
    x = A.random_blur(gen, x, cfg.blur_prob, blur_sigma(cfg.resolution))
    return A.normalize(x)


def finetune_views(
    gen: torch.Generator, images: torch.Tensor, sizes: torch.Tensor, cfg: FinetuneConfig
) -> torch.Tensor:
    """One augmented view per image for supervised fine-tuning."""
    x = A.to_float_rgb(images)
    boxes = A.random_resized_boxes(gen, sizes, cfg.crop_scale)
    x = A.crop_resize(x, boxes, cfg.resolution)
    x = A.color_jitter(gen, x, cfg.color_jitter, cfg.color_jitter / 4, cfg.color_jitter_prob)
    x = A.random_grayscale(gen, x, cfg.grayscale_prob)
    x = rand_augment(gen, x, cfg.randaugment_ops, cfg.randaugment_magnitude)
    x = A.random_hflip(gen, x)
    return A.normalize(x)


def eval_views(images: torch.Tensor, sizes: torch.Tensor, resolution: int, crop_pct: float) -> torch.Tensor:
    """Deterministic test-time view: short side to ``resolution / crop_pct``, centre crop."""
    x = A.to_float_rgb(images)
    x = A.crop_resize(x, A.center_boxes(sizes, crop_pct), resolution)
    return A.normalize(x)
