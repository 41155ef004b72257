"""What a broker under test delivered: shared by the broker scenario and Redis-outage tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from synthia_rt.broker import Broker, Event, Signal


@dataclass(kw_only=True)
class Recorder:
    """Collects a broker's events, signals and resubscriptions; ``wait_until`` wakes on each."""

    # Bounds a failing wait only; nothing measures speed.  Subclasses may allow longer.
    deadline: ClassVar[float] = 5.0

    events: list[Event] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    resubscribed: list[list[str]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, into: list[Any]) -> Callable[[Any], None]:
        def handler(item: Any) -> None:
            into.append(item)
            self.changed.set()

        return handler

    def attach(self, broker: Broker) -> None:
        """Register this recorder as ``broker``'s handlers (before ``start``)."""
        broker.set_handlers(
            self.record(self.events), self.record(self.signals), self.record(self.resubscribed)
        )

    async def wait_until(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(self.deadline):
            while not check():
                self.changed.clear()
                await self.changed.wait()
