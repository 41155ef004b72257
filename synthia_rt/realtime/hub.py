"""This node's channel registry and local fan-out; one broker subscription per channel.

Guarantees:

* A channel is subscribed at the broker when its first local socket joins and unsubscribed after
  its last one leaves. Joins, leaves and broker (un)subscribe calls for one channel are serialized
  by a per-channel lock, and every concurrent joiner waits for the same confirmed subscription —
  so a burst of sockets joining at once all end up receiving (the race encode/broadcaster loses).
* Each broker event is decoded to text once per node and handed to every local socket of the
  channel in offset order; sockets drop duplicates by offset (see ``Session.deliver``).
* After the broker reconnects, the hub reads each channel's history from the last offset it saw
  and delivers what was published during the outage, so sockets that stayed open miss nothing
  that the history still holds.
* Revocation is a broker *signal* on ``user:<id>``: every node that holds a socket of that user is
  subscribed there (every socket joins its user channel at connect), so it reaches exactly them.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from synthia_rt.broker.base import Event, Position, Signal
from synthia_rt.errors import CloseCode
from synthia_rt.realtime import notify
from synthia_rt.realtime.channels import BROADCAST, user_channel
from synthia_rt.realtime.presence import Presence

if TYPE_CHECKING:
    from synthia_rt.realtime.session import Session
    from synthia_rt.runtime import Runtime

log = logging.getLogger(__name__)

LIVE_HUBS: weakref.WeakSet[Hub] = weakref.WeakSet()  # drained by the server before uvicorn's 1012


class _Channel:
    __slots__ = ("sessions", "lock", "subscribed", "last", "catching_up")

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.lock = asyncio.Lock()
        self.subscribed = False
        self.last: Position | None = None  # newest event this node delivered
        # While history is read after a broker reconnect, live events wait here so that sockets
        # get the missed ones first and every event in offset order.
        self.catching_up: list[Event] | None = None


class Hub:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.broker = runtime.need_broker()
        self._channels: dict[str, _Channel] = {}
        self._by_user: dict[str, dict[str, Session]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.presence = Presence(runtime.need_kv(), runtime.settings.max_connections_per_user)
        LIVE_HUBS.add(self)

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        self.broker.set_handlers(self._on_event, self._on_signal, self._on_resubscribed)
        await self.broker.start()
        self.presence.start()

    async def drain(self, timeout: float = 5.0) -> None:
        """Close every socket with 1001 (reconnect elsewhere) and let the writers flush."""
        sessions = [s for users in self._by_user.values() for s in users.values()]
        for session in sessions:
            session.close(CloseCode.GOING_AWAY, "server going away")
        if sessions:
            await asyncio.wait([asyncio.ensure_future(s.closed.wait()) for s in sessions], timeout=timeout)

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
                try:
                    await self.broker.subscribe(channel)
                except BaseException:
                    state.sessions.pop(session.session_id, None)
                    self._forget_if_empty(channel, state)
                    raise
                state.subscribed = True
                return

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
        self._fan_out(state, event)

    def _fan_out(self, state: _Channel, event: Event) -> None:
        state.last = Position(event.offset, event.epoch)
        text = event.frame.decode()
        for session in list(state.sessions.values()):
            session.deliver(event.channel, event.offset, event.epoch, text)

    def _on_signal(self, signal: Signal) -> None:
        if signal.data.get("type") == "revoke":
            user_id = str(signal.data.get("user_id", ""))
            self._close_user(user_id, CloseCode.SESSION_REVOKED, "session revoked")

    def _on_resubscribed(self, channels: list[str]) -> None:
        for channel in channels:
            state = self._channels.get(channel)
            if state is not None and state.last is not None and state.catching_up is None:
                state.catching_up = []
                self._spawn(self._catch_up(channel, state, state.last))

    async def _catch_up(self, channel: str, state: _Channel, since: Position) -> None:
        events: list[Event] = []
        try:
            events = (await self.broker.history(channel, since)).events
        except Exception:  # noqa: BLE001 - live delivery resumes; clients recover with since
            log.warning("catch-up after reconnect failed", extra={"channel": channel}, exc_info=True)
        buffered, state.catching_up = state.catching_up or [], None
        for event in [*events, *buffered]:
            self._fan_out(state, event)  # sessions drop what they already have, by offset

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("hub task failed", exc_info=t.exception())

        task.add_done_callback(done)

    def _close_user(self, user_id: str, code: CloseCode, reason: str) -> None:
        for session in list(self._by_user.get(user_id, {}).values()):
            session.close(code, reason)

    def user_sessions(self, user_id: str) -> int:
        return len(self._by_user.get(user_id, {}))

    # --- server-side publish API -------------------------------------------------------------
    async def publish(self, channel: str, payload: Mapping[str, Any]) -> Event:
        """Publish through the broker (raises BrokerUnavailable when it cannot)."""
        return await self.broker.publish(channel, payload)

    async def revoke_user(self, user_id: str) -> None:
        """Close ``user_id``'s sockets on every node with 4010 (locally at once, elsewhere by signal)."""
        self._close_user(user_id, CloseCode.SESSION_REVOKED, "session revoked")
        await self.broker.signal(user_channel(user_id), {"type": "revoke", "user_id": user_id})

    async def notify(self, user_id: str, kind: str, title: str, body: str) -> dict[str, Any]:
        """Persist a notification for one user, then deliver it live on ``user:<id>``."""
        record = await notify.persist_one(user_id, kind, title, body)
        await self.publish(user_channel(user_id), {"event": "notification", **record})
        return record

    async def broadcast_notification(self, kind: str, title: str, body: str) -> dict[str, Any]:
        """Persist for every active user (offline ones see it in GET /notifications), then announce."""
        record = await notify.persist_all(kind, title, body)
        await self.publish(BROADCAST, {"event": "notification", **record})
        return record
