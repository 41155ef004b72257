"""Error codes shared by REST and the socket, and close codes with their reconnect meaning.

Errors are data: every refusal the service makes is one :class:`ErrorCode`, documented in
``docs/protocol.md``.  Raise :class:`AppError` anywhere below the transport; the REST layer and
the socket session turn it into ``{"error": {...}}`` / an error reply.  Nothing else (no
exception text, no stack trace) ever reaches a client.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synthia_rt.i18n import N_, gettext, ngettext


class ErrorCode(enum.StrEnum):
    # protocol
    BAD_REQUEST = "bad_request"
    UNKNOWN_OP = "unknown_op"
    # auth
    UNAUTHORIZED = "unauthorized"
    INVALID_CREDENTIALS = "invalid_credentials"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_INVALID = "token_invalid"
    TOKEN_REUSED = "token_reused"
    FORBIDDEN = "forbidden"
    ACCOUNT_BLOCKED = "account_blocked"
    # resources
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    VALIDATION_ERROR = "validation_error"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    # uploads and analyses
    BAD_CHUNK = "bad_chunk"
    TOO_LARGE = "too_large"
    HASH_MISMATCH = "hash_mismatch"
    INVALID_IMAGE = "invalid_image"
    NO_FACE_DETECTED = "no_face_detected"
    MULTIPLE_FACES = "multiple_faces"
    POOR_QUALITY = "poor_quality"
    BLOCKED = "blocked"
    MODEL_UNAVAILABLE = "model_unavailable"
    MODEL_ERROR = "model_error"
    CANCELLED = "cancelled"
    # plans and billing
    QUOTA_EXCEEDED = "quota_exceeded"
    BILLING_DISABLED = "billing_disabled"
    PUSH_DISABLED = "push_disabled"
    # infrastructure
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


# Meaning and HTTP status of each code; docs/protocol.md is checked against this table.
ERROR_DOCS: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.BAD_REQUEST: (
        400,
        N_(
            "The frame or body is malformed: not JSON, not an object, or a field has the wrong type."
        ),
    ),
    ErrorCode.UNKNOWN_OP: (400, N_("The command's `op` is not one this protocol version knows.")),
    ErrorCode.UNAUTHORIZED: (401, N_("No valid access token was presented.")),
    ErrorCode.INVALID_CREDENTIALS: (
        401,
        N_("Email or password is wrong (the two are never told apart)."),
    ),
    ErrorCode.TOKEN_EXPIRED: (401, N_("The token's `exp` has passed; refresh it.")),
    ErrorCode.TOKEN_INVALID: (
        401,
        N_("The token is forged, revoked, of the wrong type, or for another user."),
    ),
    ErrorCode.TOKEN_REUSED: (
        401,
        N_("A rotated refresh token was presented again; its whole family is revoked."),
    ),
    ErrorCode.FORBIDDEN: (403, N_("The caller may not read this channel or resource.")),
    ErrorCode.ACCOUNT_BLOCKED: (403, N_("The account is blocked by an administrator.")),
    ErrorCode.NOT_FOUND: (404, N_("No such resource visible to the caller.")),
    ErrorCode.METHOD_NOT_ALLOWED: (
        405,
        N_("The path exists but does not accept this HTTP method."),
    ),
    ErrorCode.CONFLICT: (409, N_("The resource already exists (e.g. the email is registered).")),
    ErrorCode.VALIDATION_ERROR: (422, N_("A field is missing or invalid; `field` names it.")),
    ErrorCode.RATE_LIMITED: (429, N_("Too many requests; wait `retry_after` seconds.")),
    ErrorCode.TOO_MANY_CONNECTIONS: (
        429,
        N_("The user already holds the maximum number of sockets."),
    ),
    ErrorCode.BAD_CHUNK: (
        400,
        N_(
            "An upload chunk at the wrong offset, past `size`, or for an unknown or foreign analysis; discarded."
        ),
    ),
    ErrorCode.TOO_LARGE: (
        413,
        N_(
            "The declared or actual size exceeds `max_image_bytes`, or decoding the image would need more than `max_decode_bytes`."
        ),
    ),
    ErrorCode.HASH_MISMATCH: (400, N_("The received bytes do not hash to the declared `sha256`.")),
    ErrorCode.INVALID_IMAGE: (
        400,
        N_("Not a JPEG, PNG or WEBP, truncated, or above the pixel cap (decompression bomb)."),
    ),
    ErrorCode.NO_FACE_DETECTED: (422, N_("No face was found in the image.")),
    ErrorCode.MULTIPLE_FACES: (
        422,
        N_("More than one face is in the image; send a photo of one person."),
    ),
    ErrorCode.POOR_QUALITY: (
        422,
        N_(
            "The face is too small, too dark or too blurred to judge; the message says how to retake the photo."
        ),
    ),
    ErrorCode.BLOCKED: (422, N_("The model refused the input on safety grounds.")),
    ErrorCode.MODEL_UNAVAILABLE: (
        503,
        N_("The model could not be reached after retries; try again later."),
    ),
    ErrorCode.MODEL_ERROR: (
        502,
        N_("The model answered with something that is not a valid result."),
    ),
    ErrorCode.CANCELLED: (409, N_("The analysis was cancelled by its owner.")),
    ErrorCode.QUOTA_EXCEEDED: (
        402,
        N_(
            "The free plan's model-backed analyses for this calendar month (UTC) are used up; `retry_after` seconds until they reset (the message gives `resets_at`). Upgrade to premium for more."
        ),
    ),
    ErrorCode.BILLING_DISABLED: (
        503,
        N_("Billing is not configured on this server (no Stripe key)."),
    ),
    ErrorCode.PUSH_DISABLED: (503, N_("Web Push is not configured on this server (no VAPID key).")),
    ErrorCode.UNAVAILABLE: (
        503,
        N_("A backing service (database, Redis) is unreachable; temporary."),
    ),
    ErrorCode.INTERNAL: (500, N_("An unexpected error; it was logged with the request id.")),
}

UNAVAILABLE_RETRY_AFTER = 1.0  # seconds; a backing service blinked (Redis reconnects within it)

TEMPORARY = {
    ErrorCode.RATE_LIMITED,
    ErrorCode.TOO_MANY_CONNECTIONS,
    ErrorCode.MODEL_UNAVAILABLE,
    ErrorCode.UNAVAILABLE,
    ErrorCode.INTERNAL,
}


@dataclass
class AppError(Exception):
    """A refusal. ``message`` is the English msgid; one with ``{name}`` placeholders takes its
    values from ``params`` and is formatted *after* translation, so the catalog holds one entry
    per sentence, not one per number.  ``plural`` (see :func:`counted`) is the msgid_plural,
    chosen by ``params["n"]``."""

    code: ErrorCode
    message: str = ""
    retry_after: float | None = None
    field: str | None = None
    temporary: bool | None = None
    params: Mapping[str, object] | None = None
    plural: str | None = None

    def __post_init__(self) -> None:
        if not self.message:
            self.message = ERROR_DOCS[self.code][1]
        if self.temporary is None:
            self.temporary = self.code in TEMPORARY
        if self.retry_after is None and self.code is ErrorCode.UNAVAILABLE:
            self.retry_after = UNAVAILABLE_RETRY_AFTER  # waiting is the remedy: say how long

    def __str__(self) -> str:
        return f"{self.code}: {self.text()}"

    @property
    def status(self) -> int:
        return ERROR_DOCS[self.code][0]

    def text(self, locale: str | None = None) -> str:
        """The message in ``locale`` (None: the English source), its placeholders filled.
        A translation whose placeholders do not match falls back to the English sentence, and
        params that do not match it leave it unfilled: a message never raises."""
        english = self.message
        if self.plural is not None:
            try:
                n = int(str((self.params or {}).get("n", 1)))
            except ValueError:  # a stored error edited by hand: say it, do not fail on it
                n = 2
            english = self.message if n == 1 else self.plural
            shown = ngettext(self.message, self.plural, n, locale) if locale else english
        else:
            shown = gettext(self.message, locale) if locale else english
        if not self.params:
            return shown
        for text in (shown, english):
            try:
                return text.format_map(self.params)
            except (LookupError, ValueError, AttributeError, TypeError):
                continue
        return english

    def source(self) -> dict[str, Any]:
        """What a reader needs to say this error in their own language, as JSON-able data: the
        code, the msgid (and plural) and the params, not a sentence already filled in English.
        Stored where an error outlives the request (an analysis row, a told ending)."""
        return {
            "code": str(self.code),
            "message": self.message,
            "plural": self.plural,
            "params": {k: _plain(v) for k, v in (self.params or {}).items()} or None,
        }

    @classmethod
    def restore(
        cls, source: Mapping[str, Any] | None, code: str | None = None, message: str | None = None
    ) -> AppError:
        """The error :meth:`source` described (a stored ``code`` and English sentence without
        a source — rows written before there was one — come back as that sentence; its
        translation is found when it has no numbers filled in). Never raises: an unknown
        code is ``internal``."""
        source = source if isinstance(source, Mapping) else {}
        raw = source.get("code", code)
        known = isinstance(raw, str) and raw in ErrorCode._value2member_map_
        params, plural = source.get("params"), source.get("plural")
        return cls(
            ErrorCode(raw) if known else ErrorCode.INTERNAL,
            str(source.get("message") or message or ""),
            params=params if isinstance(params, dict) else None,
            plural=plural if isinstance(plural, str) else None,
        )

    def to_dict(self, locale: str | None = None) -> dict[str, object]:
        """The client's view; with ``locale`` the message is translated (the English message
        is the msgid, its ``params`` filled in after translation)."""
        body: dict[str, object] = {
            "code": str(self.code),
            "message": self.text(locale),
            "temporary": bool(self.temporary),
        }
        if self.retry_after is not None:
            body["retry_after"] = round(self.retry_after, 3)
        if self.field is not None:
            body["field"] = self.field
        return body


def counted(
    code: ErrorCode,
    singular: str,
    plural: str,
    n: int,
    *,
    params: Mapping[str, object] | None = None,
    retry_after: float | None = None,
    field: str | None = None,
) -> AppError:
    """An :class:`AppError` whose sentence depends on the count ``n`` (``{n}`` in it): both
    forms are extracted (keyword ``counted:2,3``) and ``ngettext`` picks the locale's form."""
    return AppError(
        code,
        singular,
        retry_after=retry_after,
        field=field,
        params={**(params or {}), "n": n},
        plural=plural,
    )


