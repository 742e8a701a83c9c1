"""The dashboard's data path at scale (no Textual app): cutting and smoothing series, growing and
prepending columns, reading a long metrics file from its end, listing a large runs directory."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from idmm_tui.tui.canvas import Line, plot_points
from idmm_tui.tui.curves import Column, RunCurves, columnize
from idmm_tui.tui.downsample import bucket_extremes, ema, ema_array, headroom_limit
from idmm_tui.tui.scan import RunsScanner
from idmm_tui.tui.tailer import TAIL_FIRST, FileTail, RunWatcher, parse_metrics_lines


def ema_loop(values, weight):
    """The plain definition of the debiased EMA (what ``ema_array`` vectorises)."""
    last = debias = 0.0
    out = []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        debias = debias * weight + (1 - weight)
        out.append(last / debias)
    return out


@pytest.mark.parametrize("weight", [0.0, 0.6, 0.9, 0.99])
def test_vectorised_ema_matches_the_definition_across_blocks_and_calls(weight):
    rng = np.random.default_rng(0)
    values = rng.standard_normal(10_000) * 3 + 10
    values[[5, 4_000]] = [np.nan, np.inf]
    expected = np.array(ema_loop(values, weight))
    full, _ = ema_array(values, weight)
    head, state = ema_array(values[:1_234], weight)
    tail, _ = ema_array(values[1_234:], weight, state=state)
    finite = np.isfinite(expected)
    assert np.allclose(full[finite], expected[finite], rtol=1e-9)
    assert np.allclose(np.concatenate([head, tail])[finite], expected[finite], rtol=1e-9)
    assert np.isnan(full[5]) and np.isinf(full[4_000])
    assert ema(values[:3], weight)[0] == pytest.approx(ema_loop(values[:3], weight))  # the list API


def test_bucket_extremes_keeps_spikes_and_a_new_point_only_touches_its_bucket():
    xs = np.arange(1, 100_001, dtype=float)
    ys = np.sin(xs / 3_000) + np.random.default_rng(1).standard_normal(len(xs)) * 0.1
    ys[31_337], ys[77_777] = 50.0, -40.0
    dx, dy = bucket_extremes(xs, ys, 1.0, 110_000.0, 100)
    assert len(dx) <= 200 and 50.0 in dy and -40.0 in dy and np.all(np.diff(dx) > 0)
    inside = float(np.median(ys[-900:]))  # between the last bucket's min and max
    more_x, more_y = np.append(xs, 100_001.0), np.append(ys, inside)
    dx2, dy2 = bucket_extremes(more_x, more_y, 1.0, 110_000.0, 100)
    assert np.array_equal(dx2, dx) and np.array_equal(dy2, dy)  # the bucket's min and max did not change
    dx3, dy3 = bucket_extremes(np.append(xs, 100_001.0), np.append(ys, -90.0), 1.0, 110_000.0, 100)
    assert np.array_equal(dx3[:-2], dx[:-2]) and dy3[-1] == -90.0  # a new minimum: only its bucket changes
    assert headroom_limit(1, 100_050) == 110_000 and headroom_limit(0, 3.5) == 3.5
    assert headroom_limit(5, 5) == 5  # an empty range stays as it is


def test_plot_points_of_a_live_curve_do_not_move_for_points_inside_its_pixels():
    rng = np.random.default_rng(2)
    steps = np.arange(1, 50_501, dtype=float)
    loss = 3 * np.exp(-steps / 20_000) + rng.random(len(steps)) * 0.2
    before = plot_points([Line("loss", steps, loss)], 58, 17, live=True)
    steps2 = np.append(steps, [50_501.0, 50_502.0])
    loss2 = np.append(loss, [float(np.median(loss[-100:]))] * 2)
    after = plot_points([Line("loss", steps2, loss2)], 58, 17, live=True)
    assert before.key == after.key and before.xlim == (1.0, 51_000.0)
    finished = plot_points([Line("loss", steps2, loss2)], 58, 17, live=False)
    assert finished.xlim is None and finished.key != after.key  # a finished curve spans its data exactly
    spike = plot_points([Line("loss", steps2, np.append(loss, [9.0, 9.0]))], 58, 17, live=True)
    assert spike.key != before.key


def records(stage: str, start: int, count: int, kind: str = "train") -> list[dict]:
    return [
        {
            "kind": kind,
            "stage": stage,
            "stage_index": 0,
            "epoch": 1 + i // 10,
            "step": i,
            "loss": 1.0 / i,
            "lr": 1e-3,
            "images_per_s": 900.0,
            "time": i * 0.5,
        }
        for i in range(start, start + count)
    ]


def test_columns_in_parts_and_series_extended_front_and_back_equal_one_pass():
    column = Column()
    column.append(np.arange(5, 8.0))
    column.prepend(np.arange(2, 5.0))
    column.prepend(np.arange(0, 2.0))
    column.append(np.arange(8, 10.0))
    assert column.array().tolist() == list(range(10)) and column.last() == 9 and len(column) == 10
    assert column.last(3).tolist() == [7, 8, 9] and len(column.parts()) == 3

    incremental, reference = RunCurves(), RunCurves()
    reference.add(records("s", 1, 300))
    incremental.add(records("s", 201, 50))  # the end of the file first
    for smoothing in (0.0, 0.9):
        incremental.stages["s"].series("loss", "step", smoothing)  # cached before older records arrive
    incremental.add_columns(columnize(records("s", 101, 100)), older=True)
    incremental.add(records("s", 251, 50))  # new lines while older ones fill in
    incremental.add_columns(columnize(records("s", 1, 100)), older=True)
    for smoothing in (0.0, 0.9):
        xs, ys = incremental.stages["s"].xy("loss", "step", smoothing)
        rx, ry = reference.stages["s"].xy("loss", "step", smoothing)
        assert xs.tolist() == rx.tolist() and np.allclose(ys, ry)
    assert incremental.points == 300 and incremental.stages["s"].last_train_step() == 300


def test_batched_parsing_falls_back_to_lines_on_doubt():
    good = [json.dumps(r) for r in records("s", 1, 5)]
    assert parse_metrics_lines(good) == records("s", 1, 5)
    tricky = ['{"a": "}', '{"}', good[0], "", "not json", '{"kind": "train", broken', "[1, 2]"]
    assert parse_metrics_lines(tricky) == [records("s", 1, 1)[0]]  # two halves never make one record


def test_a_long_file_is_read_from_its_end_then_backwards_without_losing_a_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": i, "pad": "x" * (i % 97)}) for i in range(20_000)]
    path.write_text("".join(line + "\n" for line in lines) + '{"step": 20000, "partial')
    tail = FileTail(path, backfill=True)
    reset, last = tail.poll()
    assert not reset and last == lines[-len(last) :] and 0 < sum(len(x) + 1 for x in last) <= TAIL_FIRST
    assert tail.has_older
    got = list(last)
    size = 1000
    while tail.has_older:
        older = tail.older(size)
        size *= 2
        got = older + got
    assert got == lines  # every complete line once, in order; the partial last line is not read
    with open(path, "a") as handle:
        handle.write(' "x"}\n' + lines[1] + "\n")
    assert tail.poll() == (False, ['{"step": 20000, "partial "x"}', lines[1]])
    os.replace(tmp_path / "metrics.jsonl", tmp_path / "old")
    path.write_text(lines[0] + "\n")
    assert tail.poll() == (True, [lines[0]]) and not tail.has_older  # replaced: starts over


def test_run_watcher_sends_the_end_of_a_long_run_first(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    body = "".join(json.dumps(r) + "\n" for r in records("s", 1, 5_000))
    (run / "metrics.jsonl").write_text(body)
    watcher = RunWatcher(run)
    first = watcher.poll()
    assert first.backfilling and not first.older and first.records[-1]["step"] == 5_000
    total, polls = len(first.records), 0
    while watcher.poll().backfilling or not polls:
        polls += 1
        assert polls < 20
    curves = RunCurves()
    watcher = RunWatcher(run)
    poll = watcher.poll()
    curves.add_columns(poll.columns)
    while True:
        poll = watcher.poll()
        curves.add_columns(poll.older, older=True)
        if not poll.backfilling:
            break
    assert 0 < total < 5_000 and curves.points == 5_000
    assert curves.stages["s"].xy("loss")[0].tolist() == [float(i) for i in range(1, 5_001)]


def test_runs_scanner_reads_a_summary_again_only_when_it_changed(tmp_path):
    for k in range(30):
        run = tmp_path / f"run{k:02d}"
        run.mkdir()
        status = "running" if k < 3 else "completed"
        (run / "summary.json").write_text(
            json.dumps(
                {
                    "format": "idmm-run/1",
                    "name": run.name,
                    "status": status,
                    "pid": os.getpid(),
                    "started_at": f"2026-11-{k + 1:02d}",
                }
            )
        )
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "not-a-run" / "summary.json").write_text("{}")
    scanner = RunsScanner(tmp_path)
    rows, summaries = scanner.scan()
    assert len(rows) == 30 and scanner.reads == 31
    rows2, _ = scanner.scan()
    assert scanner.reads == 31 and rows2[5] is rows[5]  # nothing re-read, finished rows kept as they were
    summary = json.loads((tmp_path / "run07" / "summary.json").read_text())
    summary["test_acc"] = 71.5
    (tmp_path / "run07" / "summary.json").write_text(json.dumps(summary) + " ")
    rows3, _ = scanner.scan()
    assert scanner.reads == 32 and rows3[7].test_acc == 71.5
