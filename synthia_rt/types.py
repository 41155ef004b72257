"""Type aliases shared across modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JSON = dict[str, Any]  # a decoded JSON object
Payload = Mapping[str, Any]  # an event payload before the broker adds channel/offset/epoch
UserId = str
ChannelName = str
