"""Push and pull zoo models through ``huggingface_hub``, with the endpoint and token passed explicitly.

* **Endpoint**: ``--endpoint``, else ``$HF_ENDPOINT``, else ``https://huggingface.co``; always given
  to ``HfApi(endpoint=…)`` (huggingface_hub reads ``HF_ENDPOINT`` only once, at import).
* **Token**: ``--token``, else ``$HF_TOKEN``, else the logged-in token (``hf auth login``). It is
  handed to huggingface_hub and nowhere else: every message is passed through :func:`redact`.
* **Reachability**: a dead endpoint costs ~23 s of the client's built-in retries, so every Hub
  operation starts with a plain TCP connect (3 s at most) and fails at once with "hub unreachable".
* **Timeouts**: every request has a connect and a read timeout (``$IDMM_HUB_TIMEOUT`` seconds, default
  30; connect at most 10), even those huggingface_hub sends without one: a Hub that accepts the
  connection and never answers fails with "did not answer within N s" (exit 6; ``pull`` then falls
  back to the local copy when there is one) instead of waiting forever.
* **Credentials in the endpoint URL** (``http://user:TOKEN@host``) are used, never shown: messages,
  progress lines and ``source.json`` get :attr:`Hub.shown` (see :func:`idmm_tui.textsafe.redact_url`).
* **Integrity**: pulled weights are hashed and compared with the sha256 the catalogue pins (and the
  one the model's own config.json records); a mismatch is refused before anything is installed.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from idmm_tui import __version__
from idmm_tui.errors import IdmmError, UsageError
from idmm_tui.textsafe import redact_text, redact_url
from idmm_tui.zoo.errors import HubError, HubTimeoutError, HubUnreachableError
from idmm_tui.zoo.registry import CONFIG, MODEL_FILES, WEIGHTS

DEFAULT_ENDPOINT = "https://huggingface.co"
CONNECT_TIMEOUT_S = 3.0
DEFAULT_TIMEOUT_S = 30.0
MAX_CONNECT_TIMEOUT_S = 10.0


def request_timeout() -> float:
    """Seconds a Hub request may wait for a connection or for the next bytes: ``$IDMM_HUB_TIMEOUT`` or 30."""
    value = os.environ.get("IDMM_HUB_TIMEOUT", "").strip()
    try:
        seconds = float(value) if value else DEFAULT_TIMEOUT_S
    except ValueError:
        raise UsageError(f"$IDMM_HUB_TIMEOUT must be a number of seconds, not {value!r}") from None
    if not 0 < seconds < 1e6:
        raise UsageError(f"$IDMM_HUB_TIMEOUT must be a positive number of seconds, not {value!r}")
    return seconds


def _bound_timeouts(request) -> None:
    """httpx request hook: fill in every timeout a request leaves unset (huggingface_hub sends some with
    none at all, e.g. ``repo_info``), so that no request can wait forever."""
    read = request_timeout()
    bounds = {"connect": min(read, MAX_CONNECT_TIMEOUT_S), "read": read, "write": read, "pool": read}
    current = request.extensions.get("timeout")
    current = dict(current) if isinstance(current, dict) else {}
    request.extensions = {
        **request.extensions,
        "timeout": {k: current.get(k) if current.get(k) is not None else v for k, v in bounds.items()},
    }


def install_timeouts() -> None:
    """Add :func:`_bound_timeouts` to huggingface_hub's shared HTTP client (once)."""
    try:
        from huggingface_hub import get_session

        session = get_session()
    except Exception:  # an older huggingface_hub: it sets its own timeouts on downloads
        return
    hooks = getattr(session, "event_hooks", None)
    if isinstance(hooks, dict) and _bound_timeouts not in hooks.get("request", []):
        hooks.setdefault("request", []).append(_bound_timeouts)


