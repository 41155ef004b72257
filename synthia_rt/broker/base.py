"""The broker seam: ordered per-channel publish, live subscribe, and bounded history.

Guarantees every implementation gives (and the shared scenario suite checks):

* **Ordering.** Within one channel, offsets increase by exactly one per published event and
  subscribers receive events in offset order. Across channels there is no order.
* **Delivery.** Live delivery is at-most-once (pub/sub). History makes it recoverable: the last
  ``history_size`` events of a channel (kept ``history_ttl`` seconds after the last publish) can
  be read back by offset. A subscriber that sees a gap in offsets reads history to fill it.
* **Epochs.** A channel's ``epoch`` changes only when its history was lost (TTL expiry, Redis
  restart without persistence, memory broker restart). Offsets restart at 1 in a new epoch.
* **Failure.** ``publish`` raises :class:`BrokerUnavailable` when the event could not be stored
  and published; it never drops silently. Live subscriptions survive a backend outage: the
  listener reconnects with capped backoff and re-subscribes every channel, then reports
  ``on_resubscribed`` so the hub can make sockets catch up from history.
* **Signals.** ``signal`` sends a control message to every node subscribed to a channel, with no
  offset and no history (used for session revocation); best effort but raising when down.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from synthia_rt.broker.wire import event_name


class BrokerUnavailable(RuntimeError):
    """The backend could not take the publish; the caller must know it failed."""


@dataclass(frozen=True, slots=True)
class Position:
    offset: int  # offset of the newest event (0 = none yet)
    epoch: str


@dataclass(frozen=True, slots=True)
class Event:
    channel: str
    offset: int
    epoch: str
    # The complete wire frame, encoded once per node and written as-is to every local socket:
    # {"event": …, "channel": …, "offset": …, "epoch": …, …payload}
    frame: bytes
    # The event's name (``payload["event"]``): read once from the frame, here, so code that
    # decides by kind of event never looks into the bytes.
    name: str = field(init=False)
    # The frame as the text sockets send: decoded once, shared by every socket it goes to
    # (a storm replays the same events to thousands of sockets).
    text: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", event_name(self.frame))
        object.__setattr__(self, "text", self.frame.decode())


@dataclass(frozen=True, slots=True)
class Signal:
    channel: str
    data: Mapping[str, Any]
    origin: str  # node id of the sender


@dataclass(slots=True)
class History:
    events: list[Event]
    position: Position
    recovered: bool  # True iff events are exactly everything after the requested position


EventCallback = Callable[[Event], Awaitable[None] | None]
SignalCallback = Callable[[Signal], Awaitable[None] | None]
ResubscribedCallback = Callable[[list[str]], Awaitable[None] | None]


class Broker(Protocol):
    node_id: str

    def set_handlers(
        self,
        on_event: EventCallback,
        on_signal: SignalCallback,
        on_resubscribed: ResubscribedCallback,
    ) -> None:
        """Called once by the hub before ``start``; handlers run on the listener task."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def healthy(self) -> bool: ...

    async def publish(self, channel: str, payload: Mapping[str, Any]) -> Event:
        """Assign the next offset, store in history, deliver to every node. ``payload`` must
        hold ``event`` (the event name); ``channel``/``offset``/``epoch`` are added here."""

    async def signal(self, channel: str, data: Mapping[str, Any]) -> None: ...

    async def subscribe(self, channel: str) -> None:
        """Start receiving ``channel`` on this node; returns once the backend confirmed it,
        so an event published after this returns is delivered. Idempotent."""

    async def unsubscribe(self, channel: str) -> None: ...

    async def position(self, channel: str) -> Position: ...

    async def history(
        self, channel: str, since: Position | None, limit: int | None = None
    ) -> History:
        """Events after ``since`` (all kept events when None). ``recovered`` is False when the
        epoch differs or the history no longer reaches back to ``since.offset + 1``."""
