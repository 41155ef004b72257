"""Broker seam: ``memory://`` (in-process) or ``redis://`` (pub/sub + Streams history)."""

from __future__ import annotations

from synthia_rt.broker.base import Broker, BrokerUnavailable, Event, History, Position, Signal
from synthia_rt.settings import Settings


def create_broker(url: str, settings: Settings, node_id: str) -> Broker:
    if url.startswith("memory://"):
        from synthia_rt.broker.memory import MemoryBroker

        return MemoryBroker(settings, node_id)
    if url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
        from synthia_rt.broker.redis import RedisBroker

        return RedisBroker(url, settings, node_id)
    raise ValueError(f"unsupported broker URL: {url.split(':', 1)[0]}://")


__all__ = ["Broker", "BrokerUnavailable", "Event", "History", "Position", "Signal", "create_broker"]
