"""What the broker stores and sends: packed payloads, socket frames and pub/sub messages.

A payload is JSON-encoded once, at publish, into a *packed payload*: ``<split>:<body>`` where
``body`` is the JSON object without ``channel``/``offset``/``epoch``, ``"event"`` first, and
``split`` is the byte index in ``body`` just after the event name.  A node turns it into the
socket frame ``{"event":…,"channel":…,"offset":…,"epoch":…,…rest}`` by splicing the header in at
``split`` with byte slicing: no JSON parsing per event, and the frame is then written as-is to
every local socket.

Redis pub/sub messages (built by the publish script / :func:`pack_signal`):

    e<offset>:<epoch>:<packed payload>      an event
    s<json {"origin": node id, "data": {...}}>   a signal (no offset, no history)
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import orjson

RESERVED = frozenset({"event", "channel", "offset", "epoch"})
EVENT_MARK = b"e"[0]
SIGNAL_MARK = b"s"[0]
_EVENT_HEAD = b'{"event":'


def new_epoch() -> str:
    return secrets.token_hex(8)


def pack_payload(payload: Mapping[str, Any]) -> bytes:
    """Encode ``payload`` (which must name its ``event``); broker-owned keys are dropped."""
    name = payload.get("event")
    if not isinstance(name, str) or not name:
        raise ValueError("a broker payload needs a non-empty string 'event'")
    head = _EVENT_HEAD + orjson.dumps(name)
    rest = orjson.dumps({k: v for k, v in payload.items() if k not in RESERVED})
    body = head + (b"}" if rest == b"{}" else b"," + rest[1:])
    return b"%d:%b" % (len(head), body)


def build_frame(buf: bytes, start: int, channel_json: bytes, offset: int, epoch: str) -> bytes:
    """The socket frame for the packed payload found at ``buf[start:]``."""
    colon = buf.index(b":", start)
    body = colon + 1
    split = body + int(buf[start:colon])
    if split >= len(buf) or not buf.startswith(_EVENT_HEAD, body):
        raise ValueError("malformed packed payload")
    view = memoryview(buf)
    return b"".join(
        (
            view[body:split],
            b',"channel":',
            channel_json,
            b',"offset":%d,"epoch":' % offset,
            orjson.dumps(epoch),
            view[split:],
        )
    )


def event_name(frame: bytes) -> str:
    """The ``event`` of a socket frame made by :func:`build_frame` (it comes first, before
    ``,"channel":``, which cannot occur inside a JSON string)."""
    if not frame.startswith(_EVENT_HEAD):
        raise ValueError("malformed frame")
    name = orjson.loads(frame[len(_EVENT_HEAD) : frame.index(b',"channel":')])
    if not isinstance(name, str):
        raise ValueError("malformed frame")
    return name


def parse_event_message(data: bytes) -> tuple[int, str, int]:
    """``(offset, epoch, start of the packed payload)`` of an ``e…`` pub/sub message."""
    first = data.index(b":", 1)
    second = data.index(b":", first + 1)
    return int(data[1:first]), data[first + 1 : second].decode("ascii"), second + 1


def pack_signal(origin: str, data: Mapping[str, Any]) -> bytes:
    return b"s" + orjson.dumps({"origin": origin, "data": dict(data)})


def unpack_signal(data: bytes) -> tuple[str, dict[str, Any]]:
    decoded = orjson.loads(data[1:])
    if not isinstance(decoded, dict) or not isinstance(decoded.get("data"), dict):
        raise ValueError("malformed signal")
    return str(decoded.get("origin", "")), decoded["data"]
