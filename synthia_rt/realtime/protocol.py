"""synthia.v1 message models and codec — the only place socket frames are parsed.

Inbound text frames decode to one :class:`Command` subclass chosen by ``op``; every way a frame
can be wrong maps to :class:`ProtocolError` with ``bad_request`` or ``unknown_op`` and the ``id``
echoed when one could be read. Outbound frames are built here too, so the wire format lives in
one module (docs/protocol.md is checked against these models by tests/test_protocol_docs.py).
"""

from __future__ import annotations

import struct
import uuid
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from synthia_rt import i18n
from synthia_rt.errors import AppError, ErrorCode, field_error

SUBPROTOCOL = "synthia.v1"
BEARER_PREFIX = "bearer."
CHUNK_HEADER = struct.Struct(">16sQ")  # analysis UUID bytes, durable offset (unsigned BE)



def _canonical_uuid(value: str) -> str:
    """A UUID in its canonical form; anything ``uuid.UUID`` would refuse is a ``bad_request``
    here, never an exception in a handler."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError("not a UUID") from None


PositiveId = Annotated[int, Field(gt=0, strict=True)]
_UUID_PATTERN = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
UUIDStr = Annotated[str, Field(pattern=_UUID_PATTERN, json_schema_extra={"format": "uuid"}), AfterValidator(_canonical_uuid)]


class _Model(BaseModel):
    # Strict: "7" is not 7. Unknown extra fields are ignored so clients may grow first.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


# --- commands (client → server) ------------------------------------------------------------
class Command(_Model):
    op: ClassVar[str]
    id: PositiveId


class Ping(Command):
    op: ClassVar[str] = "ping"


class AuthRefresh(Command):
    op: ClassVar[str] = "auth.refresh"
    token: Annotated[str, Field(min_length=1, max_length=4096)]


class Since(_Model):
    offset: Annotated[int, Field(ge=0, strict=True)]
    epoch: Annotated[str, Field(max_length=64)]


class Subscribe(Command):
    op: ClassVar[str] = "subscribe"
    channel: Annotated[str, Field(min_length=1, max_length=200)]
    since: Since | None = None


class Unsubscribe(Command):
    op: ClassVar[str] = "unsubscribe"
    channel: Annotated[str, Field(min_length=1, max_length=200)]


class AnalysisStart(Command):
    op: ClassVar[str] = "analysis.start"
    kind: Literal["facial"]
    content_type: Annotated[str, Field(max_length=100)] | None = None
    size: Annotated[int, Field(gt=0, strict=True)] | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    file_id: UUIDStr | None = None


class UploadStatus(Command):
    op: ClassVar[str] = "upload.status"
    analysis_id: UUIDStr


class AnalysisCancel(Command):
    op: ClassVar[str] = "analysis.cancel"
    analysis_id: UUIDStr


class QuizStart(Command):
    op: ClassVar[str] = "quiz.start"
    locale: Annotated[str, Field(max_length=20)] | None = None


class QuizAnswer(Command):
    op: ClassVar[str] = "quiz.answer"
    quiz_id: UUIDStr
    question: Annotated[str, Field(min_length=1, max_length=64)]
    answer: Annotated[str, Field(min_length=1, max_length=64)]


class QuizSubmit(Command):
    op: ClassVar[str] = "quiz.submit"
    quiz_id: UUIDStr


COMMANDS: dict[str, type[Command]] = {
    cls.op: cls
    for cls in (
        Ping,
        AuthRefresh,
        Subscribe,
        Unsubscribe,
        AnalysisStart,
        UploadStatus,
        AnalysisCancel,
        QuizStart,
        QuizAnswer,
        QuizSubmit,
    )
}


class ProtocolError(Exception):
    def __init__(self, error: AppError, command_id: int | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.command_id = command_id


def _readable_id(obj: dict[str, Any]) -> int | None:
    value = obj.get("id")
    if type(value) is int and value > 0:
        return value
    return None


def decode_command(raw: str | bytes) -> Command:
    """Parse one text frame; raises :class:`ProtocolError` describing exactly what is wrong."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProtocolError(AppError(ErrorCode.BAD_REQUEST, "frame is not valid JSON"), None) from None
    if not isinstance(obj, dict):
        raise ProtocolError(AppError(ErrorCode.BAD_REQUEST, "frame is not a JSON object"), None)
    command_id = _readable_id(obj)
    op = obj.get("op")
    if op is None:
        raise ProtocolError(AppError(ErrorCode.BAD_REQUEST, "missing field: op", field="op"), command_id)
    if not isinstance(op, str):
        raise ProtocolError(AppError(ErrorCode.BAD_REQUEST, "op must be a string", field="op"), command_id)
    model = COMMANDS.get(op)
    if model is None:
        raise ProtocolError(AppError(ErrorCode.UNKNOWN_OP, "unknown op: {op}", params={"op": op[:64]}), command_id)
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "frame"
        raise ProtocolError(field_error(ErrorCode.BAD_REQUEST, first["type"], where), command_id) from None


