"""One handler per op: the whole of protocol section 3, in one readable table.

A handler returns the op's reply model (``protocol.REPLIES[op]``; the session wraps its fields in
``{"id", "ok": true}``), or, for the ops that join a channel, the session's
:class:`~synthia_rt.realtime.session.Joined` holding that model: its reply is sent first, then the
events the client missed. :func:`dispatch` refuses any other reply type, so the reply schemas in
docs/asyncapi.json are the replies sent.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from synthia_rt.broker.base import Position
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.i18n import N_
from synthia_rt.limiter import rule
from synthia_rt.realtime import protocol as p
from synthia_rt.realtime.channels import analysis_channel

if TYPE_CHECKING:
    from synthia_rt.analysis.service import AnalysisService
    from synthia_rt.realtime.session import Joined, Session

Reply: TypeAlias = "p.CommandReply | Joined"
Handler = Callable[["Session", Any], Awaitable[Reply]]


def _analysis(session: Session) -> AnalysisService:
    service = session.runtime.analysis
    if service is None:
        raise AppError(ErrorCode.UNAVAILABLE, "analysis is not available on this node")
    return service


@functools.lru_cache(maxsize=16)
def _rule(text: str) -> Any:
    return rule(text)


async def _per_user(session: Session, limit: str, scope: str) -> None:
    """Count one ``scope`` command against the user's shared limit (every node, every socket):
    ``rate_limited`` with ``retry_after`` past it."""
    try:
        await session.runtime.need_limiter().hit(
            _rule(limit),
            scope,
            session.principal.user_id,
            message=N_("too many {scope} commands"),
            params={"scope": scope},
        )
    except AppError as error:
        metrics = session.runtime.metrics
        if error.code is ErrorCode.RATE_LIMITED and metrics is not None:
            metrics.rate_limited.labels(scope).inc()
        raise


def _replying(joined: Joined, reply: p.CommandReply) -> Joined:
    """``joined`` answering with the op's own reply instead of the channel position."""
    return dataclasses.replace(joined, fields=reply)


async def ping(session: Session, cmd: p.Ping) -> p.PingReply:
    return p.PingReply(ts=time.time())


async def auth_refresh(session: Session, cmd: p.AuthRefresh) -> p.AuthRefreshReply:
    principal = await session.runtime.need_tokens().verify_access(cmd.token)
    if principal.user_id != session.principal.user_id:
        raise AppError(ErrorCode.TOKEN_INVALID, "the token belongs to another user")
    session.refresh(principal)
    return p.AuthRefreshReply(expires_in=max(0, int(principal.expires_at - time.time())))


async def subscribe(session: Session, cmd: p.Subscribe) -> Joined:
    # A reconnecting client's catch-up of a channel the socket joined at connect is not
    # counted (once per channel): a reconnect storm then costs no shared-limiter round trip.
    if not (cmd.since is not None and session.take_first_resync(cmd.channel)):
        await _per_user(session, session.settings.subscribe_limit, "subscribe")
    channel = await session.authorize(cmd.channel)
    since = Position(cmd.since.offset, cmd.since.epoch) if cmd.since else None
    return await session.subscribe(channel, since)


async def unsubscribe(session: Session, cmd: p.Unsubscribe) -> p.UnsubscribeReply:
    await session.unsubscribe(cmd.channel)
    return p.UnsubscribeReply()


async def analysis_start(session: Session, cmd: p.AnalysisStart) -> Joined:
    started = await _analysis(session).start_analysis(
        session.principal,
        kind=cmd.kind,
        content_type=cmd.content_type,
        size=cmd.size,
        sha256=cmd.sha256,
        file_id=cmd.file_id,
    )
    reply = p.AnalysisStartReply.model_validate(started)
    return _replying(await session.subscribe(reply.channel, None, from_start=True), reply)


async def upload_status(session: Session, cmd: p.UploadStatus) -> p.UploadStatusReply:
    status = await _analysis(session).upload_status(session.principal, uuid.UUID(cmd.analysis_id))
    return p.UploadStatusReply.model_validate(status)


async def analysis_cancel(session: Session, cmd: p.AnalysisCancel) -> p.AnalysisCancelReply:
    await _analysis(session).cancel(session.principal, uuid.UUID(cmd.analysis_id))
    return p.AnalysisCancelReply()


async def quiz_start(session: Session, cmd: p.QuizStart) -> Joined:
    await _per_user(session, session.settings.quiz_start_limit, "quiz.start")
    reply = p.QuizStartReply.model_validate(
        await _analysis(session).quiz_start(session.principal, cmd.locale)
    )
    channel = analysis_channel(reply.quiz_id)
    return _replying(await session.subscribe(channel, None, from_start=True), reply)


async def quiz_answer(session: Session, cmd: p.QuizAnswer) -> p.QuizAnswerReply:
    answered = await _analysis(session).quiz_answer(
        session.principal, cmd.quiz_id, cmd.question, cmd.answer
    )
    return p.QuizAnswerReply.model_validate(answered)


async def quiz_submit(session: Session, cmd: p.QuizSubmit) -> Reply:
    reply = p.QuizSubmitReply.model_validate(
        await _analysis(session).quiz_submit(session.principal, cmd.quiz_id)
    )
    if reply.channel in session.subscribed_channels():
        return reply
    return _replying(await session.subscribe(reply.channel, None, from_start=True), reply)


HANDLERS: dict[str, Handler] = {
    p.Ping.op: ping,
    p.AuthRefresh.op: auth_refresh,
    p.Subscribe.op: subscribe,
    p.Unsubscribe.op: unsubscribe,
    p.AnalysisStart.op: analysis_start,
    p.UploadStatus.op: upload_status,
    p.AnalysisCancel.op: analysis_cancel,
    p.QuizStart.op: quiz_start,
    p.QuizAnswer.op: quiz_answer,
    p.QuizSubmit.op: quiz_submit,
}
assert set(HANDLERS) == set(p.COMMANDS), "every op in the protocol has exactly one handler"


async def dispatch(session: Session, command: p.Command) -> Reply:
    reply = await HANDLERS[command.op](session, command)
    fields = reply if isinstance(reply, p.CommandReply) else reply.fields
    if type(fields) is not p.REPLIES[command.op]:  # never send a reply its schema does not describe
        raise TypeError(
            f"{command.op} replied with {type(fields).__name__}, not {p.REPLIES[command.op].__name__}"
        )
    return reply
