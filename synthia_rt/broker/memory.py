"""In-process broker for the embedded default: same guarantees as Redis, one process only.

History is a bounded deque per channel; a channel's epoch is made at first use and its state is
dropped ``history_ttl`` seconds after the last publish (so a restart, or a long quiet spell,
starts a new epoch, as with Redis).  Deliveries go through one queue drained by a supervised
task: ``publish`` returns before handlers run, exactly as over pub/sub, and per-channel order
is the queue's order.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from synthia_rt.broker import replay, wire
from synthia_rt.broker.base import (
    Event,
    History,
    Position,
    Signal,
)
from synthia_rt.broker.handlers import BrokerHandlers
from synthia_rt.broker.supervise import invoke, stop_task, supervise
from synthia_rt.settings import Settings

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Channel:
    epoch: str
    expires_at: float
    offset: int = 0
    events: deque[Event] = field(default_factory=deque)


class MemoryBroker(BrokerHandlers):
    def __init__(
        self, settings: Settings, node_id: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.node_id = node_id
        self._size = max(1, settings.history_size)
        self._ttl = float(settings.history_ttl)
        self._clock = clock
        # Ordered by expiry (a publish moves its channel to the end), so expired channels are
        # popped from the front in O(1) amortised, without a sweeper task.
        self._channels: OrderedDict[str, _Channel] = OrderedDict()
        self._subscribed: set[str] = set()
        self._queue: asyncio.Queue[Event | Signal] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(
            supervise("memory broker dispatcher", self._dispatch, lambda: self._stopping),
            name="synthia-memory-broker",
        )

    async def stop(self) -> None:
        self._stopping = True
        await stop_task(self._task)
        self._task = None

    async def healthy(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- publishing ---------------------------------------------------------------------
    async def publish(self, channel: str, payload: Mapping[str, Any]) -> Event:
        packed = wire.pack_payload(payload)
        state = self._state(channel)
        state.offset += 1
        frame = wire.build_frame(packed, 0, orjson.dumps(channel), state.offset, state.epoch)
        event = Event(channel, state.offset, state.epoch, frame)
        state.events.append(event)
        if len(state.events) > self._size:
            state.events.popleft()
        state.expires_at = self._clock() + self._ttl
        self._channels.move_to_end(channel)
        if channel in self._subscribed:
            self._queue.put_nowait(event)
        return event

    async def signal(self, channel: str, data: Mapping[str, Any]) -> None:
        if channel in self._subscribed:
            self._queue.put_nowait(Signal(channel, dict(data), self.node_id))

    # -- subscriptions ------------------------------------------------------------------
    async def subscribe(self, channel: str) -> None:
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)

    # -- history ------------------------------------------------------------------------
    async def position(self, channel: str) -> Position:
        state = self._state(channel)
        return Position(state.offset, state.epoch)

    async def history(
        self, channel: str, since: Position | None, limit: int | None = None
    ) -> History:
        state = self._state(channel)
        position = Position(state.offset, state.epoch)
        oldest = state.offset - len(state.events) + 1
        skip = max(0, replay.first_offset(since, position) - oldest)
        stop = None if limit is None else skip + max(0, limit)
        events = list(itertools.islice(state.events, skip, stop))
        return History(events, position, replay.recovered(since, position, events))

    # -- internals ----------------------------------------------------------------------
    def _state(self, channel: str) -> _Channel:
        now = self._clock()
        while self._channels:
            oldest = next(iter(self._channels.values()))
            if oldest.expires_at > now:
                break
            self._channels.popitem(last=False)
        state = self._channels.get(channel)
        if state is None:
            state = _Channel(epoch=wire.new_epoch(), expires_at=now + self._ttl)
            self._channels[channel] = state
        return state

    async def _dispatch(self, mark_healthy: Callable[[], None]) -> None:
        while True:
            item = await self._queue.get()
            mark_healthy()
            if item.channel not in self._subscribed:
                continue  # unsubscribed while queued
            if isinstance(item, Event):
                await invoke(self._on_event, item, "event")
            else:
                await invoke(self._on_signal, item, "signal")