def decode_chunk(data: bytes) -> tuple[uuid.UUID, int, bytes]:
    """Split a binary upload frame into (analysis id, offset, payload)."""
    if len(data) < CHUNK_HEADER.size:
        raise AppError(ErrorCode.BAD_CHUNK, "binary frame shorter than the 24-byte chunk header")
    raw_id, offset = CHUNK_HEADER.unpack_from(data)
    return uuid.UUID(bytes=raw_id), offset, data[CHUNK_HEADER.size :]


def encode_chunk(analysis_id: uuid.UUID, offset: int, payload: bytes) -> bytes:
    return CHUNK_HEADER.pack(analysis_id.bytes, offset) + payload


# --- replies and events (server → client) -----------------------------------------------------
def ok_reply(command_id: int, fields: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"id": command_id, "ok": True, **(fields or {})})


def error_reply(command_id: int | None, error: AppError, locale: str | None = None) -> bytes:
    """The error reply; its message in ``locale`` (default: the connection's, set at the
    handshake as the current locale)."""
    return orjson.dumps({"id": command_id, "ok": False, "error": error.to_dict(locale or i18n.current())})


def direct_event(event: str | ChannelEvent, payload: dict[str, Any] | None = None, *, channel: str | None = None) -> bytes:
    """An event for one socket only, outside any channel's sequence (no ``offset``): a name and
    its fields, or a typed event (``channel`` names the channel it is about, if any)."""
    if isinstance(event, ChannelEvent):
        name, fields = event.event, event.payload()
    else:
        name, fields = event, payload or {}
    head = {"event": name} if channel is None else {"event": name, "channel": channel}
    return orjson.dumps({**head, **fields})


class Limits(_Model):
    max_image_bytes: int
    max_chunk_bytes: int
    max_message_bytes: int


class SessionReady(_Model):
    event: Literal["session.ready"] = "session.ready"
    session_id: str
    user_id: str
    node: str
    expires_in: int
    limits: Limits


class SessionExpiring(_Model):
    event: Literal["session.expiring"] = "session.expiring"
    expires_in: int


class ChannelReset(_Model):
    """Direct event: the socket may have missed events of ``channel`` (docs/protocol.md §6).

    Sent when, after a broker reconnect, the history no longer reaches back to the last event
    this node delivered. Handle it like ``recovered: false``; ``since`` is the position the
    events that follow continue from (use it for a later ``subscribe``)."""

    event: Literal["channel.reset"] = "channel.reset"
    channel: str
    recovered: Literal[False] = False
    since: Since


# --- channel events (an analysis' or quiz's channel, protocol section 5) -----------------------
# Built by the analysis side and handed to ``broker.publish`` as ``payload()``; the broker adds
# ``channel``/``offset``/``epoch``. The same models document the frames (realtime/asyncapi.py).
Stage = Literal["uploading", "validating", "queued", "analyzing", "persisting", "done"]


class ChannelEvent(BaseModel):
    model_config = ConfigDict(frozen=True)
    event: str  # each model's own name, as a default: always on the wire

    def payload(self) -> dict[str, Any]:
        """What the broker publishes: ``event`` first, then the fields that were given (an
        optional field left out, like ``pct`` or ``retry_after``, stays off the wire)."""
        return {"event": self.event, **self.model_dump(exclude_unset=True, exclude={"event"})}


class AnalysisProgress(ChannelEvent):
    event: Literal["analysis.progress"] = "analysis.progress"
    analysis_id: str
    stage: Stage
    pct: float | None = None


class AnalysisPartial(ChannelEvent):
    event: Literal["analysis.partial"] = "analysis.partial"
    analysis_id: str
    seq: int
    delta: str
    partial: dict[str, Any]


class AnalysisResult(ChannelEvent):
    event: Literal["analysis.result"] = "analysis.result"
    analysis_id: str
    kind: Literal["facial", "chromatic"]
    result: dict[str, Any]
    # The result's raw keys (English identifiers) as words in the reader's language.
    labels: dict[str, Any] = Field(default_factory=dict)
    cached: bool
    model: str
    usage: dict[str, Any]
    duration_ms: int

    @model_validator(mode="before")
    @classmethod
    def _label(cls, data: Any) -> Any:
        """Labels in the current locale (the reader's or the run's) unless given."""
        if isinstance(data, dict) and not data.get("labels") and isinstance(data.get("result"), dict):
            data = {**data, "labels": i18n.result_labels(str(data.get("kind")), data["result"])}
        return data


class AnalysisError(ChannelEvent):
    event: Literal["analysis.error"] = "analysis.error"
    analysis_id: str | None
    code: str
    message: str
    temporary: bool
    retry_after: float | None = None
    field: str | None = None

    @classmethod
    def of(cls, analysis_id: str | None, error: AppError, locale: str | None = None) -> AnalysisError:
        """The error event of ``error`` (its body is exactly ``AppError.to_dict``), its message
        in ``locale`` (default: the current one, the reader's or the run's)."""
        return cls.model_validate({"analysis_id": analysis_id, **error.to_dict(locale or i18n.current())})


class QuizEstimate(ChannelEvent):
    event: Literal["quiz.estimate"] = "quiz.estimate"
    quiz_id: str
    season: str
    subseason: str
    confidence: float
    answered: int


# The events that end an analysis channel: once one is in a replay, nothing is fetched.
FINAL_EVENTS = frozenset({"analysis.result", "analysis.error"})