# Generic messages for a field pydantic refused (its own English detail is not shown).
FIELD_MESSAGES = {
    "type": N_("The field {field} has the wrong type."),
    "missing": N_("The field {field} is required."),
    "extra": N_("The field {field} is not allowed."),
    "invalid": N_("The field {field} has an invalid value."),
}


def field_error(code: ErrorCode, kind: str, field: str) -> AppError:
    """The error for pydantic's ``kind`` of problem on ``field`` (translated; ``field`` kept)."""
    if kind.endswith("_type"):
        key = "type"
    elif kind in ("missing", "extra_forbidden"):
        key = "missing" if kind == "missing" else "extra"
    else:
        key = "invalid"
    return AppError(code, FIELD_MESSAGES[key], field=field, params={"field": field})


@dataclass
class TokenRevoked(AppError):
    """A well-formed, correctly signed token that was revoked: its ``jti`` is on the denylist,
    it was issued before the user's cutoff (password change, block) or the user is deleted.

    Still ``token_invalid`` to every REST caller (the answer does not change there); the socket
    handshake tells it apart from a forged token and closes with 4010 instead of 4003.
    """

    code: ErrorCode = ErrorCode.TOKEN_INVALID


class CloseCode(enum.IntEnum):
    """WebSocket close codes; ``RECONNECT`` says whether a client should come back."""

    NORMAL = 1000
    GOING_AWAY = 1001
    INVALID_PAYLOAD = 1007
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    TOKEN_EXPIRED = 4001
    UNAUTHORIZED = 4003
    SLOW_CONSUMER = 4008
    RATE_LIMITED = 4009
    SESSION_REVOKED = 4010
    TOO_MANY_CONNECTIONS = 4029


