"""Structured logging: one JSON object per line, each carrying the request/connection id.

``request_id`` is a contextvar set by the request-id middleware (HTTP requests and WebSocket
connections alike), so every line logged while serving one of them can be joined up. A
redaction pass runs on every record: anything shaped like a bearer token, a JWT, or a
``password``/``token``/``secret``/``authorization`` field is masked before it is written.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

import orjson

from synthia_rt.settings import Settings

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

REDACTED = "[redacted]"
_SENSITIVE_KEY = re.compile(r"pass(word)?|token|secret|authorization|api[_-]?key|cookie", re.I)
_SECRET_PATTERNS = (
    re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*"),  # JWT (header always starts with '{"' → eyJ)
    re.compile(r"(?i)(bearer\s+)[\w.~+/=-]+"),
    re.compile(
        r"(?i)((?:pass(?:word)?|token|secret|api[_-]?key|authorization)[\"']?\s*[=:]\s*[\"']?)[^\s,;&\"']+"
    ),
    re.compile(r"\$argon2[\w$=,.+/-]+"),
)
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "request_id",  # written explicitly
    "color_message",  # uvicorn's ANSI-coloured duplicate of msg
}


def redact_text(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text


def redact(value: Any, key: str = "") -> Any:
    if key and _SENSITIVE_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value))


class RequestIdFilter(logging.Filter):
    """Stamp the current request id on the record when it is emitted (formatting may happen
    later, e.g. behind a queue, where the contextvar no longer holds it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        return True


def _request_id(record: logging.LogRecord) -> str | None:
    value = getattr(record, "request_id", None)
    return str(value) if value is not None else request_id.get()


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: redact(v, k) for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact_text(record.getMessage()),
            "request_id": _request_id(record),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = redact_text("".join(traceback.format_exception(*record.exc_info)))
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines for development, with the same redaction and request id."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        extras = _extras(record)
        tail = " " + " ".join(f"{k}={v}" for k, v in extras.items()) if extras else ""
        line = f"{stamp} {record.levelname:<7} [{_request_id(record) or '-'}] {record.name}: {redact_text(record.getMessage())}{tail}"
        if record.exc_info:
            line += "\n" + redact_text("".join(traceback.format_exception(*record.exc_info)))
        return line


def configure_logging(settings: Settings) -> None:
    """Route the root logger (and uvicorn's) through one redacting handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_json else TextFormatter())
    handler.addFilter(RequestIdFilter())
    handler.setLevel(settings.log_level.upper())  # also caps loggers that set their own level
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    # Our middleware logs each request with its id; uvicorn's access line would duplicate it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
