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
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from synthia_rt import i18n
from synthia_rt.analysis.models import ChromaticResult, FacialResult
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
UUIDStr = Annotated[
    str,
    Field(pattern=_UUID_PATTERN, json_schema_extra={"format": "uuid"}),
    AfterValidator(_canonical_uuid),
]


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
        raise ProtocolError(
            AppError(ErrorCode.BAD_REQUEST, "frame is not valid JSON"), None
        ) from None
    if not isinstance(obj, dict):
        raise ProtocolError(AppError(ErrorCode.BAD_REQUEST, "frame is not a JSON object"), None)
    command_id = _readable_id(obj)
    op = obj.get("op")
    if op is None:
        raise ProtocolError(
            AppError(ErrorCode.BAD_REQUEST, "missing field: op", field="op"), command_id
        )
    if not isinstance(op, str):
        raise ProtocolError(
            AppError(ErrorCode.BAD_REQUEST, "op must be a string", field="op"), command_id
        )
    model = COMMANDS.get(op)
    if model is None:
        raise ProtocolError(
            AppError(ErrorCode.UNKNOWN_OP, "unknown op: {op}", params={"op": op[:64]}), command_id
        )
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "frame"
        raise ProtocolError(
            field_error(ErrorCode.BAD_REQUEST, first["type"], where), command_id
        ) from None


def decode_chunk(data: bytes) -> tuple[uuid.UUID, int, bytes]:
    """Split a binary upload frame into (analysis id, offset, payload)."""
    if len(data) < CHUNK_HEADER.size:
        raise AppError(ErrorCode.BAD_CHUNK, "binary frame shorter than the 24-byte chunk header")
    raw_id, offset = CHUNK_HEADER.unpack_from(data)
    return uuid.UUID(bytes=raw_id), offset, data[CHUNK_HEADER.size :]


def encode_chunk(analysis_id: uuid.UUID, offset: int, payload: bytes) -> bytes:
    return CHUNK_HEADER.pack(analysis_id.bytes, offset) + payload