@dataclass(frozen=True)
class Hub:
    """Where to talk to, and with which credentials (``token`` never shown: see ``__repr__``)."""

    endpoint: str
    token: str | None = None

    def __repr__(self) -> str:
        return f"Hub(endpoint={self.shown!r}, token={'***' if self.token else None})"

    @property
    def shown(self) -> str:
        """The endpoint as it may be printed, logged or recorded: without credentials."""
        return redact_url(self.endpoint)

    def api(self):
        from huggingface_hub import HfApi

        apply_xet_setting()
        install_timeouts()
        return HfApi(
            endpoint=self.endpoint, token=self.token or False, library_name="idmm", library_version=__version__
        )


_XET_IMPORT_DEFAULT: list[bool] = []


def apply_xet_setting() -> None:
    """Honour ``$HF_HUB_DISABLE_XET`` as it is now (huggingface_hub reads it once, at import).

    Self-hosted hubs without Xet storage take large files over plain Git LFS only when it is set;
    when it is unset again, huggingface_hub's import-time value is restored.
    """
    from huggingface_hub import constants

    if not _XET_IMPORT_DEFAULT:
        _XET_IMPORT_DEFAULT.append(bool(constants.HF_HUB_DISABLE_XET))
    value = os.environ.get("HF_HUB_DISABLE_XET")
    disabled = value.strip().upper() in ("1", "ON", "YES", "TRUE") if value is not None else _XET_IMPORT_DEFAULT[0]
    constants.HF_HUB_DISABLE_XET = disabled


def resolve_endpoint(endpoint: str | None = None) -> str:
    """``endpoint`` or ``$HF_ENDPOINT`` or the public Hub, validated as an http(s) URL."""
    value = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/")
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        valid = False
    if not valid:
        raise UsageError(f"invalid hub endpoint {redact_url(value)!r}: expected http(s)://HOST[:PORT]")
    return value


def resolve_token(token: str | None = None) -> str | None:
    """``--token``, ``$HF_TOKEN`` or the logged-in token (None when there is none)."""
    if token:
        return token.strip()
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"].strip()
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:  # a broken login is the same as none here
        return None


def make_hub(endpoint: str | None = None, token: str | None = None) -> Hub:
    return Hub(resolve_endpoint(endpoint), resolve_token(token))


def redact(text: str, token: str | None) -> str:
    """``text`` with every occurrence of the token, and credentials in any URL, replaced by ``***``."""
    return redact_text(text, (token,))


