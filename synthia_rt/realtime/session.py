"""One connection's state machine: dispatch ops, the bounded outbound queue, token expiry, limits.

Inbound frames are handled one at a time, in order, so replies leave in command order. Outbound
frames go through a bounded queue drained by one writer task; when a client cannot keep up and
the queue overflows the socket is closed with 4008 instead of growing memory.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket

from synthia_rt import i18n
from synthia_rt.auth.principal import Principal
from synthia_rt.broker.base import BrokerUnavailable, Event, Position
from synthia_rt.errors import AppError, CloseCode, ErrorCode
from synthia_rt.realtime import protocol as p
from synthia_rt.realtime.channels import BROADCAST, authorize, user_channel
from synthia_rt.realtime.dispatch import dispatch
from synthia_rt.realtime.ratelimit import TokenBucket
from synthia_rt.realtime.transport import abort_later, abort_now

if TYPE_CHECKING:
    from synthia_rt.runtime import Runtime

log = logging.getLogger(__name__)


class State(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_ALLOWED = {
    State.CONNECTING: {State.OPEN, State.CLOSING, State.CLOSED},
    State.OPEN: {State.CLOSING, State.CLOSED},
    State.CLOSING: {State.CLOSED},
    State.CLOSED: set(),
}


class IllegalTransition(RuntimeError):
    pass


class _Subscription:
    """Where this socket is in one channel; ``pending`` buffers live events during a replay.

    ``offset`` is the newest offset the client has (sent on this socket, or its ``since``);
    ``first`` is the oldest offset sent on this socket in ``epoch``. Within one socket nothing
    is lost or reordered, so every offset in ``first..offset`` already reached the client: a
    later ``subscribe`` with an older ``since`` replays only what is outside that range.
    """

    __slots__ = ("offset", "epoch", "first", "pending")

    def __init__(self, offset: int = 0, epoch: str | None = None) -> None:
        self.offset = offset
        self.epoch = epoch  # None: accept the next event whatever its position (auto channels)
        self.first: int | None = None
        self.pending: list[tuple[int, str, str]] | None = None


@dataclass(frozen=True, slots=True)
class Joined:
    """A subscription ready to go live: the dispatcher sends ``fields`` as the ok reply, then
    calls ``go_live`` (the replay, the buffered live events, the channel's final event)."""

    fields: p.CommandReply
    go_live: Callable[[], None]


class Session:
    def __init__(
        self,
        websocket: WebSocket,
        runtime: Runtime,
        principal: Principal,
        session_id: str,
        checked_at: float | None = None,
    ) -> None:
        self.ws = websocket
        # monotonic instant before the token was checked: a revocation after it closes us
        self.checked_at = time.monotonic() if checked_at is None else checked_at
        self.runtime = runtime
        self.settings = runtime.settings
        self.hub = runtime.need_hub()
        self.principal = principal
        self.locale = i18n.current()  # decided at the handshake (endpoint.handshake_locale)
        self.session_id = session_id  # also the log id of this socket and its presence entry
        self.state = State.CONNECTING
        self.closed = asyncio.Event()
        self.close_code: int = CloseCode.NORMAL
        self.close_reason = ""  # sent with the close frame: a short explanation, for logs
        self._subs: dict[str, _Subscription] = {}
        self._out: deque[str] = deque()
        # Frames of catch-up replays not written yet: they may exceed the queue's cap (a replay
        # is bounded by the channel's history, HISTORY_SIZE); live frames may not.
        self._allowance = 0
        self._auto_unsynced: set[str] = set()  # auto channels not re-synced yet (dispatch)
        self._bucket = TokenBucket(self.settings.command_rate, self.settings.command_burst)
        self._upload_bucket: TokenBucket | None = None  # made at the first binary frame
        self._strikes = 0
        self._timers: list[asyncio.TimerHandle] = []
        self._writer: asyncio.Task[None] | None = None

    # --- state machine -------------------------------------------------------------------
    def _move(self, new: State) -> None:
        if new not in _ALLOWED[self.state]:
            raise IllegalTransition(f"{self.state.value} → {new.value}")
        self.state = new

    def close(self, code: int, reason: str = "") -> None:
        """Ask for the socket to close with ``code``; idempotent and safe from any callback.

        Frames already queued are flushed first, except for a slow consumer: its writer is
        stuck on a client that does not read, so nothing queued would ever get out.
        """
        if self.state in (State.CLOSING, State.CLOSED):
            return
        self._move(State.CLOSING)
        self.close_code = code
        self.close_reason = reason
        if code == CloseCode.SLOW_CONSUMER:
            self._out.clear()
            if self._writer is not None:
                self._writer.cancel()
                self._writer = None
        self._ensure_writer()

    async def _send_close(self) -> None:
        """Send the close frame within ``CLOSE_TIMEOUT``, else abort the TCP connection.

        A client that stopped reading (zero TCP window) never lets the close frame out, and
        uvicorn would keep its connection open as long as the send buffer is not drained; after
        the close is written the peer gets the same time to complete the closing handshake.
        """
        deadline = self.settings.close_timeout
        try:
            async with asyncio.timeout(deadline):
                await self.ws.close(self.close_code, self.close_reason)
        except TimeoutError:
            abort_now(self.ws)
            return
        except Exception:  # noqa: BLE001 - the peer may already be gone
            pass
        abort_later(self.ws, deadline)

    # --- outbound ------------------------------------------------------------------------
    # A plain deque and a writer task that exists only while frames are pending: an idle
    # socket then holds no task and no queue object (bench/: ≈3.5 KiB per socket), and a
    # fan-out costs one task step per socket instead of waking a parked writer.
    def send(self, frame: str | bytes) -> None:
        if self.state is not State.OPEN:
            return
        if len(self._out) >= self.settings.outbound_queue_size + self._allowance:
            metrics = self.runtime.metrics
            if metrics is not None:
                metrics.queue_drops.inc()
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer")
            return
        self._out.append(frame.decode() if isinstance(frame, bytes) else frame)
        self._ensure_writer()

    def _ensure_writer(self) -> None:
        if self._writer is None and self.state is not State.CLOSED:
            self._writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        metrics = self.runtime.metrics
        counted = metrics.frames_out.labels("text") if metrics is not None else None
        try:
            while self._out:
                await self.ws.send_text(self._out.popleft())
                if self._allowance:
                    self._allowance -= 1
                if counted is not None:
                    counted.inc()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - peer gone; the read loop sees the disconnect
            self._out.clear()
        finally:
            if self._writer is asyncio.current_task():  # a replaced (cancelled) writer leaves it
                self._writer = None
        if self.state is State.CLOSING:
            await self._send_close()

    def deliver(self, channel: str, offset: int, epoch: str, text: str) -> None:
        """Called by the hub for each channel event; drops what this socket already has."""
        sub = self._subs.get(channel)
        if sub is None:
            return
        if sub.pending is not None:
            sub.pending.append((offset, epoch, text))
            return
        if sub.epoch == epoch:
            if offset <= sub.offset:
                return
            if sub.first is None or offset < sub.first:
                sub.first = offset
        else:
            sub.first = offset
        sub.offset, sub.epoch = offset, epoch
        self.send(text)

    # --- lifecycle ----------------------------------------------------------------------
    async def run(self, subprotocol: str | None) -> None:
        await self.ws.accept(subprotocol=subprotocol)
        self._move(State.OPEN)
        self.hub.register(self)
        try:
            if self.hub.revoked_since(self.principal.user_id, self.checked_at):
                # The revocation crossed the handshake (signalled after the token check, before
                # this socket was registered to receive it): no frame, close 4010.
                self.close(CloseCode.SESSION_REVOKED, "session revoked")
                await self._read_loop()
                return
            # session.ready is always the first frame: events that reach the auto channels
            # while they are joined wait in ``pending`` until it is queued.
            auto = [user_channel(self.principal.user_id), BROADCAST]
            self._auto_unsynced = set(auto)
            for channel in auto:
                sub = self._subs[channel] = _Subscription()
                sub.pending = []
                await self.hub.join(channel, self)
            self.send(self._ready_frame())
            for channel in auto:
                sub = self._subs[channel]
                pending, sub.pending = sub.pending or [], None
                for offset, epoch, text in pending:
                    self.deliver(channel, offset, epoch, text)
            self._schedule_expiry()
            await self._read_loop()
        except BrokerUnavailable:
            self.close(CloseCode.TRY_AGAIN_LATER, "broker unavailable")
        finally:
            await self._cleanup()

    def _ready_frame(self) -> bytes:
        ready = p.SessionReady(
            session_id=self.session_id,
            user_id=self.principal.user_id,
            node=self.runtime.node_id,
            expires_in=self._expires_in(),
            limits=p.Limits(
                max_image_bytes=self.settings.max_image_bytes,
                max_chunk_bytes=self.settings.max_chunk_bytes,
                max_message_bytes=self.settings.max_message_bytes,
            ),
        )
        return ready.model_dump_json().encode()

    async def _read_loop(self) -> None:
        idle = self.settings.idle_timeout
        while self.state is not State.CLOSED:
            try:
                async with asyncio.timeout(idle if idle > 0 else None):
                    message = await self.ws.receive()
            except TimeoutError:
                self.close(CloseCode.GOING_AWAY, "idle timeout")
                continue
            kind = message["type"]
            if kind == "websocket.disconnect":
                if self.state is State.OPEN:
                    self.close_code = int(message.get("code") or 1005)
                return
            if self.state is not State.OPEN:
                continue  # closing: drain the peer's frames until its close arrives
            if message.get("text") is not None:
                await self._on_text(message["text"])
            elif message.get("bytes") is not None:
                await self._on_binary(message["bytes"])

    async def _cleanup(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self.state is not State.CLOSED:
            self.state = State.CLOSED
        writer, self._writer = self._writer, None
        if writer is not None and not writer.done():
            writer.cancel()
            try:
                await writer
            except BaseException:  # noqa: BLE001 - cancelled or failed; nothing to send anymore
                pass
        self._out.clear()
        for channel in list(self._subs):
            await self.hub.leave(channel, self)
        self._subs.clear()
        self.hub.unregister(self)
        self.closed.set()

    # --- token expiry --------------------------------------------------------------------
    def _expires_in(self) -> int:
        return max(0, int(self.principal.expires_at - time.time()))

    def _schedule_expiry(self) -> None:
        for timer in self._timers:
            timer.cancel()
        loop = asyncio.get_running_loop()
        remaining = self.principal.expires_at - time.time()
        warn_in = remaining - self.settings.expiry_warning
        # One timer per socket at a time: the warning, which then sets the close.
        self._timers = [loop.call_later(max(0.0, warn_in), self._warn_expiring)]

    def _warn_expiring(self) -> None:
        self.send(p.SessionExpiring(expires_in=self._expires_in()).model_dump_json())
        remaining = max(0.0, self.principal.expires_at - time.time())
        self._timers = [
            asyncio.get_running_loop().call_later(
                remaining, self.close, CloseCode.TOKEN_EXPIRED, "token expired"
            )
        ]

    # --- inbound -------------------------------------------------------------------------
    async def _on_text(self, text: str) -> None:
        metrics = self.runtime.metrics
        cap = self.settings.max_message_bytes
        # The cap is in bytes: up to 4 per character, so only long frames need encoding.
        if len(text) * 4 > cap and (len(text) > cap or len(text.encode()) > cap):
            self.close(CloseCode.MESSAGE_TOO_BIG, "text frame too large")
            return
        wait = self._bucket.take()
        if wait > 0:
            if metrics is not None:
                metrics.rate_limited.labels("socket").inc()
            # The refusal is replied to even when it is the strike that closes the socket
            # (queued frames are flushed before the 4009 close).
            error = AppError(ErrorCode.RATE_LIMITED, "too many commands", retry_after=wait)
            self.send(p.error_reply(_id_or_none(text), error))
            self._strike()
            return
        self._strikes = 0
        try:
            command = p.decode_command(text)
        except p.ProtocolError as exc:
            self.send(p.error_reply(exc.command_id, exc.error))
            return
        if metrics is not None:
            metrics.frames_in.labels(command.op).inc()
        try:
            reply = await dispatch(self, command)
        except AppError as error:
            self.send(p.error_reply(command.id, error))
        except BrokerUnavailable:
            self.send(
                p.error_reply(
                    command.id, AppError(ErrorCode.UNAVAILABLE, "realtime backend unavailable")
                )
            )
        except Exception:
            log.exception("command failed", extra={"op": command.op})
            self.send(p.error_reply(command.id, AppError(ErrorCode.INTERNAL)))
        else:
            if isinstance(reply, Joined):  # the reply, then what the client missed, then live
                self.send(p.ok_reply(command.id, reply.fields))
                reply.go_live()
            else:
                self.send(p.ok_reply(command.id, reply))

    def _strike(self) -> None:
        """Count one refused command or junk chunk; ``RATE_LIMIT_STRIKES`` in a row close 4009."""
        self._strikes += 1
        if self._strikes >= self.settings.rate_limit_strikes:
            self.close(CloseCode.RATE_LIMITED, "rate limited")

    async def _on_binary(self, data: bytes) -> None:
        metrics = self.runtime.metrics
        if metrics is not None:
            metrics.frames_in.labels("binary").inc()
        bucket = self._upload_bucket
        if bucket is None:
            bucket = self._upload_bucket = TokenBucket(
                self.settings.upload_frame_rate, self.settings.upload_frame_burst
            )
        wait = bucket.take()
        if wait > 0:  # refused before anything is parsed or read from the store
            if metrics is not None:
                metrics.rate_limited.labels("socket").inc()
            error = AppError(ErrorCode.RATE_LIMITED, "too many upload chunks", retry_after=wait)
            self.send(p.direct_event(p.AnalysisError.of(None, error, self.locale)))
            self._strike()
            return
        analysis = self.runtime.analysis
        analysis_id: uuid.UUID | None = None
        try:
            analysis_id, offset, payload = p.decode_chunk(data)
            if analysis is None:
                raise AppError(ErrorCode.BAD_CHUNK, "uploads are not available")
            progress = await analysis.upload_chunk(self.principal, analysis_id, offset, payload)
            self._strikes = 0
            self.send(p.UploadProgress.model_validate(progress).model_dump_json())
        except AppError as error:
            self.send(
                p.direct_event(
                    p.AnalysisError.of(
                        str(analysis_id) if analysis_id else None, error, self.locale
                    )
                )
            )
            if not error.temporary:
                self._strike()  # junk chunks in a row: 4009
        except Exception:
            log.exception("chunk failed")
            internal = AppError(ErrorCode.INTERNAL)
            self.send(
                p.direct_event(
                    p.AnalysisError.of(
                        str(analysis_id) if analysis_id else None, internal, self.locale
                    )
                )
            )

    # --- channels ------------------------------------------------------------------------
    async def subscribe(
        self, channel: str, since: Position | None, *, from_start: bool = False
    ) -> Joined:
        """Join (or re-sync) ``channel`` and read what the client missed; the returned
        :class:`Joined` holds the reply, and its ``go_live`` sends the replay once the reply is out.

        Live events that arrive from here on wait in the subscription's buffer and are merged by
        offset, so the client sees every event after its position exactly once, in order.
        ``from_start``: a channel the client has just created (everything it holds, so far).
        """
        broker = self.runtime.need_broker()
        sub = self._subs.get(channel)
        joined = sub is None
        if sub is None:
            sub = self._subs[channel] = _Subscription()
        sub.pending = []
        try:
            if joined:
                await self.hub.join(channel, self)
            if from_start:  # everything the channel holds, in one round trip
                history = await broker.history(channel, None)
                position, events, recovered = history.position, history.events, history.recovered
                since = Position(0, position.epoch)
            elif since is not None:
                history = await broker.history(channel, since)
                position, events, recovered = history.position, history.events, history.recovered
            else:
                position, events, recovered = await broker.position(channel), [], False
            # Read before replying, so a failure is this command's only reply (never ok, then error).
            caught_up = since is not None and recovered and not from_start
            final = None if caught_up else await self._final_event(channel, events)
        except BaseException:
            sub.pending = None
            if joined:
                self._subs.pop(channel, None)
                await self.hub.leave(channel, self)
            raise

        def go_live() -> None:
            self._replay(channel, sub, since, position, recovered, joined, events)
            if final is not None:
                self.send(p.direct_event(final, channel=channel))

        return Joined(
            p.SubscribeReply(offset=position.offset, epoch=position.epoch, recovered=recovered),
            go_live,
        )

    def _replay(
        self,
        channel: str,
        sub: _Subscription,
        since: Position | None,
        position: Position,
        recovered: bool,
        joined: bool,
        events: list[Event],
    ) -> None:
        """Send the history read by :meth:`subscribe`, then the events buffered meanwhile."""
        pending, sub.pending = sub.pending or [], None
        # Offsets this socket already sent in the current epoch: never sent twice.
        sent = (
            (sub.first, sub.offset)
            if sub.epoch == position.epoch and sub.first is not None
            else (1, 0)
        )
        if sub.epoch != position.epoch:
            sub.first = None
        if since is not None:
            # The client says what it has: replay from there, even on a channel this socket
            # already follows (a reconnecting client catches up on its auto channels this way).
            sub.offset, sub.epoch = (since.offset if recovered else 0), position.epoch
            if sent[0] <= sub.offset + 1 <= sent[1] + 1:  # contiguous with what was sent
                sub.offset = max(sub.offset, sent[1])
        elif joined or sub.epoch is None:
            sub.offset, sub.epoch = position.offset, position.epoch
        # (an existing subscription without ``since`` keeps its place; buffered events follow)
        # A socket back from far behind (a reconnect storm after a node died) must get its
        # catch-up, not 4008: the replay is let past the queue's cap, by one history at most
        # (repeated subscribes of a client that does not read cannot grow it further).
        queued, allowed = len(self._out), self._allowance
        self._allowance = self.settings.history_size
        for event in events:
            if event.epoch == sub.epoch and sent[0] <= event.offset <= sent[1]:
                sub.offset = max(sub.offset, event.offset)  # already sent on this socket
                continue
            self.deliver(channel, event.offset, event.epoch, event.text)
        for offset, epoch, text in pending:
            self.deliver(channel, offset, epoch, text)
        added = max(0, len(self._out) - queued)
        self._allowance = min(self.settings.history_size, allowed + added)
        if sub.epoch == position.epoch and sent[0] <= sent[1]:
            sub.offset = max(sub.offset, sent[1])

    async def _final_event(self, channel: str, replayed: list[Event]) -> p.ChannelEvent | None:
        """The event that ended ``channel``, to re-deliver, unless the replay holds it: asked of
        the hook its channel kind registered (``Runtime.final_events``), if any."""
        fetch = self.runtime.final_events.get(channel.partition(":")[0])
        if fetch is None or any(event.name in p.FINAL_EVENTS for event in replayed):
            return None
        return await fetch(channel)

    async def unsubscribe(self, channel: str) -> None:
        if self._subs.pop(channel, None) is not None:
            await self.hub.leave(channel, self)

    async def authorize(self, channel: str) -> str:
        analysis = self.runtime.analysis

        async def owner_of(analysis_id: str) -> str | None:
            return await analysis.owner_of(analysis_id) if analysis is not None else None

        return await authorize(self.principal, channel, owner_of)

    def take_first_resync(self, channel: str) -> bool:
        """True once per channel this socket joined at connect (its user channel, broadcast):
        the reconnect catch-up that every client sends right after ``session.ready``."""
        if channel in self._auto_unsynced:
            self._auto_unsynced.discard(channel)
            return True
        return False

    def subscribed_channels(self) -> set[str]:
        return set(self._subs)

    def refresh(self, principal: Principal) -> None:
        self.principal = principal
        self._schedule_expiry()


def _id_or_none(text: str) -> int | None:
    try:
        return p.decode_command(text).id
    except p.ProtocolError as exc:
        return exc.command_id