# --- replies (server → client): one model per op, protocol section 3 ---------------------------
def optional_off_the_wire(schema: dict[str, Any]) -> None:
    """JSON Schema of a model whose ``X | SkipJsonSchema[None] = None`` fields are left off the
    wire when None: optional (not required) and never null, so no ``"default": null`` either."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None and "anyOf" not in prop:
            del prop["default"]


def _out_schema(schema: dict[str, Any]) -> None:
    # The published schema does not forbid extra fields: clients must accept a server that grows.
    schema.pop("additionalProperties", None)
    optional_off_the_wire(schema)


class _Out(BaseModel):
    # Built by the server: strict, and an unknown field is a bug (never silently sent or dropped).
    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, json_schema_extra=_out_schema
    )


class CommandReply(_Out):
    """The fields of one op's success reply (the session adds ``id`` and ``ok: true``).

    Handlers build these (validated, strict), so what is sent is exactly what docs/asyncapi.json
    documents as the op's ``reply``. An optional field left out (``None``) stays off the wire."""

    op: ClassVar[str]

    def fields(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class PingReply(CommandReply):
    op: ClassVar[str] = "ping"
    ts: float = Field(description="the server's clock, unix seconds")


class AuthRefreshReply(CommandReply):
    op: ClassVar[str] = "auth.refresh"
    expires_in: int = Field(description="seconds until the new token expires")


class SubscribeReply(CommandReply):
    """Where the channel stands (section 3, subscribe semantics); replayed events follow it."""

    op: ClassVar[str] = "subscribe"
    offset: int
    epoch: str
    recovered: bool


class UnsubscribeReply(CommandReply):
    op: ClassVar[str] = "unsubscribe"


class UploadSlot(_Out):
    offset: int = Field(description="the byte offset the first chunk starts at")
    max_chunk_bytes: int


class AnalysisStartReply(CommandReply):
    """``upload`` when the image bytes are to be sent; ``cached`` without ``upload`` when the result
    was cached (or the bytes came from ``file_id``)."""

    op: ClassVar[str] = "analysis.start"
    analysis_id: str
    channel: str
    upload: UploadSlot | SkipJsonSchema[None] = None
    cached: bool | SkipJsonSchema[None] = None


class UploadStatusReply(CommandReply):
    op: ClassVar[str] = "upload.status"
    offset: int = Field(description="bytes durably stored (the byte offset to resume from)")
    size: int


class AnalysisCancelReply(CommandReply):
    op: ClassVar[str] = "analysis.cancel"


class QuizOption(_Out):
    id: str
    label: str


class QuizQuestion(_Out):
    id: str
    text: str
    options: list[QuizOption]


class QuizStartReply(CommandReply):
    op: ClassVar[str] = "quiz.start"
    quiz_id: str
    questions: list[QuizQuestion]


class QuizAnswerReply(CommandReply):
    op: ClassVar[str] = "quiz.answer"
    answered: int
    remaining: int


class QuizSubmitReply(CommandReply):
    op: ClassVar[str] = "quiz.submit"
    analysis_id: str
    channel: str
    cached: bool


REPLIES: dict[str, type[CommandReply]] = {
    cls.op: cls
    for cls in (
        PingReply,
        AuthRefreshReply,
        SubscribeReply,
        UnsubscribeReply,
        AnalysisStartReply,
        UploadStatusReply,
        AnalysisCancelReply,
        QuizStartReply,
        QuizAnswerReply,
        QuizSubmitReply,
    )
}
assert set(REPLIES) == set(COMMANDS), "every op has exactly one reply model"


def ok_reply(command_id: int, reply: CommandReply) -> bytes:
    return orjson.dumps({"id": command_id, "ok": True, **reply.fields()})


def error_reply(command_id: int | None, error: AppError, locale: str | None = None) -> bytes:
    """The error reply; its message in ``locale`` (default: the connection's, set at the
    handshake as the current locale)."""
    return orjson.dumps(
        {"id": command_id, "ok": False, "error": error.to_dict(locale or i18n.current())}
    )


def direct_event(event: ChannelEvent, *, channel: str | None = None) -> bytes:
    """A channel event's model sent to one socket only, outside any channel's sequence: no
    ``offset``/``epoch`` (a refused upload chunk's ``analysis.error``; with ``channel``, the final
    event re-sent on subscribe). Documented as the ``…Direct`` messages in docs/asyncapi.json."""
    head = {"event": event.event} if channel is None else {"event": event.event, "channel": channel}
    return orjson.dumps({**head, **event.payload()})


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


class UploadProgress(_Model):
    """Direct event to the uploading socket after each accepted chunk (section 4).

    Not a channel event: ``offset`` is the upload's byte offset, not a channel sequence offset,
    and there is no ``channel``/``epoch``."""

    event: Literal["upload.progress"] = "upload.progress"
    analysis_id: str
    offset: int = Field(
        description="bytes durably stored: the byte offset the next chunk starts at"
    )
    size: int


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


def _result_object(value: Any) -> dict[str, Any]:
    # Results passed validate_result when they were made; cached and stored ones are served
    # as written (fields added later stay absent), so only the shape is checked here.
    if not isinstance(value, dict):
        raise ValueError("result must be an object")
    return value


def _one_of(schema: dict[str, Any]) -> None:
    schema["oneOf"] = schema.pop("anyOf")
    schema["description"] = (
        "FacialResult when kind is facial, ChromaticResult when kind is chromatic"
    )


# Documented per kind (the event's ``kind`` tells which), carried as the plain object.
ResultPayload = Annotated[
    dict[str, Any],
    PlainValidator(_result_object, json_schema_input_type=FacialResult | ChromaticResult),
    Field(json_schema_extra=_one_of),
]


class AnalysisResult(ChannelEvent):
    event: Literal["analysis.result"] = "analysis.result"
    analysis_id: str
    kind: Literal["facial", "chromatic"]
    result: ResultPayload
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
        if (
            isinstance(data, dict)
            and not data.get("labels")
            and isinstance(data.get("result"), dict)
        ):
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
    def of(
        cls, analysis_id: str | None, error: AppError, locale: str | None = None
    ) -> AnalysisError:
        """The error event of ``error`` (its body is exactly ``AppError.to_dict``), its message
        in ``locale`` (default: the current one, the reader's or the run's)."""
        return cls.model_validate(
            {"analysis_id": analysis_id, **error.to_dict(locale or i18n.current())}
        )


class QuizEstimate(ChannelEvent):
    event: Literal["quiz.estimate"] = "quiz.estimate"
    quiz_id: str
    season: str
    subseason: str
    confidence: float
    answered: int


# The events that end an analysis channel: once one is in a replay, nothing is fetched.
FINAL_EVENTS = frozenset({"analysis.result", "analysis.error"})
