"""Shrinking long series before plotting, and smoothing them (pure numpy, no Textual).

plotext builds a plot on the UI thread at a cost that grows with the number of points (10k points
take ~165 ms), while a terminal plot can only show about two points per character column. So every
series is cut to ``max_points`` with a min/max-per-bucket decimation: each bucket of consecutive
points keeps its lowest and its highest value, in x order, so spikes and the envelope of a noisy
loss stay visible, unlike with striding or averaging.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def finite_xy(xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``xs``, ``ys`` as float arrays of equal length, without NaN / inf points (a diverged loss)."""
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.all():
        x, y = x[keep], y[keep]
    return x, y


def downsample(
    xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray, max_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points of the series: the min and max of equal-count buckets, in order.

    The first and the last point are always kept. Non-finite points are dropped first.
    """
    x, y = finite_xy(xs, ys)
    n = len(x)
    max_points = max(int(max_points), 4)
    if n <= max_points:
        return x, y
    buckets = (max_points - 2) // 2
    inner = n - 2
    size = -(-inner // buckets)  # ceil
    buckets = -(-inner // size)
    padded = buckets * size
    values = y[1 : n - 1]
    if padded > inner:  # repeat the last value so that every bucket has `size` points
        values = np.concatenate([values, np.full(padded - inner, values[-1])])
    grid = values.reshape(buckets, size)
    base = np.arange(buckets) * size + 1
    lo = base + grid.argmin(axis=1)
    hi = base + grid.argmax(axis=1)
    pairs = np.sort(np.stack([lo, hi], axis=1), axis=1).reshape(-1)
    pairs = np.minimum(pairs, n - 2)
    index = np.concatenate([[0], pairs, [n - 1]])
    index = index[np.concatenate([[True], np.diff(index) > 0])]  # drop repeats (min == max position)
    return x[index], y[index]


def ema(values: Sequence[float] | np.ndarray, weight: float, *, state: tuple[float, float] | None = None):
    """TensorBoard-style debiased exponential moving average.

    ``weight`` in [0, 1): 0 is no smoothing. Returns ``(smoothed, state)``; passing ``state`` back
    with the next values continues the average (so a growing series is smoothed incrementally).
    Non-finite values are carried through unchanged and do not disturb the average.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    last, debias = state if state is not None else (0.0, 0.0)
    out = []
    append = out.append
    for value in values:
        v = float(value)
        if v != v or v in (float("inf"), float("-inf")):
            append(v)
            continue
        last = last * weight + (1.0 - weight) * v
        debias = debias * weight + (1.0 - weight)
        append(last / debias if debias > 0 else v)
    return out, (last, debias)
