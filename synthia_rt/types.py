"""Type aliases shared across modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

JSON = dict[str, Any]
Payload = Mapping[str, Any]
EventHandler = Callable[["Event"], Awaitable[None]]  # noqa: F821 - see broker.base.Event
UserId = str
ChannelName = str
