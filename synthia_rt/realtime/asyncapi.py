"""The AsyncAPI 3 document of synthia.v1, generated from the message models.

``synthia-rt asyncapi > docs/asyncapi.json``; tests/test_asyncapi.py fails when the committed
document and the models drift apart.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from synthia_rt.errors import ERROR_DOCS, CloseCode
from synthia_rt.observability.snapshot import SnapshotFields
from synthia_rt.realtime import protocol as p


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow")
    channel: str
    offset: int
    epoch: str


class Notification(_Event):
    event: Literal["notification"]
    id: str
    kind: str
    title: str
    body: str
    created_at: str


class UploadProgress(_Event):
    event: Literal["upload.progress"]
    analysis_id: str
    offset: int
    size: int


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


class ErrorBody(BaseModel):
    code: str
    message: str
    temporary: bool
    retry_after: float | None = None
    field: str | None = None


class Reply(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int | None
    ok: bool
    error: ErrorBody | None = None


SERVER_MESSAGES: tuple[type[BaseModel], ...] = (
    p.SessionReady,
    p.SessionExpiring,
    p.ChannelReset,
    Reply,
    Notification,
    UploadProgress,
    AnalysisProgress,
    AnalysisPartial,
    AnalysisResult,
    AnalysisError,
    QuizEstimate,
    MetricsSnapshot,
)


def _message(name: str, model: type[BaseModel], summary: str) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    if "event" in schema["properties"] and "event" not in schema.get("required", []):
        schema.setdefault("required", []).append("event")  # it has a default, and is always sent
    schema.pop("$defs", None)
    return {"name": name, "summary": summary, "contentType": "application/json", "payload": schema}


def build() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for model in (*p.COMMANDS.values(), *SERVER_MESSAGES):
        full = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(full.pop("$defs", {}))
    for op, cmd in p.COMMANDS.items():
        payload = _message(op, cmd, (cmd.__doc__ or f"command {op}").strip())
        payload["payload"]["properties"]["op"] = {"const": op}
        payload["payload"].setdefault("required", []).append("op")
        messages[f"cmd_{op.replace('.', '_')}"] = payload
    for model in SERVER_MESSAGES:
        name = model.__name__
        messages[name] = _message(name, model, (model.__doc__ or name).strip().splitlines()[0])
    messages["UploadChunk"] = {
        "name": "upload chunk",
        "contentType": "application/octet-stream",
        "summary": "[16 bytes analysis UUID][8 bytes offset, unsigned big-endian][payload]",
        "payload": {"type": "string", "format": "binary"},
    }
    client_msgs = [m for m in messages if m.startswith("cmd_")] + ["UploadChunk"]
    server_msgs = [m.__name__ for m in SERVER_MESSAGES]
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
        "operations": {
            "sendCommand": {
                "action": "send",
                "channel": {"$ref": "#/channels/ws"},
                "messages": [{"$ref": f"#/channels/ws/messages/{m}"} for m in client_msgs],
            },
            "receiveServerFrame": {
                "action": "receive",
                "channel": {"$ref": "#/channels/ws"},
                "messages": [{"$ref": f"#/channels/ws/messages/{m}"} for m in server_msgs],
            },
        },
        "components": {
            "messages": messages,
            "schemas": schemas,
            "x-error-codes": {str(code): {"http": status, "meaning": text} for code, (status, text) in ERROR_DOCS.items()},
            "x-close-codes": {str(int(code)): code.name for code in CloseCode},
        },
    }
