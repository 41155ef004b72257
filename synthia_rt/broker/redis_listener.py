"""The process's single Redis pub/sub connection: subscriptions, reading, reconnecting.

One :class:`redis.asyncio.client.PubSub` on a dedicated connection carries every channel this
process follows (one Redis pub/sub channel per synthia channel).  A supervised task reads it;
when the connection breaks it is thrown away, a fresh one is opened with capped, jittered
backoff, every wanted channel is re-subscribed in one command, and once Redis has confirmed them
all ``on_resubscribed`` reports them so the caller can catch up from history.

Subscription commands are written directly on the connection (not via ``PubSub.subscribe``):
the listener alone decides when to reconnect and what to re-subscribe, so redis-py's own
reconnect-and-resubscribe never races with it.  Redis confirms subscriptions in command order,
so a per-channel count of unconfirmed SUBSCRIBEs tells exactly when the latest one is effective
(even after subscribe → unsubscribe → subscribe on the same channel).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from synthia_rt.broker.base import BrokerUnavailable
from synthia_rt.broker.supervise import stop_task, supervise

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], Awaitable[None]]
ResubscribedHandler = Callable[[list[str]], Awaitable[None]]
SUBSCRIBE_BATCH = 1000  # channels per SUBSCRIBE command when re-subscribing


@dataclass(eq=False)
class _Wanted:
    key: bytes
    ready: asyncio.Future[None]  # resolved once Redis confirmed it on the current connection
    waiters: int = 0  # subscribe() calls currently waiting for ``ready``


@dataclass(eq=False)
class _Outbox:
    conn: Any
    written: asyncio.Future[None]
    commands: list[list[Any]] = field(default_factory=list)


class PubSubListener:
    subscribe_timeout = 5.0  # seconds subscribe() waits for Redis' confirmation
    poll_interval = 1.0  # read timeout; between reads the loop checks liveness
    ping_after = 5.0  # seconds of silence before the listener PINGs
    pong_timeout = 5.0  # seconds a PING may stay unanswered before the link is declared dead

    def __init__(
        self,
        client: Redis,
        key_for: Callable[[str], bytes],
        on_message: MessageHandler,
        on_resubscribed: ResubscribedHandler,
        *,
        sharded: bool = False,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client  # its pool is used for this one connection only
        # Sharded pub/sub (Redis Cluster, one listener per shard primary): SSUBSCRIBE and
        # smessage instead of SUBSCRIBE and message.  ``on_lost`` hears a channel the server
        # unsubscribed by itself (its slot moved: resharding, failover).
        self._sub, self._unsub = (
            ("SSUBSCRIBE", "SUNSUBSCRIBE") if sharded else ("SUBSCRIBE", "UNSUBSCRIBE")
        )
        self._on_lost = on_lost
        self._sharded = sharded
        self._key_for = key_for
        self._on_message = on_message
        self._on_resubscribed = on_resubscribed
        self._wanted: dict[str, _Wanted] = {}
        self._by_key: dict[bytes, str] = {}
        self._unconfirmed: dict[bytes, int] = {}
        self._pubsub: PubSub | None = None  # the live connection; None while (re)connecting
        self._opening: PubSub | None = None
        self._resubscribing: set[bytes] | None = None
        self._resubscribed: list[str] = []
        self._connected_once = False
        self._connected = asyncio.Event()
        self._broken = False
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._outbox: _Outbox | None = None  # (un)subscribes of this loop iteration

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, wait: float = 5.0) -> None:
        self._stopping = False
        self._task = asyncio.create_task(
            supervise(
                "redis pub/sub listener",
                self._session,
                lambda: self._stopping,
                expected=(RedisConnectionError, RedisTimeoutError, OSError),
                on_failure=self._drop_connection,
            ),
            name="synthia-pubsub-listener",
        )
        try:
            await asyncio.wait_for(self._connected.wait(), wait)
        except TimeoutError:
            log.warning("pub/sub listener not connected yet; it keeps retrying")

    async def stop(self) -> None:
        self._stopping = True
        await stop_task(self._task)
        self._task = None
        await self._drop_connection()
        for wanted in self._wanted.values():
            _fail(wanted.ready, BrokerUnavailable("broker stopped"))
        self._wanted.clear()
        self._by_key.clear()

    @property
    def connected(self) -> bool:
        return self._pubsub is not None and self._task is not None and not self._task.done()

    def channels(self) -> list[str]:
        return list(self._wanted)

    # -- subscriptions ------------------------------------------------------------------
    async def subscribe(self, channel: str) -> None:
        if self._task is None:
            raise RuntimeError("broker not started")
        wanted = self._wanted.get(channel)
        if wanted is not None and wanted.ready.done():
            return wanted.ready.result()  # already effective (or failed: raises)
        created = wanted is None
        if wanted is None:
            wanted = _Wanted(self._key_for(channel), asyncio.get_running_loop().create_future())
            self._wanted[channel] = wanted
            self._by_key[wanted.key] = channel
        # A subscribe that raises leaves the channel unsubscribed: the caller that registered
        # it rolls it back on timeout (failing those who joined it), or when cancelled alone
        # before Redis confirmed it (nobody can have been told it is subscribed yet).
        wanted.waiters += 1
        try:
            async with asyncio.timeout(self.subscribe_timeout):
                if created:
                    await self._send(self._sub, wanted.key)  # if disconnected: the reconnect
                await asyncio.shield(wanted.ready)
        except TimeoutError:
            if created and self._wanted.get(channel) is wanted:
                self._roll_back(channel, wanted, "subscription not confirmed")
            raise BrokerUnavailable("Redis did not confirm the subscription") from None
        except asyncio.CancelledError:
            alone = wanted.waiters == 1 and not wanted.ready.done()
            if created and alone and self._wanted.get(channel) is wanted:
                self._roll_back(channel, wanted, "subscribe cancelled")
            raise
        finally:
            wanted.waiters -= 1

    def _roll_back(self, channel: str, wanted: _Wanted, reason: str) -> None:
        self._forget(channel)
        _fail(wanted.ready, BrokerUnavailable(reason))
        self._start_send(self._unsub, (wanted.key,))  # in the background: may be cancelled

    async def unsubscribe(self, channel: str) -> None:
        wanted = self._forget(channel)
        if wanted is None:
            return
        if not wanted.ready.done():
            wanted.ready.set_result(None)  # its waiters are moot: nobody wants the channel now
        await self._send(self._unsub, wanted.key)

    def drop(self, channel: str) -> None:
        """Forget ``channel`` without telling the server (it already dropped it: its slot
        moved to another shard).  Waiters are released; the new owner confirms it."""
        wanted = self._forget(channel)
        if wanted is not None and not wanted.ready.done():
            wanted.ready.set_result(None)

    def _forget(self, channel: str) -> _Wanted | None:
        wanted = self._wanted.pop(channel, None)
        if wanted is not None:
            self._by_key.pop(wanted.key, None)
        return wanted

    async def _send(self, command: str, *keys: bytes) -> None:
        """Write a (un)subscribe on the live connection, shielded from the caller's
        cancellation: redis-py drops a connection whose write was cancelled half-way."""
        written = self._start_send(command, keys)
        if written is not None:
            await asyncio.shield(written)

    def _start_send(self, command: str, keys: tuple[bytes, ...]) -> asyncio.Future[None] | None:
        """Queue the command; everything queued in this loop iteration goes out in one write
        (a storm of new sockets subscribes hundreds of user channels at once). Resolves once
        written (or found broken: the reconnect then subscribes what is wanted)."""
        pubsub = self._pubsub
        conn = pubsub.connection if pubsub is not None else None
        if conn is None or not conn.is_connected:
            return None  # the reconnect subscribes everything wanted (and nothing else)
        if command == self._sub:
            for key in keys:
                self._unconfirmed[key] = self._unconfirmed.get(key, 0) + 1
        box = self._outbox
        if box is not None and box.conn is not conn:  # reconnected within this iteration
            self._flush_outbox()
            box = None
        if box is None:
            loop = asyncio.get_running_loop()
            box = self._outbox = _Outbox(conn, loop.create_future())
            loop.call_soon(self._flush_outbox)
        last = box.commands[-1] if box.commands else None
        # SUBSCRIBE a + SUBSCRIBE b → SUBSCRIBE a b. Not SSUBSCRIBE: one command may only name
        # channels of one slot (CROSSSLOT otherwise); those still share the one write.
        if last is not None and last[0] == command and not self._sharded:
            last.extend(keys)
        else:
            box.commands.append([command, *keys])
        return box.written

    def _flush_outbox(self) -> None:
        box, self._outbox = self._outbox, None
        if box is None:
            return
        task = asyncio.ensure_future(self._write(box.conn, box.commands))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)
        task.add_done_callback(lambda _: _resolve(box.written))

    async def _write(self, conn: Any, commands: list[list[Any]]) -> None:
        try:
            await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("pub/sub write failed (%s); reconnecting", type(exc).__name__)
            self._broken = True  # the reader loop notices and reconnects

    # -- the connection -----------------------------------------------------------------
    async def _session(self, mark_healthy: Callable[[], None]) -> None:
        pubsub = self._opening = self._client.pubsub(push_handler_func=_as_is)
        await pubsub.connect()  # type: ignore[no-untyped-call]
        conn = pubsub.connection
        assert conn is not None
        self._broken = False
        self._unconfirmed.clear()
        batch = list(self._wanted.items())
        for _, wanted in batch:
            self._unconfirmed[wanted.key] = 1
        if self._connected_once:
            self._resubscribing = {wanted.key for _, wanted in batch}
            self._resubscribed = [channel for channel, _ in batch]
        self._pubsub, self._opening = pubsub, None
        for keys in _groups([wanted.key for _, wanted in batch], by_slot=self._sharded):
            await conn.send_command(self._sub, *keys, check_health=False)
        if self._connected_once:
            log.info("pub/sub reconnected; re-subscribing %d channels", len(batch))
        self._connected_once = True
        self._connected.set()
        mark_healthy()
        if self._resubscribing is not None and not self._resubscribing:
            await self._finish_resubscribe()
        await self._read(pubsub)

    async def _read(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        last_seen = loop.time()
        ping_sent: float | None = None
        while True:
            if self._broken or pubsub.connection is None or not pubsub.connection.is_connected:
                raise RedisConnectionError("pub/sub connection broken")
            message = await pubsub.get_message(timeout=self.poll_interval)
            now = loop.time()
            if message is None:
                if ping_sent is not None and now - ping_sent > self.pong_timeout:
                    raise RedisTimeoutError("pub/sub connection did not answer PING")
                if ping_sent is None and now - last_seen > self.ping_after:
                    await pubsub.connection.send_command("PING", check_health=False)
                    ping_sent = now
                continue
            last_seen, ping_sent = now, None
            await self._handle(message)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("message", "smessage"):
            channel = self._by_key.get(message["channel"])
            if channel is None:
                return  # unsubscribed meanwhile
            try:
                await self._on_message(channel, message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pub/sub message on %r could not be handled; skipped", channel)
        elif kind in ("subscribe", "ssubscribe"):
            await self._confirmed(message["channel"])
        elif kind == "sunsubscribe" and self._on_lost is not None:
            channel = self._by_key.get(message["channel"])
            if channel is not None:  # still wanted: the server dropped it (slot migrated)
                self._on_lost(channel)

    async def _confirmed(self, key: bytes) -> None:
        left = self._unconfirmed.get(key, 0) - 1
        if left > 0:
            self._unconfirmed[key] = left
            return  # a later SUBSCRIBE of this channel is still in flight
        self._unconfirmed.pop(key, None)
        channel = self._by_key.get(key)
        wanted = self._wanted.get(channel) if channel is not None else None
        if wanted is not None and not wanted.ready.done():
            wanted.ready.set_result(None)
        if self._resubscribing:
            self._resubscribing.discard(key)
            if not self._resubscribing:
                await self._finish_resubscribe()

    async def _finish_resubscribe(self) -> None:
        self._resubscribing = None
        channels = [c for c in self._resubscribed if c in self._wanted]
        self._resubscribed = []
        try:
            await self._on_resubscribed(channels)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("on_resubscribed failed")

    async def _drop_connection(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        opening, self._opening = self._opening, None
        self._connected.clear()
        self._unconfirmed.clear()
        self._resubscribing = None
        loop = asyncio.get_running_loop()
        for wanted in self._wanted.values():
            if wanted.ready.done():  # pending waiters keep their future; the reconnect resolves it
                wanted.ready = loop.create_future()
        for old in (pubsub, opening):
            if old is not None:
                try:
                    await old.aclose()  # type: ignore[no-untyped-call]
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a dead connection may fail to close
                    log.debug("closing the old pub/sub connection failed: %s", type(exc).__name__)


def _groups(keys: list[bytes], *, by_slot: bool) -> list[list[bytes]]:
    """Keys for (S)SUBSCRIBE commands: at most ``SUBSCRIBE_BATCH`` per command and, for
    sharded pub/sub, one slot per command (Redis refuses an SSUBSCRIBE across slots)."""
    if not by_slot:
        return [keys[i : i + SUBSCRIBE_BATCH] for i in range(0, len(keys), SUBSCRIBE_BATCH)]
    slots: dict[int, list[bytes]] = {}
    for key in keys:
        slots.setdefault(key_slot(key), []).append(key)
    return [
        group[i : i + SUBSCRIBE_BATCH]
        for group in slots.values()
        for i in range(0, len(group), SUBSCRIBE_BATCH)
    ]


def _fail(future: asyncio.Future[None], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # mark retrieved: waiters may all have gone


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _as_is(message: Any) -> Any:
    """RESP3 pub/sub pushes as they are. redis-py's default handler builds a debug line with
    ``str()`` of the whole message for every message received, logged or not."""
    return message
