"""Shrinking long series before plotting, and smoothing them (pure numpy, no Textual).

plotext builds a plot at a cost that grows with the number of points (10k points take ~165 ms),
while a terminal plot can only show about two points per character column. So every series is cut
to a few points per column with a min/max decimation: each bucket of consecutive points keeps its
lowest and its highest value, in x order, so spikes and the envelope of a noisy loss stay visible,
unlike with striding or averaging.

Two bucketings: :func:`downsample` cuts the series into equal-count buckets (any series);
:func:`bucket_extremes` cuts the x *range* into equal-width buckets (x increasing), so that points
appended to a live series only touch the last buckets and leave the others' points unchanged.
"""

from __future__ import annotations

import math
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


def bucket_extremes(
    xs: np.ndarray, ys: np.ndarray, lo: float, hi: float, buckets: int
) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and the highest point of each of ``buckets`` equal-width x ranges of ``[lo, hi]``.

    ``xs`` must be finite and non-decreasing (else this falls back to :func:`downsample`); points
    outside ``[lo, hi]`` count in the first or last bucket. A point appended to the series can only
    change the points of the bucket it falls in.
    """
    x, y = finite_xy(xs, ys)
    n = len(x)
    buckets = max(int(buckets), 2)
    if n <= 2 * buckets:
        return x, y
    span = hi - lo
    if not (math.isfinite(span) and span > 0) or np.any(np.diff(x) < 0):
        return downsample(x, y, 2 * buckets + 2)
    index = np.clip(((x - lo) * (buckets / span)).astype(np.int64), 0, buckets - 1)
    starts = np.flatnonzero(np.concatenate([[True], index[1:] != index[:-1]]))
    lengths = np.diff(np.append(starts, n))
    positions = np.arange(n)
    lows = np.repeat(np.minimum.reduceat(y, starts), lengths)
    highs = np.repeat(np.maximum.reduceat(y, starts), lengths)
    first_low = np.minimum.reduceat(np.where(y == lows, positions, n), starts)
    first_high = np.minimum.reduceat(np.where(y == highs, positions, n), starts)
    pairs = np.sort(np.stack([first_low, first_high], axis=1), axis=1).reshape(-1)
    pairs = pairs[np.concatenate([[True], np.diff(pairs) > 0])]
    return x[pairs], y[pairs]


def headroom_limit(lo: float, hi: float) -> float:
    """``hi`` rounded up to a tenth of the range's order of magnitude (``100_050`` -> ``110_000``).

    A live curve's x axis ends there, so that it does not move with every new point.
    """
    span = hi - lo
    if not (math.isfinite(span) and span > 0):
        return hi
    step = 10.0 ** (math.floor(math.log10(span)) - 1)
    return float(round(math.ceil(hi / step - 1e-9) * step, 9))


def _ema_block_size(weight: float) -> int:
    # w^-k must stay far from overflow within a block: keep w^-block under about 1e200
    return max(1, min(4096, int(200 / -math.log10(weight)))) if weight > 0 else 4096


def ema(values: Sequence[float] | np.ndarray, weight: float, *, state: tuple[float, float] | None = None):
    """TensorBoard-style debiased exponential moving average.

    ``weight`` in [0, 1): 0 is no smoothing. Returns ``(smoothed, state)`` (a list); passing
    ``state`` back with the next values continues the average (so a growing series is smoothed
    incrementally). Non-finite values are carried through unchanged and do not disturb the average.
    """
    out, state = ema_array(values, weight, state=state)
    return out.tolist(), state


def ema_array(
    values: Sequence[float] | np.ndarray, weight: float, *, state: tuple[float, float] | None = None
) -> tuple[np.ndarray, tuple[float, float]]:
    """:func:`ema` as a float array, vectorised in blocks (a million values take tens of milliseconds)."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    last, debias = state if state is not None else (0.0, 0.0)
    out = np.array(values, dtype=float)
    finite = np.isfinite(out)
    v = out[finite]
    if not len(v):
        return out, (last, debias)
    smoothed = np.empty_like(v)
    block = _ema_block_size(weight)
    for start in range(0, len(v), block):
        chunk = v[start : start + block]
        k = np.arange(1, len(chunk) + 1, dtype=float)
        if weight > 0:
            decay = weight**k  # w^k, k = 1..len
            sums = np.cumsum(chunk / decay) * decay  # sum_i w^(k-i) v_i
        else:
            decay, sums = np.zeros_like(k), chunk.copy()
        running = decay * last + (1.0 - weight) * sums
        weights = decay * debias + (1.0 - decay)
        smoothed[start : start + len(chunk)] = np.where(weights > 0, running / np.where(weights > 0, weights, 1), chunk)
        last, debias = float(running[-1]), float(weights[-1])
    out[finite] = smoothed
    return out, (last, debias)
