"""Text from files and URLs made safe to show: no terminal control sequences, no markup, no secrets.

* :func:`safe_text` — anything read from a file (a run name, a summary's fields, an error recorded
  by a run, a model card's metadata) before it reaches a terminal: control characters (ESC, CR,
  newlines, C1 codes, bidirectional overrides) are replaced by visible ``\\xNN`` / ``\\uNNNN``
  escapes, so a name cannot clear or recolour the screen or pretend to be another line.
* :func:`safe_markup` — the same, escaped for rich markup (``[red]`` in a name stays literal).
* :func:`redact_url` / :func:`redact_text` — credentials in URLs (``http://user:TOKEN@host``, and
  the values of query parameters such as ``?token=…``) become ``***`` wherever a URL is printed,
  logged or recorded.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"

# C0 and C1 controls, DEL, and the Unicode format characters that reorder or hide text.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(value: Any) -> str:
    """``value`` as a string with every control / invisible formatting character shown as an escape."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return _CONTROL.sub(_escape_char, text)


def safe_markup(value: Any) -> str:
    """:func:`safe_text`, then escaped for rich markup (for table cells and ``console.print``)."""
    from rich.markup import escape

    return escape(safe_text(value))


def redact_url(url: str) -> str:
    """``url`` without credentials: user-info and every query value replaced by ``***``.

    ``http://user:TOKEN@host:8080/x?token=abc&page=2`` -> ``http://***@host:8080/x?token=***&page=***``.
    Text that does not parse as a URL is returned as it is.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, REDACTED) for k, _ in pairs], safe="*") if pairs else REDACTED
        fragment = REDACTED if parts.fragment else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
    except ValueError:
        return url


def redact_text(text: Any, secrets: tuple[str | None, ...] = ()) -> str:
    """``text`` with every URL in it passed through :func:`redact_url` and each of ``secrets`` replaced."""
    out = _URL.sub(lambda m: redact_url(m.group()), str(text))
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, REDACTED)
    return out
