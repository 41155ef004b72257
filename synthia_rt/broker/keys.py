"""Redis key layout of the broker.

Every key of one channel shares the hash tag ``{ch:<channel>}`` so that a channel's meta hash,
its stream and its pub/sub channel live in one Redis Cluster slot: the publish script touches
only keys of one slot, and sharded pub/sub (SSUBSCRIBE) can follow without a data migration.

    <ns>:{ch:<channel>}          pub/sub channel (events and signals)
    <ns>:{ch:<channel>}:meta     hash: epoch, offset (newest assigned offset)
    <ns>:{ch:<channel>}:stream   stream: entry id ``<offset>-0``, field ``d`` = packed payload
"""

from __future__ import annotations


def channel_tag(namespace: str, channel: str) -> str:
    return f"{namespace}:{{ch:{channel}}}"


def pubsub_channel(namespace: str, channel: str) -> bytes:
    return channel_tag(namespace, channel).encode()


def meta_key(namespace: str, channel: str) -> str:
    return channel_tag(namespace, channel) + ":meta"


def stream_key(namespace: str, channel: str) -> str:
    return channel_tag(namespace, channel) + ":stream"


def channel_keys(namespace: str, channel: str) -> list[str]:
    """The keys a channel's scripts declare, in the order the scripts expect (meta, stream)."""
    return [meta_key(namespace, channel), stream_key(namespace, channel)]
