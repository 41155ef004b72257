"""Redis key layout of the broker.

Every key of one channel shares the hash tag ``{ch:<channel>}`` so that a channel's meta hash,
its stream and its pub/sub channel live in one Redis Cluster slot: the publish script touches
only keys of one slot, and sharded pub/sub (SSUBSCRIBE) can follow without a data migration.

    <ns>:<db>:{ch:<channel>}     pub/sub channel (events and signals)
    <ns>:{ch:<channel>}:meta     hash: epoch, offset (newest assigned offset)
    <ns>:{ch:<channel>}:stream   stream: entry id ``<offset>-0``, field ``d`` = packed payload

Keys live in the database of ``REDIS_URL`` (``/<db>``), but pub/sub channels are server-wide:
Redis ignores the database number for PUBLISH/SUBSCRIBE.  So the pub/sub channel name carries
the database index too, and two deployments on ``redis://host/4`` and ``redis://host/5`` with
the same namespace do not hear each other's events, signals or node control messages (issue 12).
Redis Cluster has only database 0.
"""

from __future__ import annotations


def channel_tag(namespace: str, channel: str) -> str:
    return f"{namespace}:{{ch:{channel}}}"


def pubsub_channel(namespace: str, db: int, channel: str) -> bytes:
    """The wire name of a channel: namespace AND database index, same hash tag as its keys."""
    return f"{namespace}:{db}:{{ch:{channel}}}".encode()


def meta_key(namespace: str, channel: str) -> str:
    return channel_tag(namespace, channel) + ":meta"


def stream_key(namespace: str, channel: str) -> str:
    return channel_tag(namespace, channel) + ":stream"


def channel_keys(namespace: str, channel: str) -> list[str]:
    """The keys a channel's scripts declare, in the order the scripts expect (meta, stream)."""
    return [meta_key(namespace, channel), stream_key(namespace, channel)]
