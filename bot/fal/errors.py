"""Typed errors for calls to fal.ai.

    UpstreamError (bot.errors)
    └── FalError               fal (or the way to it) failed; carries status, error_type, detail
        ├── FalValidationError     422 with a ``detail`` list: fal refused an input
        ├── FalContentPolicyError  422 ``content_policy_violation``: the safety checker said no
        ├── FalAuthError           401/403, or no key configured
        │   └── FalRequestListForbidden  the Platform API refused this key the request list
        ├── FalSubmitAmbiguous     a submit was sent but its answer was lost: fal may be running
        │                          (and billing) a job; ``request_id`` when a header named it
        ├── FalStreamError         the status stream broke, went quiet or ended before COMPLETED
        ├── FalResultGoneError     the result endpoint answered 404: expired or never there
        ├── FalTimeoutError        our timeout, or fal's ``request_timeout``/``startup_timeout``/504
        ├── FalUnavailableError    429, 5xx or connection errors, after the retries ran out
        ├── FalCancelledError      the request was cancelled (``client_cancelled``)
        └── FalDownloadError       an output could not be fetched (too big, gone, unreadable)
            ├── FalDownloadRefusedError  its URL (or a redirect) leads off fal's CDN hosts
            └── FalDownloadTimeoutError  the whole download outlived its deadline

Every message is redacted by the client before it reaches these classes: nothing here ever
holds the fal key. ``user_message`` is one sentence a Discord member can act on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.errors import UpstreamError

#: fal's flat ``error_type`` values and the HTTP status each one comes with
#: (docs.fal.ai request-errors; see shared/reference/fal-queue-api.md §3b).
ERROR_TYPE_STATUS: dict[str, int] = {
    "request_timeout": 504,
    "startup_timeout": 504,
    "runner_scheduling_failure": 503,
    "runner_connection_timeout": 503,
    "runner_disconnected": 503,
    "runner_connection_refused": 503,
    "runner_connection_error": 503,
    "runner_incomplete_response": 502,
    "runner_server_error": 500,
    "internal_error": 500,
    "client_disconnected": 499,
    "client_cancelled": 499,
    "bad_request": 400,
}

_TIMEOUT_TYPES = frozenset({"request_timeout", "startup_timeout"})
_CANCELLED_TYPES = frozenset({"client_cancelled", "client_disconnected"})
CONTENT_POLICY_TYPE = "content_policy_violation"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One entry of a 422 ``detail`` list."""

    loc: tuple[str | int, ...]
    msg: str
    type: str
    ctx: Mapping[str, Any] | None = None

    @property
    def field(self) -> str:
        """The dotted field name without the leading ``body``: ``image_size.width``."""
        parts = [str(p) for p in self.loc]
        if parts and parts[0] == "body":
            parts = parts[1:]
        return ".".join(parts) or "request"

    def __str__(self) -> str:
        return f"{self.field}: {self.msg} ({self.type})"


def parse_field_errors(detail: object) -> list[FieldError]:
    """The entries of a ``detail`` list; anything malformed is skipped."""
    if not isinstance(detail, list):
        return []
    found: list[FieldError] = []
    for item in detail:
        if not isinstance(item, dict):
            continue
        loc = item.get("loc")
        ctx = item.get("ctx")
        parts = loc if isinstance(loc, list) else []
        found.append(
            FieldError(
                loc=tuple(p for p in parts if isinstance(p, str | int)),
                msg=str(item.get("msg", "")),
                type=str(item.get("type", "")),
                ctx=ctx if isinstance(ctx, dict) else None,
            )
        )
    return found


