"""The mechanisms behind the hostile-input suite, tested on their own: text made safe to show, URLs
without credentials, run names, process identity, checked summaries, OS errors in words."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from idmm_tui.errors import DataError, FilesystemError, as_user_error, describe_os_error
from idmm_tui.runs.store import (
    check_run_name,
    effective_status,
    process_start,
    run_name_from,
    run_process_alive,
    summary_problem,
)
from idmm_tui.textsafe import redact_text, redact_url, safe_markup, safe_text
from idmm_tui.zoo.errors import HubUnreachableError


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain-name_1.2", "plain-name_1.2"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("two\nlines\r", "two\\x0alines\\x0d"),
        ("bell\x07 del\x7f c1\x9b", "bell\\x07 del\\x7f c1\\x9b"),
        ("abc\u202edcb", "abc\\u202edcb"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        (None, ""),
        (42, "42"),
        ("naïve 日本", "naïve 日本"),
    ],
)
def test_safe_text_shows_control_characters_as_escapes(raw, shown):
    assert safe_text(raw) == shown


def test_safe_markup_keeps_brackets_literal():
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(safe_markup("[red]x[/] \x1b[31m"), highlight=False)
    assert console.export_text().strip() == "[red]x[/] \\x1b[31m"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://huggingface.co", "https://huggingface.co"),
        ("http://user:TOKEN@host:8080/x", "http://***@host:8080/x"),
        ("http://TOKEN@host", "http://***@host"),
        ("http://host/api?token=TOKEN&page=2", "http://host/api?token=***&page=***"),
        ("http://host/#TOKEN", "http://host/#***"),
        ("http://a:b@c@host/", "http://***@host/"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_redact_text_finds_every_url_and_the_given_secrets():
    text = "failed on http://u:SECRET1@h:1/x (retry https://h2/?sig=SECRET2) with token hf_SECRET3"
    out = redact_text(text, ("hf_SECRET3", None, ""))
    assert "SECRET" not in out and out.count("***") == 3 and "http://***@h:1/x" in out


@pytest.mark.parametrize("name", ["demo-20261126-120000", "g.lr-1e+3.s0", "a=b", "x" * 200])
def test_valid_run_names(name):
    assert check_run_name(name) == name


@pytest.mark.parametrize("name", ["", ".x", "-x", "a/b", "a..b", "x" * 201, "a b", "a\nb", "é", 5, None])
def test_invalid_run_names(name):
    from idmm_tui.errors import RunStateError

    with pytest.raises(RunStateError, match="letters, digits"):
        check_run_name(name)


def test_run_name_from_arbitrary_text():
    assert run_name_from("my run\x1b[2J/../x") == "my_run_2J_._x"
    check_run_name(run_name_from("a/../..b") + "-20260101-000000")
    assert run_name_from("...") == "run" and len(run_name_from("y" * 500)) <= 160
    check_run_name(run_name_from("über ☃ name") + "-20260101-000000")


def test_process_identity_tells_a_reused_pid_from_the_run():
    me = os.getpid()
    token = process_start(me)
    assert token and process_start(me) == token
    alive = {"status": "running", "pid": me, "pid_start": token, "host": None}
    assert run_process_alive(alive) and effective_status(alive) == "running"
    reused = dict(alive, pid_start=token + "0")
    assert not run_process_alive(reused) and effective_status(reused) == "interrupted"
    legacy = {"status": "running", "pid": me, "host": None}  # written before pid_start existed
    assert effective_status(legacy) == "running"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = {"status": "running", "pid": child.pid, "pid_start": token, "host": None}
    assert effective_status(dead) == "interrupted"


@pytest.mark.parametrize(
    ("summary", "problem"),
    [
        ({"format": "idmm-run/1", "status": "running", "pid": 3}, None),
        ({"pid": "12"}, "'pid'"),
        ({"pid": True}, "'pid'"),
        ({"seed": 1.5}, "'seed'"),
        ({"plan": {"a": 1}}, "'plan'"),
        ({"plan": [{"name": "p", "epochs": "2"}]}, "'plan'"),
        ({"stages": {"p": []}}, "'stages'"),
        ({"stages": {"p": {"test_acc": "x"}}}, "'stages'"),
        ({"current": "pretrain"}, "'current'"),
        ({"knn_start": {"pretrain": "x"}}, "'knn_start'"),
        ({"evals": {"linear": {"pretrain": 3}}}, "'evals'"),
        ({"test_acc": float("nan")}, "not a finite number"),
        ({"overrides": "a=b"}, "'overrides'"),
        ({"unknown_future_key": [1, {"x": None}]}, None),
        ([], "not an object"),
    ],
)
def test_summary_problem(summary, problem):
    found = summary_problem(summary)
    assert (found is None) if problem is None else (problem in found)


def test_os_errors_become_one_line_errors_with_their_exit_codes():
    full = as_user_error(OSError(errno.ENOSPC, "No space left on device", "/runs/x/summary.json"))
    assert isinstance(full, FilesystemError) and full.exit_code == 7
    assert str(full) == "file operation failed (/runs/x/summary.json): no space left on the device"
    assert "read-only" in describe_os_error(OSError(errno.EROFS, "Read-only file system", "/r"), "cannot write")
    assert (
        describe_os_error(OSError(errno.EISDIR, "x", "/a/b"), "cannot read /a/b")
        == "cannot read /a/b: it is a directory"
    )
    assert isinstance(as_user_error(ConnectionResetError(errno.ECONNRESET, "reset")), HubUnreachableError)
    try:
        b"ok \xff".decode("utf-8")
    except UnicodeDecodeError as exc:
        assert isinstance(as_user_error(exc), DataError) and "byte 0xff at position 3" in str(as_user_error(exc))
    assert as_user_error(RuntimeError("a bug")) is None and as_user_error(KeyError("x")) is None


def test_a_writer_library_s_full_disk_error_becomes_the_os_error(tmp_path):
    from idmm_tui.fsutil import atomic_write

    class LibraryError(Exception):
        pass

    def write(tmp):
        raise LibraryError("Error while serializing: I/O error: No space left on device (os error 28)")

    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "w.safetensors", write)
    assert info.value.errno == errno.ENOSPC and list(tmp_path.iterdir()) == []
    with pytest.raises(LibraryError):  # anything else stays what it is
        atomic_write(tmp_path / "w.safetensors", lambda tmp: (_ for _ in ()).throw(LibraryError("shape")))


def test_stale_temporary_files_are_removed_by_the_next_write(tmp_path):
    import time

    from idmm_tui.fsutil import STALE_TMP_S, atomic_write_text

    old = tmp_path / ".summary.json.k1l2.tmp"
    fresh = tmp_path / ".summary.json.m3n4.tmp"
    other = tmp_path / ".recipe.toml.x.tmp"
    for path in (old, fresh, other):
        path.write_text("half")
    past = time.time() - STALE_TMP_S - 10
    os.utime(old, (past, past))
    os.utime(other, (past, past))
    atomic_write_text(tmp_path / "summary.json", "{}")
    assert not old.exists() and fresh.exists() and other.exists()  # only the same file's, only stale ones


def test_hub_requests_get_timeouts_even_when_sent_with_none(monkeypatch):
    from idmm_tui.zoo.hub import _bound_timeouts

    class Request:
        extensions = {"timeout": {"connect": None, "read": None, "write": 5.0, "pool": None}}

    monkeypatch.setenv("IDMM_HUB_TIMEOUT", "7")
    request = Request()
    _bound_timeouts(request)
    assert request.extensions["timeout"] == {"connect": 7.0, "read": 7.0, "write": 5.0, "pool": 7.0}
    monkeypatch.setenv("IDMM_HUB_TIMEOUT", "soon")
    from idmm_tui.errors import UsageError

    with pytest.raises(UsageError, match="IDMM_HUB_TIMEOUT"):
        _bound_timeouts(Request())
