"""The AsyncAPI 3 document of synthia.v1, generated from the message models.

``synthia-rt asyncapi > docs/asyncapi.json``; tests/test_asyncapi.py fails when the committed
document and the models drift apart.

Every command is its own ``send`` operation whose ``reply`` is the op's success reply (the model
the dispatcher builds, ``protocol.REPLIES``) or the error reply. Server events come in two kinds,
told apart by ``x-delivery``: channel events carry the broker's ``channel``/``offset``/``epoch``
sequence header; direct events go to one socket outside any sequence and have no ``epoch`` (an
``offset`` there, as in ``upload.progress``, is a byte offset).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from synthia_rt.errors import ERROR_DOCS, CloseCode
from synthia_rt.observability.snapshot import SnapshotFields
from synthia_rt.realtime import protocol as p


class _Event(BaseModel):
    """The header the broker adds to every event published on a channel."""

    model_config = ConfigDict(extra="allow")
    channel: str
    offset: int = Field(description="position in the channel: +1 per event within an epoch")
    epoch: str


class Notification(_Event):
    event: Literal["notification"]
    id: str
    kind: str
    title: str
    body: str
    created_at: str


# The analysis events are the models the analysis side publishes, with the broker's header.
class AnalysisProgress(p.AnalysisProgress, _Event):
    pass


class AnalysisPartial(p.AnalysisPartial, _Event):
    pass


class AnalysisResult(p.AnalysisResult, _Event):
    pass


class AnalysisError(p.AnalysisError, _Event):
    pass


class QuizEstimate(p.QuizEstimate, _Event):
    pass


class MetricsSnapshot(SnapshotFields, _Event):
    """metrics.snapshot on admin:metrics, once per METRICS_INTERVAL from every node."""

    event: Literal["metrics.snapshot"]


# Direct events built from a channel event's model (``protocol.direct_event``): no sequence header.
class AnalysisResultDirect(p.AnalysisResult):
    """analysis.result re-sent to one socket from the database on subscribe (no offset/epoch)."""

    model_config = ConfigDict(extra="allow")
    channel: str = Field(description="the analysis channel the result ended")


class AnalysisErrorDirect(p.AnalysisError):
    """analysis.error sent to one socket: a refused upload chunk, or the final error re-sent on subscribe.

    A refused chunk has no ``channel`` (``analysis_id`` is null when the frame was refused unread
    or its header could not be read); the re-sent final event names its ``channel``. Neither has
    ``offset``/``epoch``."""

    model_config = ConfigDict(extra="allow", json_schema_extra=p.optional_off_the_wire)
    channel: str | SkipJsonSchema[None] = Field(
        None, description="set on a final event re-sent on subscribe"
    )


CHANNEL_EVENTS: tuple[type[BaseModel], ...] = (
    Notification,
    AnalysisProgress,
    AnalysisPartial,
    AnalysisResult,
    AnalysisError,
    QuizEstimate,
    MetricsSnapshot,
)
DIRECT_EVENTS: tuple[type[BaseModel], ...] = (
    p.SessionReady,
    p.SessionExpiring,
    p.ChannelReset,
    p.UploadProgress,
    AnalysisResultDirect,
    AnalysisErrorDirect,
)


class ErrorBody(BaseModel):
    code: str
    message: str
    temporary: bool
    retry_after: float | None = None
    field: str | None = None


class ErrorReply(BaseModel):
    """The reply to a command that failed (or to a frame that could not be read: ``id`` null)."""

    model_config = ConfigDict(extra="allow")
    id: int | None
    ok: Literal[False]
    error: ErrorBody


def _summary(model: type[BaseModel]) -> str:
    return (model.__doc__ or model.__name__).strip().splitlines()[0]


def _message(name: str, model: type[BaseModel], summary: str) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    if "event" in schema["properties"] and "event" not in schema.get("required", []):
        schema.setdefault("required", []).append("event")  # it has a default, and is always sent
    schema.pop("$defs", None)
    return {"name": name, "summary": summary, "contentType": "application/json", "payload": schema}


def _key(op: str) -> str:
    return op.replace(".", "_")


def build() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    server_models: tuple[type[BaseModel], ...] = (
        *p.REPLIES.values(),
        ErrorReply,
        *DIRECT_EVENTS,
        *CHANNEL_EVENTS,
    )
    for model in (*p.COMMANDS.values(), *server_models):
        full = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(full.pop("$defs", {}))
    operations: dict[str, Any] = {}
    for op, cmd in p.COMMANDS.items():
        command = _message(op, cmd, (cmd.__doc__ or f"command {op}").strip())
        command["payload"]["properties"]["op"] = {"const": op}
        command["payload"].setdefault("required", []).append("op")
        messages[f"cmd_{_key(op)}"] = command
        reply_model = p.REPLIES[op]
        reply = _message(
            op,
            reply_model,
            _summary(reply_model) if reply_model.__doc__ else f"success reply to {op}",
        )
        payload = reply["payload"]
        payload["properties"] = {
            "id": {"type": "integer", "description": "the command's id"},
            "ok": {"const": True},
            **payload["properties"],
        }
        payload["required"] = ["id", "ok", *payload.get("required", [])]
        messages[f"reply_{_key(op)}"] = reply
    messages["ErrorReply"] = _message("ErrorReply", ErrorReply, _summary(ErrorReply))
    for model in DIRECT_EVENTS:
        messages[model.__name__] = {
            **_message(model.__name__, model, _summary(model)),
            "x-delivery": "direct",
        }
    for model in CHANNEL_EVENTS:
        messages[model.__name__] = {
            **_message(model.__name__, model, _summary(model)),
            "x-delivery": "channel",
        }
    messages["UploadChunk"] = {
        "name": "upload chunk",
        "contentType": "application/octet-stream",
        "summary": "[16 bytes analysis UUID][8 bytes offset, unsigned big-endian][payload]",
        "payload": {"type": "string", "format": "binary"},
    }

    def refs(*names: str) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/ws/messages/{m}"} for m in names]

    ws = {"$ref": "#/channels/ws"}
    for op in p.COMMANDS:
        operations[f"send_{_key(op)}"] = {
            "action": "send",
            "channel": ws,
            "summary": f"command {op}",
            "messages": refs(f"cmd_{_key(op)}"),
            "reply": {"channel": ws, "messages": refs(f"reply_{_key(op)}", "ErrorReply")},
        }
    operations["sendUploadChunk"] = {
        "action": "send",
        "channel": ws,
        "summary": "a binary upload chunk; answered by a direct upload.progress or analysis.error",
        "messages": refs("UploadChunk"),
        "reply": {"channel": ws, "messages": refs("UploadProgress", "AnalysisErrorDirect")},
    }
    operations["receiveServerFrame"] = {
        "action": "receive",
        "channel": ws,
        "summary": "unsolicited events: direct (to this socket) and channel (sequenced) events",
        "messages": refs(*(m.__name__ for m in (*DIRECT_EVENTS, *CHANNEL_EVENTS))),
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "synthia.v1",
            "version": "1.0.0",
            "description": "Synthia Style real-time protocol. See docs/protocol.md for the prose.",
        },
        "servers": {
            "node": {
                "host": "localhost:8000",
                "pathname": "/ws",
                "protocol": "ws",
                "description": "Subprotocol synthia.v1; token as 'bearer.<token>' subprotocol entry or Authorization header.",
            }
        },
        "channels": {
            "ws": {
                "address": "/ws",
                "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in messages},
            }
        },
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
            "x-error-codes": {
                str(code): {"http": status, "meaning": text}
                for code, (status, text) in ERROR_DOCS.items()
            },
            "x-close-codes": {str(int(code)): code.name for code in CloseCode},
        },
    }