class FalError(UpstreamError):
    """fal (or the network on the way to it) failed; the fields say how."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        detail: object = None,
        request_id: str | None = None,
        retryable: bool = False,
    ) -> None:
        self.message = message
        self.status = status
        self.error_type = error_type
        self.detail = detail
        self.request_id = request_id
        self.retryable = retryable
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = "fal"
        if self.status is not None:
            text += f" HTTP {self.status}"
        if self.error_type:
            text += f" [{self.error_type}]"
        text += f": {self.message}"
        if self.request_id:
            text += f" (request {self.request_id})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, error_type={self.error_type!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )

    @property
    def user_message(self) -> str:
        """One sentence for the member."""
        return "fal.ai could not make this edit; try again later."


class FalValidationError(FalError):
    """fal refused an input (422 with a ``detail`` list)."""

    @property
    def errors(self) -> list[FieldError]:
        return parse_field_errors(self.detail)

    @property
    def summary(self) -> str:
        """``image_size.width: ensure ... (value_error.number.not_le); ...``"""
        errors = self.errors
        if not errors:
            return self.message
        return "; ".join(str(e) for e in errors)

    @property
    def user_message(self) -> str:
        return f"fal.ai refused the request ({self.summary})."


class FalContentPolicyError(FalError):
    """fal's content checker flagged the prompt, an input or the output."""

    @property
    def user_message(self) -> str:
        return "The image was blocked by fal's content filter; try a different prompt or image."


class FalAuthError(FalError):
    """fal rejected the key (or there is none)."""

    @property
    def user_message(self) -> str:
        return "fal.ai rejected the bot's key; ask the bot owner to check it and the fal balance."


class FalRequestListForbidden(FalAuthError):
    """The Platform API refused this key the request list (401: invalid key, 403: the key's
    scope does not reach it; fal.ai/docs/platform-apis/authentication)."""

    @property
    def user_message(self) -> str:
        return "The bot's fal key cannot read fal's request list; ask the bot owner to check it."


class FalSubmitAmbiguous(FalError):
    """A submit reached (or may have reached) fal, but its answer was lost or was a 5xx.

    fal has no idempotency key, so fal may be running and billing a job the caller never
    heard of. Never resubmit blindly: look the request up in fal's request list
    (``FalClient.list_requests``), by ``request_id`` when a header gave one. ``cause`` names
    what went wrong (``read_timeout``, ``connection_lost``, ``http_5xx``, ``no_request_id``)."""

    def __init__(self, message: str, *, cause: str, **fields: Any) -> None:
        self.cause = cause
        super().__init__(message, **fields)

    @property
    def user_message(self) -> str:
        return "fal.ai did not confirm this edit; Flexbot is checking whether it started."


class FalStreamError(FalError):
    """The status stream broke, stayed silent past its idle timeout, or ended before
    ``COMPLETED``: poll the status instead (the request itself is unaffected)."""

    @property
    def user_message(self) -> str:
        return "Lost the live progress from fal.ai; still waiting for the edit."


class FalResultGoneError(FalError):
    """The result endpoint answered 404: fal keeps a result 1 hour (6 minutes at 10 KB or
    more; fal.ai/docs queue result), so it expired, or the request never existed. An
    expired result was still billed."""

    @property
    def user_message(self) -> str:
        return "fal.ai no longer has the finished image; try the edit again."


class FalTimeoutError(FalError):
    """No answer in time: our own timeout, or fal's request/startup timeout."""

    @property
    def user_message(self) -> str:
        return "fal.ai took too long to answer; try again in a little while."


class FalUnavailableError(FalError):
    """fal is overloaded or unreachable (429, 5xx, connection errors) after our retries."""

    @property
    def user_message(self) -> str:
        return "fal.ai is busy or unreachable right now; try again in a few minutes."


class FalCancelledError(FalError):
    """The request was cancelled before it produced an image."""

    @property
    def user_message(self) -> str:
        return "The edit was cancelled before it finished."


class FalDownloadError(FalError):
    """An output image could not be fetched: too big, expired or unreadable."""

    @property
    def user_message(self) -> str:
        return "The finished image could not be downloaded from fal.ai; try again."


class FalDownloadRefusedError(FalDownloadError):
    """An output URL, or a redirect on the way, is not on an allowed fal host over https.

    Nothing was fetched from the refused address. The message names the host, never the path
    or query (fal's signed URLs carry their signature there)."""

    @property
    def user_message(self) -> str:
        return (
            "fal.ai offered the finished image from an address Flexbot does not download from; "
            "ask the bot owner to check fal_result_hosts."
        )