def check_reachable(endpoint: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A TCP connection to the endpoint (or its proxy) within ``timeout`` s, else HubUnreachableError."""
    parts = urlsplit(endpoint)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if proxy_parts.hostname:
            host, port = proxy_parts.hostname, proxy_parts.port or 8080
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, TimeoutError | socket.timeout):
            reason = f"no answer in {timeout:g} s"
        raise HubUnreachableError(
            f"hub unreachable: cannot connect to {redact_url(endpoint)} ({reason}); check --endpoint / "
            "$HF_ENDPOINT and the network"
        ) from None


@contextmanager
def hub_errors(hub: Hub, repo: str, revision: str | None = None, action: str = "reach") -> Iterator[None]:
    """Turn huggingface_hub / network exceptions into one-line :class:`HubError` messages."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f" on {hub.shown}"
    try:
        yield
    except IdmmError:
        raise
    except RevisionNotFoundError:
        raise HubError(f"revision {revision!r} not found in {repo}{at}") from None
    except RemoteEntryNotFoundError:
        raise HubError(f"{repo}@{revision or 'main'}{at} lacks {WEIGHTS} or {CONFIG}: not a zoo model") from None
    except RepositoryNotFoundError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        hint = " (or it is private and the token cannot read it)" if status in (401, 403) or not hub.token else ""
        raise HubError(f"repo {repo} not found{at}{hint}") from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 401:
            raise HubError(
                f"the hub at {hub.shown} rejected the token (401 Unauthorized) while trying to "
                f"{action} {repo}: pass a valid --token, set $HF_TOKEN or run 'hf auth login'"
            ) from None
        if status == 403:
            raise HubError(
                f"the token may not {action} {repo} (403 Forbidden): use a token with write access to that namespace"
            ) from None
        first = redact(str(exc), hub.token).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HubError(f"hub error while trying to {action} {repo}{at}: {first}") from None
    except LocalEntryNotFoundError:
        raise HubUnreachableError(f"hub unreachable while trying to {action} {repo}{at}, and no local copy") from None
    except Exception as exc:  # httpx errors and the like: one line, token-free
        text = redact(str(exc), hub.token).strip()
        first = text.splitlines()[0] if text else ""
        name = type(exc).__name__
        if "xet" in text.lower():
            raise HubError(
                f"the hub at {hub.shown} offers no Xet storage for large files ({name}); set "
                "HF_HUB_DISABLE_XET=1 to transfer them with plain Git LFS"
            ) from None
        if "Timeout" in name and "Connect" not in name:
            raise HubTimeoutError(
                f"the hub at {hub.shown} did not answer within {request_timeout():g} s while trying to {action} "
                f"{repo} ({name}); try again later, or allow more time with $IDMM_HUB_TIMEOUT"
            ) from None
        if "Connect" in name or "Timeout" in name:
            raise HubUnreachableError(f"hub unreachable while trying to {action} {repo}{at}: {name}") from None
        raise HubError(f"hub error while trying to {action} {repo}{at}: {name}: {first}") from None


def check_repo_id(repo: str) -> str:
    from idmm_tui.zoo.catalogue import is_repo_id

    if not is_repo_id(repo):
        raise UsageError(f"invalid Hub repo id {repo!r}: expected ORG/NAME (letters, digits, '-', '_', '.')")
    return repo


@dataclass(frozen=True)
class Pushed:
    repo: str
    commit: str
    url: str


def push_folder(hub: Hub, folder: Path, repo: str, *, private: bool = False, message: str = "") -> Pushed:
    """Create ``repo`` if needed and commit the model files of ``folder`` to its main branch."""
    from huggingface_hub import CommitOperationAdd

    check_repo_id(repo)
    if not hub.token:
        raise HubError(
            "no Hub token: pass --token, set $HF_TOKEN or log in with 'hf auth login' "
            "(pushing needs a token with write access)"
        )
    check_reachable(hub.endpoint)
    api = hub.api()
    with hub_errors(hub, repo, action="push to"):
        api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
        ops = [
            CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f))
            for f in MODEL_FILES
            if (folder / f).is_file()
        ]
        info = api.create_commit(
            repo, ops, commit_message=message or "Upload model with idmm zoo push", repo_type="model"
        )
    return Pushed(repo, info.oid, redact_url(str(info.commit_url)))  # built from the endpoint: no credentials


@dataclass(frozen=True)
class Pulled:
    repo: str
    revision: str
    commit: str


def download(hub: Hub, repo: str, dest: Path, *, revision: str = "main") -> Pulled:
    """Fetch the model files of ``repo`` at ``revision`` into ``dest`` (no verification here).

    The revision is resolved to a commit first (a missing repo or revision fails fast and clearly),
    then exactly that commit is downloaded, with huggingface_hub's progress bars.
    """
    check_repo_id(repo)
    check_reachable(hub.endpoint)
    api = hub.api()
    with hub_errors(hub, repo, revision, action="pull"):
        info = api.repo_info(repo, repo_type="model", revision=revision)
        present = {s.rfilename for s in (info.siblings or [])}
        missing = [f for f in (WEIGHTS, CONFIG) if f not in present]
        if missing:
            raise HubError(f"{repo}@{revision} has no {' or '.join(missing)}: not a zoo model (timm layout)")
        api.snapshot_download(
            repo,
            repo_type="model",
            revision=info.sha,
            local_dir=str(dest),
            allow_patterns=[f for f in MODEL_FILES if f in present],
        )
    meta = dest / ".cache"
    if meta.is_dir():  # huggingface_hub's bookkeeping for local_dir downloads
        import shutil

        shutil.rmtree(meta, ignore_errors=True)
    return Pulled(repo, revision, str(info.sha))