CLOSE_DOCS: dict[CloseCode, tuple[bool, str]] = {
    CloseCode.NORMAL: (False, "Closed normally (the client asked, or its session ended)."),
    CloseCode.GOING_AWAY: (
        True,
        "The server is shutting down or the socket was idle; reconnect (to any node).",
    ),
    CloseCode.INVALID_PAYLOAD: (
        False,
        "A text frame was not valid UTF-8 (RFC 6455 requires closing); fix the client.",
    ),
    CloseCode.MESSAGE_TOO_BIG: (
        False,
        "A frame exceeded the size limits announced in `session.ready.limits`; fix the client.",
    ),
    CloseCode.INTERNAL_ERROR: (True, "Unexpected server error; reconnect with backoff."),
    CloseCode.TRY_AGAIN_LATER: (
        True,
        "The node is overloaded or a backing service is down; reconnect with backoff.",
    ),
    CloseCode.TOKEN_EXPIRED: (
        True,
        "The access token expired (at the handshake or unrefreshed later); reconnect with a fresh token.",
    ),
    CloseCode.UNAUTHORIZED: (
        False,
        "Handshake token missing, malformed, forged or not an access token; do not retry with the same token.",
    ),
    CloseCode.SLOW_CONSUMER: (
        True,
        "The outbound queue overflowed; reconnect and resubscribe with `since`.",
    ),
    CloseCode.RATE_LIMITED: (True, "Sustained command abuse; reconnect only after a backoff."),
    CloseCode.SESSION_REVOKED: (
        False,
        "Logout, password change, deletion or block; do not reconnect with this token.",
    ),
    CloseCode.TOO_MANY_CONNECTIONS: (
        True,
        "The user already holds the maximum number of sockets; reconnect after a backoff.",
    ),
}


def _plain(value: object) -> object:
    """A param as JSON keeps it (numbers stay numbers for plural rules and formatting); what
    JSON cannot hold exactly (other types, NaN, integers past 64 bits, lone surrogates) goes
    as text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "replace").decode()