class FalDownloadTimeoutError(FalDownloadError):
    """The download, redirects and retries included, did not finish within its deadline."""

    @property
    def user_message(self) -> str:
        return "The finished image took too long to download from fal.ai; try again."


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _retryable_hint(headers: Mapping[str, str]) -> bool | None:
    """fal's own retry hint; one docs version spells it ``X-Fal-Needs-Retry``."""
    for name in ("x-fal-retryable", "x-fal-needs-retry"):
        value = _header(headers, name)
        if value is not None:
            return value.strip().lower() in {"true", "1", "yes"}
    return None


def _detail_and_type(body: object, headers: Mapping[str, str]) -> tuple[object, str | None]:
    """fal's ``detail`` and ``error_type`` from whichever body shape it sent."""
    detail: object = None
    error_type: str | None = None
    if isinstance(body, dict):
        detail = body.get("detail")
        raw_type = body.get("error_type")
        error_type = raw_type if isinstance(raw_type, str) else None
        nested = body.get("error")
        if detail is None and isinstance(nested, dict):
            # The Platform API's shape (api.fal.ai/v1), as seen in the wild (not on a fal page):
            # {"error": {"type": "authorization_error", "message": "Invalid API key ..."}}
            text = nested.get("message")
            detail = text if isinstance(text, str) else None
            nested_type = nested.get("type")
            error_type = error_type or (nested_type if isinstance(nested_type, str) else None)
    return detail, error_type or _header(headers, "x-fal-error-type")


def _message(status: int, body: object, detail: object, field_errors: list[FieldError]) -> str:
    """One line saying what went wrong, from the most specific thing fal sent."""
    if field_errors:
        return "; ".join(str(e) for e in field_errors)
    if isinstance(detail, str):
        return detail
    if isinstance(body, str) and body.strip():
        return body.strip()[:300]
    if body is not None and not isinstance(body, str):
        return json.dumps(body)[:300]
    return f"HTTP {status}"


def _is_retryable(status: int, headers: Mapping[str, str]) -> bool:
    """fal's hint when it gave one; else transient codes, unless the caller's own timeout hit."""
    hint = _retryable_hint(headers)
    if hint is not None:
        return hint
    transient = status in (408, 429) or status >= 500
    timeout_by_user = _header(headers, "x-fal-request-timeout-type") is not None
    return transient and not timeout_by_user


def _error_class(
    status: int, error_type: str | None, field_errors: list[FieldError]
) -> type[FalError]:
    """The most specific class for this answer; the order of the checks is the precedence."""
    flagged = any(e.type == CONTENT_POLICY_TYPE for e in field_errors)
    if flagged or error_type == CONTENT_POLICY_TYPE:
        return FalContentPolicyError
    if status in (401, 403):
        return FalAuthError
    if error_type in _TIMEOUT_TYPES or status in (408, 504):
        return FalTimeoutError
    if error_type in _CANCELLED_TYPES or status == 499:
        return FalCancelledError
    if status == 422:
        return FalValidationError
    if status == 429 or status >= 500:
        return FalUnavailableError
    return FalError


def error_from_response(
    status: int,
    body: object,
    headers: Mapping[str, str],
    *,
    request_id: str | None = None,
) -> FalError:
    """The typed error for a non-2xx answer; ``body`` is the parsed JSON or the raw text.

    Both shapes fal uses are understood: ``{"detail": [{loc, msg, type, url}, ...]}`` and the
    flat ``{"detail": "...", "error_type": "..."}`` (plus the ``X-Fal-Error-Type`` header).
    """
    detail, error_type = _detail_and_type(body, headers)
    field_errors = parse_field_errors(detail)
    if field_errors:
        error_type = error_type or field_errors[0].type
    cls = _error_class(status, error_type, field_errors)
    return cls(
        _message(status, body, detail, field_errors),
        status=status,
        error_type=error_type,
        detail=detail,
        request_id=request_id,
        retryable=_is_retryable(status, headers),
    )


def error_from_status(
    error: str, error_type: str | None, *, request_id: str | None = None
) -> FalError:
    """The typed error for a ``COMPLETED`` status that carries ``error``/``error_type``."""
    status = ERROR_TYPE_STATUS.get(error_type or "", 500)
    body = {"detail": error, "error_type": error_type} if error_type else {"detail": error}
    return error_from_response(status, body, {}, request_id=request_id)
