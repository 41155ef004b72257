"""The hub's delivery callbacks, held the same way by every broker backend."""

from __future__ import annotations

from typing import Any

from synthia_rt.broker.base import EventCallback, ResubscribedCallback, SignalCallback


def _ignore(_: Any) -> None:
    return None


class BrokerHandlers:
    """Mixin for brokers: ``set_handlers`` storage, no-ops until the hub registers its own
    (so a delivery racing start-up is dropped rather than crashing the listener)."""

    def __init__(self) -> None:
        self._on_event: EventCallback = _ignore
        self._on_signal: SignalCallback = _ignore
        self._on_resubscribed: ResubscribedCallback = _ignore

    def set_handlers(
        self,
        on_event: EventCallback,
        on_signal: SignalCallback,
        on_resubscribed: ResubscribedCallback,
    ) -> None:
        self._on_event, self._on_signal, self._on_resubscribed = (
            on_event,
            on_signal,
            on_resubscribed,
        )
