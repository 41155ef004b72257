"""This node's channel registry and local fan-out; one broker subscription per channel.

Guarantees:

* A channel is subscribed at the broker when its first local socket joins and unsubscribed after
  its last one leaves. Joins, leaves and broker (un)subscribe calls for one channel are serialized
  by a per-channel lock, and every concurrent joiner waits for the same confirmed subscription —
  so a burst of sockets joining at once all end up receiving (the race encode/broadcaster loses).
* Each broker event is decoded to text once per node and handed to every local socket of the
  channel in offset order; sockets drop duplicates by offset (see ``Session.deliver``).
* The hub knows the channel's position when it subscribes and the last event it delivered since.
  It never hands sockets an event that does not follow on from that: after the broker
  reconnects, or when an event arrives after a gap (another epoch, a skipped offset), it reads
  the channel's history from that position first, retrying with capped backoff while Redis
  cannot answer. Live events wait meanwhile, so sockets get every event once and in order.
  When the history no longer reaches back (Redis lost it, or it was trimmed) every socket of
  the channel on this node gets a ``channel.reset`` (docs/protocol.md §6): never a silent gap.
* Revocation is a broker *signal* on :data:`CONTROL`, a channel every node holds from start to
  stop. No client command can take a node off it (a socket used to dodge revocation by
  unsubscribing from its own ``user:<id>``, issue 9.2).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from synthia_rt.broker.base import Event, Position, Signal
from synthia_rt.broker.supervise import backoff_delay
from synthia_rt.errors import CloseCode
from synthia_rt.realtime import protocol as p
from synthia_rt.realtime.channels import BROADCAST, user_channel
from synthia_rt.realtime.presence import Presence

if TYPE_CHECKING:
    from synthia_rt.realtime.session import Session
    from synthia_rt.runtime import Runtime
    from synthia_rt.store.notifications import NotificationRecord

log = logging.getLogger(__name__)

# Node-to-node control messages (revocation). Not a client channel: ``authorize`` refuses it.
CONTROL = "node:control"
RECHECK_BATCH = 500  # sockets whose tokens are re-checked at once after a pub/sub reconnect
REVOKE_MEMORY = 30.0  # seconds; far longer than a handshake's token check takes
CATCH_UP_CONCURRENCY = 16  # history reads at once after a reconnect (the pool has 64)
CATCH_UP_BACKOFF_CAP = 5.0  # seconds between attempts at most while Redis cannot answer


class _Channel:
    __slots__ = ("sessions", "lock", "subscribed", "last", "catching_up")

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.lock = asyncio.Lock()
        self.subscribed = False
        # The channel's position when this node subscribed, then the newest event it delivered
        # (None only when reading the position failed).
        self.last: Position | None = None
        # While history is read after a broker reconnect or a gap, live events wait here so
        # that sockets get the missed ones first and every event in offset order.
        self.catching_up: list[Event] | None = None


class Hub:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.broker = runtime.need_broker()
        self._channels: dict[str, _Channel] = {}
        self._by_user: dict[str, dict[str, Session]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # user id → monotonic instant of the last revocation seen here, kept REVOKE_MEMORY
        # seconds: a socket whose token was checked before a revocation but registered after
        # it would otherwise miss the signal (see ``revoked_since``).
        self._revoked: dict[str, float] = {}
        self._catch_up_slots = asyncio.Semaphore(CATCH_UP_CONCURRENCY)
        self._history_size = max(1, runtime.settings.history_size)
        self.presence = Presence(runtime.need_kv(), runtime.settings.max_connections_per_user)

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        self.broker.set_handlers(self._on_event, self._on_signal, self._on_resubscribed)
        await self.broker.start()
        await self.broker.subscribe(CONTROL)
        self.presence.start()

    async def drain(self, timeout: float = 5.0) -> None:
        """Close every socket with 1001 (reconnect elsewhere) and let the writers flush."""
        sessions = [s for users in self._by_user.values() for s in users.values()]
        for session in sessions:
            session.close(CloseCode.GOING_AWAY, "server going away")
        if sessions:
            waits = [asyncio.ensure_future(s.closed.wait()) for s in sessions]
            _, late = await asyncio.wait(waits, timeout=timeout)
            for wait in late:  # sockets that did not close in time: stop waiting for them
                wait.cancel()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.presence.stop()
        await self.broker.stop()

    # --- registry -------------------------------------------------------------------------
    def socket_count(self) -> int:
        return sum(len(s) for s in self._by_user.values())

    def channel_count(self) -> int:
        return len(self._channels)

    def register(self, session: Session) -> None:
        self._by_user.setdefault(session.principal.user_id, {})[session.session_id] = session

    def unregister(self, session: Session) -> None:
        users = self._by_user.get(session.principal.user_id)
        if users is not None:
            users.pop(session.session_id, None)
            if not users:
                del self._by_user[session.principal.user_id]

    async def join(self, channel: str, session: Session) -> None:
        """Add ``session`` to ``channel``; returns once the broker delivers it here."""
        while True:
            state = self._channels.get(channel)
            if state is None:
                state = self._channels[channel] = _Channel()
            state.sessions[session.session_id] = session
            if state.subscribed:
                return
            async with state.lock:
                if self._channels.get(channel) is not state:
                    continue  # a leave retired this state while we waited: use the live one
                if state.subscribed:
                    return
                # Concurrently: the position read costs no extra latency. It may be a little
                # older than the subscription; the gap check fills the difference.
                reading = asyncio.ensure_future(self._position(channel))
                try:
                    await self.broker.subscribe(channel)
                    position = await reading
                except BaseException:
                    reading.cancel()
                    state.sessions.pop(session.session_id, None)
                    self._forget_if_empty(channel, state)
                    raise
                if state.last is None:
                    state.last = position
                state.subscribed = True
                return

    async def _position(self, channel: str) -> Position | None:
        try:
            return await self.broker.position(channel)
        except Exception:  # noqa: BLE001 - only catch-up precision is lost; subscribe decides
            log.warning("position unknown at subscribe", extra={"channel": channel})
            return None

    async def leave(self, channel: str, session: Session) -> None:
        state = self._channels.get(channel)
        if state is None or state.sessions.pop(session.session_id, None) is None:
            return
        if state.sessions:
            return
        async with state.lock:
            # Someone may have joined while we waited for the lock.
            if state.sessions or self._channels.get(channel) is not state:
                return
            if state.subscribed:
                state.subscribed = False
                try:
                    await self.broker.unsubscribe(channel)
                except Exception:  # noqa: BLE001 - the broker drops it on reconnect anyway
                    log.warning("unsubscribe failed", extra={"channel": channel}, exc_info=True)
            self._forget_if_empty(channel, state)

    def _forget_if_empty(self, channel: str, state: _Channel) -> None:
        if not state.sessions and self._channels.get(channel) is state:
            del self._channels[channel]

    # --- broker callbacks (run on the broker's listener) -----------------------------------
    def _on_event(self, event: Event) -> None:
        state = self._channels.get(event.channel)
        if state is None:
            return
        if state.catching_up is not None:
            state.catching_up.append(event)
            return
        last = state.last
        if last is not None and (event.epoch != last.epoch or event.offset > last.offset + 1):
            # Something between what this node delivered and this event went missing (pub/sub
            # is at most once; a restarted Redis starts a new epoch): history first.
            self._start_catch_up(event.channel, state, last, [event])
            return
        self._fan_out(state, event)

    def _fan_out(self, state: _Channel, event: Event) -> None:
        last = state.last
        if last is None or event.epoch != last.epoch or event.offset > last.offset:
            state.last = Position(event.offset, event.epoch)
        text = event.text
        for session in list(state.sessions.values()):
            session.deliver(event.channel, event.offset, event.epoch, text)

    def _on_signal(self, signal: Signal) -> None:
        if signal.data.get("type") == "revoke":
            self._revoke_here(str(signal.data.get("user_id", "")))

    def _revoke_here(self, user_id: str) -> None:
        now = time.monotonic()
        self._revoked.pop(user_id, None)
        self._revoked[user_id] = now  # insertion order = age order: prune from the front
        for old, at in list(self._revoked.items()):
            if now - at <= REVOKE_MEMORY:
                break
            del self._revoked[old]
        self._close_user(user_id, CloseCode.SESSION_REVOKED, "session revoked")

    def revoked_since(self, user_id: str, instant: float) -> bool:
        """Whether a revocation of ``user_id`` reached this node at or after ``instant``
        (``time.monotonic()``, taken before the socket's token was checked)."""
        at = self._revoked.get(user_id)
        return at is not None and at >= instant

    def _on_resubscribed(self, channels: list[str]) -> None:
        if CONTROL in channels:
            # Revocation signals are pub/sub: those sent while this node's connection was
            # down are lost. Ask the store instead, for every socket held here.
            self._spawn(self._recheck_tokens())
        for channel in channels:
            state = self._channels.get(channel)
            if state is not None and state.last is not None and state.catching_up is None:
                self._start_catch_up(channel, state, state.last, [])

    def _start_catch_up(
        self, channel: str, state: _Channel, since: Position, held: list[Event]
    ) -> None:
        state.catching_up = held
        self._spawn(self._catch_up(channel, state, since))

    async def _catch_up(self, channel: str, state: _Channel, since: Position) -> None:
        """Read ``channel``'s history after ``since`` until that works, then deliver it and the
        live events held meanwhile; tell the sockets when the history cannot fill the gap."""
        attempt = 0
        history = None
        while history is None:
            if self._channels.get(channel) is not state:
                return  # everyone left: nobody to catch up
            held = state.catching_up or []
            if len(held) > self._history_size:
                break  # more has happened since than history keeps: it cannot reach back now
            try:
                async with self._catch_up_slots:
                    history = await self.broker.history(channel, since)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - BrokerUnavailable, or a script error
                delay = backoff_delay(attempt, cap=CATCH_UP_BACKOFF_CAP)
                attempt += 1
                log.warning(
                    "catch-up after reconnect failed (%s); retrying in %.1f s",
                    type(exc).__name__,
                    delay,
                    extra={"channel": channel},
                )
                await asyncio.sleep(delay)
        held, state.catching_up = state.catching_up or [], None
        events = history.events if history is not None else []
        if history is None or not history.recovered:
            first = events[0] if events else (held[0] if held else None)
            if first is not None:
                resume = Position(first.offset - 1, first.epoch)
            else:
                resume = history.position if history is not None else since
            self._reset(channel, state, resume)
            state.last = resume  # the sequence goes on from what the sockets were told
        for event in events:
            self._fan_out(state, event)  # sessions drop what they already have, by offset
        for index, event in enumerate(held):
            last = state.last
            if last is not None and (event.epoch != last.epoch or event.offset > last.offset + 1):
                # Live events were lost again meanwhile: another round from where we are.
                self._start_catch_up(channel, state, last, held[index:])
                return
            self._fan_out(state, event)

    def _reset(self, channel: str, state: _Channel, resume: Position) -> None:
        log.warning(
            "channel history lost across a reconnect; sockets told", extra={"channel": channel}
        )
        frame = p.ChannelReset(
            channel=channel, since=p.Since(offset=max(0, resume.offset), epoch=resume.epoch)
        ).model_dump_json()
        for session in list(state.sessions.values()):
            if channel in session.subscribed_channels():
                session.send(frame)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("hub task failed", exc_info=t.exception())

        task.add_done_callback(done)

    async def _recheck_tokens(self) -> None:
        """Close (4010) every local socket whose token was revoked while the signal could not
        reach this node. A socket whose check fails (the store is down again) stays open: its
        token is checked again at the next reconnect, and expires on its own."""
        tokens = self.runtime.need_tokens()
        sessions = [s for users in self._by_user.values() for s in users.values()]
        closed = failed = 0
        for start in range(0, len(sessions), RECHECK_BATCH):
            batch = sessions[start : start + RECHECK_BATCH]
            verdicts = await asyncio.gather(
                *(tokens.still_valid(s.principal) for s in batch), return_exceptions=True
            )
            for session, verdict in zip(batch, verdicts, strict=True):
                if verdict is False:
                    session.close(CloseCode.SESSION_REVOKED, "session revoked")
                    closed += 1
                elif isinstance(verdict, BaseException):
                    failed += 1
        log.info(
            "tokens re-checked after the pub/sub reconnect",
            extra={"sockets": len(sessions), "revoked": closed, "unchecked": failed},
        )

    def _close_user(self, user_id: str, code: CloseCode, reason: str) -> None:
        for session in list(self._by_user.get(user_id, {}).values()):
            session.close(code, reason)

    # --- server-side publish API -------------------------------------------------------------
    async def publish(self, channel: str, payload: Mapping[str, Any]) -> Event:
        """Publish through the broker (raises BrokerUnavailable when it cannot)."""
        return await self.broker.publish(channel, payload)

    async def revoke_user(self, user_id: str) -> None:
        """Close ``user_id``'s sockets on every node with 4010 (locally at once, elsewhere by signal)."""
        self._revoke_here(user_id)
        signal = {"type": "revoke", "user_id": user_id}
        await self.broker.signal(CONTROL, signal)
        # Also where nodes older than CONTROL listen, while a rolling deploy mixes versions.
        await self.broker.signal(user_channel(user_id), signal)

    async def notify(self, user_id: str, record: NotificationRecord) -> Event:
        """Deliver a notification the caller already stored live on ``user:<id>``.  The hub
        does not persist: :mod:`synthia_rt.store.notifications` does, before this."""
        event = await self.publish(user_channel(user_id), _notification_event(record))
        self._push(user_id, record.kind, record.title, record.body)
        return event

    async def announce(self, record: NotificationRecord) -> Event:
        """Deliver a stored broadcast (``notifications.create_broadcast``) live on ``broadcast``."""
        event = await self.publish(BROADCAST, _notification_event(record))
        self._push(None, record.kind, record.title, record.body)
        return event

    def _push(self, user_id: str | None, kind: str, title: str, body: str) -> None:
        """Also by Web Push to whoever has no socket open (queued; never waits)."""
        if self.runtime.push is not None:
            from synthia_rt.push.sender import Message

            self.runtime.push.offer(user_id, Message(kind, title, body, url="/"))


def _notification_event(record: NotificationRecord) -> dict[str, Any]:
    return {"event": "notification", **record.event_payload()}
