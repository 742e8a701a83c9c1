"""Errors of the model zoo (one-line messages; the CLI prints them and exits with ``exit_code``)."""

from __future__ import annotations

from idmm_tui.errors import CheckpointError, IdmmError


class HubError(IdmmError):
    """The Hub refused or failed a request: bad token, missing repo / revision / file, server error."""

    exit_code = 5


class HubUnreachableError(HubError):
    """No TCP connection to the Hub endpoint (answered at once, not after the client's retries)."""

    exit_code = 6


class HubTimeoutError(HubUnreachableError):
    """The Hub accepted the connection but did not answer within the request timeout (exit 6)."""


class IntegrityError(CheckpointError):
    """Downloaded weights do not match the sha256 the catalogue (or the model's config) promises."""
