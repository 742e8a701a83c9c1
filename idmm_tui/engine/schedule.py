"""Learning-rate schedule: linear warmup per iteration, then cosine decay (METHOD.md).

The authors' release has a misplaced bracket in its cosine; this is the correct one:
``lr(t) = min_lr + (peak − min_lr) · (1 + cos(π · progress)) / 2`` after warmup.
"""

from __future__ import annotations

import math


def lr_at(step: int, *, total_steps: int, warmup_steps: int, peak: float, min_lr: float = 0.0) -> float:
    """Learning rate for optimisation step ``step`` (0-based) of ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + (peak - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
