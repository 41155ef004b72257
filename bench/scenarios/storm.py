"""Scenario 6, storm: handshakes/s per process with distinct users, then a reconnect storm.

Users are seeded straight into PostgreSQL (COPY, no Argon2) and their access tokens minted
with the nodes' JWT secret, so neither registration nor login is in any figure: only the
``/ws`` handshake (origin, token verify with its revocation lookups, presence, session start
with the user channel and ``broadcast`` joined, ``session.ready``).

* **handshakes** — ONE node; ``--storm-handshake-users`` sockets, one per user, opened with
  ``--connect-concurrency`` handshakes in flight per client process, until the last
  ``session.ready`` (closing is not timed); then all closed. ``--storm-rounds`` rounds (the
  first one also fills the per-user caches, as a user's first connect after a deploy does);
  the figure is the median of the rounds after the first. The same rounds run against every
  peer named in ``--targets`` (one process each, no auth: accept and a ready frame), in the
  same run, with their ratios to synthia_rt. Each round also reads the server process's CPU
  seconds from /proc: ``server_cpu_ms_per_handshake`` and ``per_server_cpu_s`` (handshakes per
  second of server CPU) sit next to the wall rate — on 2 shared cores the client takes CPU
  from the server, so the CPU-normalised figure is what one process can do.
* **storm** — two nodes A and B; ``--storm-sockets`` sockets (one per user) on A, each
  positioned in ``broadcast`` (``subscribe`` reply). Events are published at
  ``--storm-rate``/s from before the kill until after the last reconnect. A is killed with
  SIGKILL; every socket reconnects at once (no backoff: the worst case) to B with
  ``subscribe broadcast since=<its position>``. Reported: the time from the kill to the last
  socket's subscribe reply and reconnects/s, handshakes refused as unauthorised (401 / 4001 /
  4003 / 4010 — must be 0), events lost (published, never seen by a reconnected socket — must
  be 0), retries and why, sockets not back within ``--storm-timeout`` (and where they were
  stuck), B's CPU during the storm and the kernel's accept-queue overflows.

The storm client follows the wire contract: a temporary refusal (``{"ok": false, "error":
{"temporary": true, "retry_after": N}}``, HTTP 429/503 with one) is retried after
``retry_after`` with jitter; other failures (close 1013 / 4008, resets, timeouts) after the
browser client's reconnect backoff (full jitter, 0.5 s doubling up to 30 s); all are counted
in ``retries`` with their cause, and only non-temporary errors fail a socket. Every wait has a
timeout (handshake, ``session.ready``, subscribe reply, close, each phase), so a stuck socket
is retried and counted, never waited for forever. One server behaviour is also bounded: a
subscribe whose ``since`` is more than ``OUTBOUND_QUEUE_SIZE`` (512) events behind is closed
4008 before its reply however fast the client reads (the replay overflows the socket's
outbound queue), so retrying it only repeats it; after ``MAX_OVERFLOWS`` such closes in a row
the socket gives up and is reported.

``--storm-rate`` is 5 events/s by default: B must carry the live fan-out of every socket that
is back on top of the storm, and 5,000 sockets × 20 events/s (100,000 deliveries/s) is more
than one process delivers on this machine (fanout scenario, 2,000 subscribers on one node:
31 % of a core at 10,000 deliveries/s, 69 % at 40,000/s), so at 20/s B never gets back to a
steady state whatever the reconnects do.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt
import orjson

from bench import procstat
from bench.accounts import copy_users
from bench.client import HandshakeError, WsClient, connect
from bench.context import Context
from bench.pool import split
from bench.publishers import publisher_for
from bench.stats import ms_summary, ratio
from bench.targets import LABELS, SYNTHIA, open_many, ws_url

UNAUTHORISED_CLOSES = {4001, 4003, 4010}


async def seed_users(database_url: str, count: int) -> list[str]:
    import asyncpg

    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(count)]
    conn = await asyncpg.connect(database_url)
    try:
        await copy_users(conn, ((uid, f"storm-{uid.hex}@bench.invalid", now) for uid in ids))
    finally:
        await conn.close()
    return [str(u) for u in ids]


def mint(secret: str, user_ids: list[str]) -> list[str]:
    """Access tokens as a login issues them (with a ``sid``), valid for an hour."""
    now = time.time()
    return [
        jwt.encode(
            {
                "iss": "synthia-rt",
                "aud": "synthia",
                "sub": uid,
                "iat": round(now, 6),
                "exp": int(now) + 3600,
                "jti": uuid.uuid4().hex,
                "typ": "access",
                "role": "user",
                "auth_time": round(now, 6),
                "sid": uuid.uuid4().hex,
            },
            secret,
            algorithm="HS256",
        )
        for uid in user_ids
    ]


# -- handshakes/s ----------------------------------------------------------------------------------
async def handshake_worker(args: dict[str, Any], ctl: Any) -> None:
    """Per round: open every socket of the plan (→ report), then on "close" close them (→ ack)."""
    plan: list[tuple[str, str | None]] = [(args["url"], t) for t in args["tokens"]]
    while True:
        message = await ctl.recv()
        if message == "done":
            return
        started = time.monotonic()
        opened, errors = await open_many(args["target"], plan, args["concurrency"])
        seconds = time.monotonic() - started
        ctl.send(
            {
                "connected": len(opened),
                "seconds": seconds,
                "errors": errors[:3],
                "error_count": len(errors),
            }
        )
        await ctl.recv()  # "close": after the coordinator read the server's CPU
        await asyncio.gather(*(o.socket.close(timeout=10) for o in opened))
        ctl.send({"closed": len(opened)})


def _per_cpu_s(connected: int, cpu_s: float) -> float | None:
    return round(connected / cpu_s, 1) if cpu_s > 0 else None


def _cpu_ms_each(connected: int, cpu_s: float) -> float | None:
    return round(cpu_s * 1000 / connected, 3) if connected else None


async def _handshakes(
    ctx: Context, target: str, url: str, pids: list[int], tokens: list[str | None]
) -> dict[str, Any]:
    """``--storm-rounds`` rounds of ``len(tokens)`` handshakes against one server process.

    Per round: wall time from "go" to the last ready frame (closing is not timed), and the
    CPU seconds the server's processes (``pids``) and the client workers consumed meanwhile.
    On 2 shared cores the client competes with the server, so the wall rate is a floor; the
    rate per second of server CPU is what one server process can do with a core to itself.
    """
    o = ctx.options
    label = LABELS[target]
    job = ctx.pool.start(
        "bench.scenarios.storm:handshake_worker",
        [
            {"target": target, "url": url, "tokens": part, "concurrency": o.connect_concurrency}
            for part in split(tokens, ctx.pool.size)
        ],
    )
    client_pids = ctx.pool.pids()
    rounds = []
    for _ in range(o.storm_rounds):
        server_cpu, client_cpu = procstat.total_cpu(pids), procstat.total_cpu(client_pids)
        t0 = time.monotonic()
        job.send_all("go")
        reports = await job.recv_all()
        elapsed = time.monotonic() - t0
        server_cpu = procstat.total_cpu(pids) - server_cpu
        client_cpu = procstat.total_cpu(client_pids) - client_cpu
        job.send_all("close")
        await job.recv_all()
        connected = sum(r["connected"] for r in reports)
        rounds.append(
            {
                "connected": connected,
                "seconds": round(elapsed, 3),
                "per_s": round(connected / elapsed, 1),
                "server_cpu_s": round(server_cpu, 3),
                "server_cpu_ms_per_handshake": _cpu_ms_each(connected, server_cpu),
                "per_server_cpu_s": _per_cpu_s(connected, server_cpu),
                "client_cpu_s": round(client_cpu, 3),
                "errors": sum(r["error_count"] for r in reports),
                "error_samples": [e for r in reports for e in r["errors"]],
            }
        )
        ctx.say(
            f"storm handshakes {label}: {connected} in {elapsed:.2f}s = {connected / elapsed:.0f}/s, "
            f"server CPU {server_cpu:.2f}s = {rounds[-1]['server_cpu_ms_per_handshake']} ms each "
            f"({rounds[-1]['per_server_cpu_s']}/CPU-s), client CPU {client_cpu:.2f}s"
        )
        await asyncio.sleep(1.0)  # presence removals flush
    job.send_all("done")
    await job.finish()
    warm = rounds[1:] or rounds

    def median(key: str) -> float | None:
        values = [r[key] for r in warm if r[key] is not None]
        return round(statistics.median(values), 3) if values else None

    return {
        "target": target,
        "label": label,
        "users": len(tokens) if target == SYNTHIA else None,
        "sockets": len(tokens),
        "rounds": rounds,
        "cold_per_s": rounds[0]["per_s"],
        "per_s_median": median("per_s"),
        "server_cpu_ms_per_handshake": median("server_cpu_ms_per_handshake"),
        "per_server_cpu_s": median("per_server_cpu_s"),
        "errors": sum(r["errors"] for r in rounds),
    }


async def _peer_handshakes(ctx: Context, target: str, sockets: int) -> dict[str, Any]:
    """The same rounds against a peer (no auth: its handshake is accept + a ready frame)."""
    async with ctx.deploy(target, nodes=1) as dep:
        return await _handshakes(ctx, target, dep.urls[0], dep.node_pids()[0], [None] * sockets)


def _ratios(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """``other``'s rates over synthia_rt's (as the idle scenario reports them)."""
    return {
        "per_s_ratio_to_synthia": ratio(other["per_s_median"], base["per_s_median"]),
        "per_server_cpu_s_ratio_to_synthia": ratio(
            other["per_server_cpu_s"], base["per_server_cpu_s"]
        ),
    }


# -- the storm -------------------------------------------------------------------------------------
# connect + upgrade + session.ready, one attempt. Generous on purpose: a node that answers
# late still answers, but a client that gives up has made it do the handshake for nothing and
# comes back with another one (the browser client never gives up on an upgrade).
HANDSHAKE_TIMEOUT = 60.0
REPLY_TIMEOUT = 30.0  # the subscribe reply, one attempt
CLOSE_TIMEOUT = 5.0  # the close handshake of one socket at the end
# Refusals without retry_after (1013, 4008, resets, timeouts): synthia-client.js's reconnect
# backoff, full jitter: uniform(0, min(max, initial × factor^attempt)), attempt reset once back.
BACKOFF = (0.5, 2.0, 30.0)  # initial s, factor, max s
RETRY_JITTER = (1.0, 1.5)  # retry_after × this: refused sockets do not all come back at once
MAX_OVERFLOWS = 3  # resubscribes closed 4008 in a row before a socket gives up (see open)


class Unauthorised(Exception):
    """A good token was refused (401 / 4001 / 4003 / 4010): counted, never retried."""


class Refused(Exception):
    """A non-temporary refusal (a subscribe error with ``temporary: false``, 400/403...)."""


class Retry(Exception):
    """A temporary refusal or a stuck attempt: back off (at least ``delay``) and try again."""

    def __init__(self, cause: str, delay: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.delay = delay


def _retry_after(body: bytes) -> float | None:
    """``error.retry_after`` of an HTTP refusal's JSON body, if any."""
    try:
        error = orjson.loads(body).get("error", {})
    except (orjson.JSONDecodeError, AttributeError):
        return None
    value = error.get("retry_after") if isinstance(error, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _reply_to(command_id: int) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("id") == command_id and "event" not in f


class StormClient:
    """One user's socket: subscribed to ``broadcast``, re-subscribed with ``since`` after a drop.

    Once subscribed, frames are taken in the lean client's ``data_received`` callback (no task
    and no polling per socket), so thousands of idle sockets cost the client nothing between
    events; the socket is only awaited for its close.
    """

    def __init__(
        self, token: str, rng: random.Random, causes: collections.Counter[str] | None = None
    ) -> None:
        self.token, self.rng = token, rng
        self.causes: collections.Counter[str] = (
            causes if causes is not None else collections.Counter()
        )
        self.seen = bytearray(1024)  # seen[seq] = 1 once event ``seq`` arrived
        self.have = self.duplicates = 0
        self.position: dict[str, Any] | None = None
        self.unauthorised = self.retries = 0
        self.unrecovered = 0  # subscribes with ``since`` answered recovered=false
        self.overflows = 0  # 4008 closes in a row answering a subscribe with ``since``
        self.attempt = 0  # failed attempts since the last success (the backoff's exponent)
        self.state = "new"  # where the client is: shown when it never got back
        self.ws: WsClient | None = None
        self.reconnected_at: float | None = None  # time.time() of the subscribe reply on B
        self._ids = itertools.count(1)

    # -- events ----------------------------------------------------------------------------------
    def _take(self, frame: dict[str, Any], move: bool = True) -> None:
        """Count a broadcast event; ``move``: advance the position to it.

        Events that arrive before the subscribe reply (the session's auto-joined ``broadcast``
        goes live at once) are counted but do not move the position: they are newer than the
        replay that follows the reply, and a retry must ask again from before the gap.
        """
        if frame.get("event") == "notification" and frame.get("channel") == "broadcast":
            seq = frame.get("seq")
            if isinstance(seq, int) and seq >= 0:
                if seq >= len(self.seen):
                    self.seen.extend(bytes(seq + 1024 - len(self.seen)))
                if self.seen[seq]:
                    self.duplicates += 1
                else:
                    self.seen[seq] = 1
                    self.have += 1
            if move and "offset" in frame and "epoch" in frame:
                self.position = {"offset": frame["offset"], "epoch": frame["epoch"]}

    def _on_message(self, ws: WsClient, payload: bytes, is_text: bool) -> None:
        if is_text:
            self._take(orjson.loads(payload))

    def lost(self, published: int) -> int:
        return published - sum(self.seen[:published])

    # -- connecting ------------------------------------------------------------------------------
    async def open(self, url: str) -> WsClient:
        """Connect, wait for ``session.ready``, subscribe (with ``since`` once positioned).

        Temporary refusals and stuck attempts are retried (``retries``, and ``causes`` says
        why); unauthorised ones raise :class:`Unauthorised`, other final ones :class:`Refused`.
        """
        while True:
            try:
                ws = await self._attempt(url)
            except Retry as exc:
                self.retries += 1
                self.causes[exc.cause] += 1
                if exc.cause == "close 4008" and self.position is not None:
                    # The server closes 4008 when a ``since`` replay is longer than its outbound
                    # queue, whatever the client reads: retrying only repeats it (and grows).
                    self.overflows += 1
                    if self.overflows >= MAX_OVERFLOWS:
                        self.state = "gave up: 4008 on every resubscribe"
                        raise Refused(
                            f"closed 4008 on {self.overflows} subscribes since {self.position}"
                        ) from exc
                self.state = f"waiting to retry ({exc.cause})"
                initial, factor, most = BACKOFF
                delay = self.rng.uniform(0, min(most, initial * factor**self.attempt))
                self.attempt += 1
                if exc.delay is not None:  # the server said how long: at least that
                    delay = max(delay, exc.delay * self.rng.uniform(*RETRY_JITTER))
                await asyncio.sleep(delay)
                continue
            except Unauthorised:
                self.unauthorised += 1
                self.state = "unauthorised"
                raise
            self.ws = ws
            self.overflows = self.attempt = 0
            self.state = "subscribed"
            return ws

    async def _attempt(self, url: str) -> WsClient:
        self.state = "connecting"
        try:
            ws = await connect(
                ws_url(SYNTHIA, url),
                subprotocols=["synthia.v1", f"bearer.{self.token}"],
                timeout=HANDSHAKE_TIMEOUT,
            )
        except HandshakeError as exc:
            if exc.status == 401:
                raise Unauthorised(f"HTTP {exc.status}") from exc
            if exc.status in (429, 503):
                raise Retry(f"HTTP {exc.status}", _retry_after(exc.body)) from exc
            raise Refused(f"HTTP {exc.status}") from exc
        except TimeoutError as exc:  # "no TCP connection" / "no upgrade" in HANDSHAKE_TIMEOUT
            raise Retry(str(exc) or "connect timeout") from exc
        except OSError as exc:  # refused, reset (ConnectionError is an OSError)
            raise Retry(type(exc).__name__) from exc
        try:
            self.state = "waiting for session.ready"
            ready = await self._next(ws, HANDSHAKE_TIMEOUT, lambda f: True)
            if ready.get("event") != "session.ready":
                raise Refused(f"first frame was not session.ready: {str(ready)[:80]}")
            while True:
                self.state = "waiting for the subscribe reply"
                command_id = next(self._ids)
                fields: dict[str, Any] = {"channel": "broadcast"}
                if self.position is not None:
                    fields["since"] = self.position
                ws.send_text(orjson.dumps({"id": command_id, "op": "subscribe", **fields}))
                reply = await self._next(ws, REPLY_TIMEOUT, _reply_to(command_id))
                if reply.get("ok"):
                    break
                error = reply.get("error") or {}
                code = str(error.get("code"))
                if not error.get("temporary"):
                    raise Refused(f"subscribe refused: {code}")
                # The wire contract: a temporary refusal is retried after retry_after (jittered),
                # on the same socket (it is open and authenticated; only the command failed).
                self.retries += 1
                self.causes[f"subscribe {code}"] += 1
                self.state = f"waiting to retry (subscribe {code})"
                wait = float(error.get("retry_after") or BACKOFF[0])
                await asyncio.sleep(wait * self.rng.uniform(*RETRY_JITTER))
        except TimeoutError as exc:
            ws.abort()
            raise Retry(f"stuck: {self.state}") from exc
        except ConnectionError as exc:
            closed = ws.closed.result() if ws.closed.done() else 1006
            if closed in UNAUTHORISED_CLOSES:
                raise Unauthorised(f"close {closed}") from exc
            raise Retry(f"close {closed}") from exc
        except BaseException:
            ws.abort()
            raise
        if self.position is None:
            self.position = {"offset": reply["offset"], "epoch": reply["epoch"]}
        elif reply.get("recovered") is False:
            self.unrecovered += 1
        # What arrived behind the reply (the replay), in order, then every frame in the callback.
        while not ws.inbox.empty():
            payload, is_text = ws.inbox.get_nowait()
            self._on_message(ws, payload, is_text)
        ws.on_message = self._on_message
        return ws

    async def _next(
        self, ws: WsClient, timeout: float, match: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """The first text frame that ``match``es (broadcast events before it are taken)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            payload, is_text = await ws.recv(max(0.001, deadline - loop.time()))
            if not is_text:
                continue
            frame: dict[str, Any] = orjson.loads(payload)
            if match(frame):
                return frame
            self._take(frame, move=False)


def _states(clients: list[StormClient], keep: Callable[[StormClient], bool]) -> dict[str, int]:
    return dict(collections.Counter(c.state for c in clients if keep(c)).most_common())


async def storm_worker(args: dict[str, Any], ctl: Any) -> dict[str, Any]:
    """Phases: open on A (→ ready), wait for A's death and every reconnect to B (→ reconnected),
    wait for ``published`` and every event, close (→ the return value)."""
    rng = random.Random(args["seed"])
    a, b = args["urls"]
    phase_timeout = float(args["phase_timeout"])
    causes: collections.Counter[str] = collections.Counter()
    clients = [StormClient(t, rng, causes) for t in args["tokens"]]
    gate = asyncio.Semaphore(args["concurrency"])

    async def first(c: StormClient) -> None:
        async with gate:
            await c.open(a)

    # 1. every socket on A (positioned in ``broadcast``)
    tasks = [asyncio.ensure_future(first(c)) for c in clients]
    done, pending = await asyncio.wait(tasks, timeout=phase_timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    on_a = [c for c in clients if c.ws is not None]
    ctl.send(
        {
            "ready": len(on_a),
            "not_on_a": _states(clients, lambda c: c.ws is None),
            "errors": [repr(t.exception())[:200] for t in done if t.exception()][:3],
        }
    )

    # 2. A is killed: every socket reconnects at once to B
    settled = asyncio.Event()
    left = len(on_a)

    def settle(back: bool) -> None:
        nonlocal left
        left -= 1
        if back:
            ctl.progress(1)  # the coordinator's "n/N back on B" lines
        if left == 0:
            settled.set()

    failures: list[str] = []

    async def life(c: StormClient) -> None:
        assert c.ws is not None
        await asyncio.shield(c.ws.closed)  # until A dies
        c.ws = None
        try:
            await c.open(b)
        except (Unauthorised, Refused) as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            settle(False)
            return
        c.reconnected_at = time.time()
        settle(True)
        while True:  # dropped by B before the end: back again with ``since`` (counted)
            assert c.ws is not None
            await asyncio.shield(c.ws.closed)
            c.causes["dropped by B"] += 1
            c.ws = None
            await c.open(b)

    lives = [asyncio.ensure_future(life(c)) for c in on_a]
    if on_a:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(settled.wait(), phase_timeout + HANDSHAKE_TIMEOUT)
    back = [c.reconnected_at for c in on_a if c.reconnected_at is not None]
    ctl.send(
        {
            "reconnected": len(back),
            "last": max(back, default=None),
            "not_reconnected": _states(on_a, lambda c: c.reconnected_at is None),
        }
    )

    # 3. publishing is over: wait (10 s at most) for every event on every socket, then close
    published = (await ctl.recv())["published"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while loop.time() < deadline and any(  # noqa: ASYNC110 - counters, no event to wait on
        c.have < published for c in on_a if c.reconnected_at is not None
    ):
        await asyncio.sleep(0.1)
    for task in lives:
        task.cancel()
    await asyncio.gather(*lives, return_exceptions=True)
    sockets = [c.ws for c in on_a if c.ws is not None]
    codes = await asyncio.gather(*(ws.close(timeout=CLOSE_TIMEOUT) for ws in sockets))
    reconnected = [c for c in on_a if c.reconnected_at is not None]
    return {
        "sockets": len(clients),
        "on_a": len(on_a),
        "lost": sum(c.lost(published) for c in reconnected),
        "unrecovered": sum(c.unrecovered for c in clients),
        "duplicates": sum(c.duplicates for c in reconnected),
        "unauthorised": sum(c.unauthorised for c in clients),
        "retries": sum(c.retries for c in clients),
        "retry_causes": dict(causes.most_common()),
        "not_reconnected": len(on_a) - len(reconnected),
        "not_reconnected_states": _states(on_a, lambda c: c.reconnected_at is None),
        "failures": failures[:5],
        "abnormal_closes": sum(1 for code in codes if code == 1006),
        "reconnected_at": [c.reconnected_at for c in reconnected],
    }


def _merge(counters: list[dict[str, int]]) -> dict[str, int]:
    total: collections.Counter[str] = collections.Counter()
    for c in counters:
        total.update(c)
    return dict(total.most_common())


async def _storm(ctx: Context, tokens: list[str]) -> dict[str, Any]:
    o = ctx.options
    n = len(tokens)
    async with ctx.deploy(SYNTHIA, nodes=2) as dep:
        job = ctx.pool.start(
            "bench.scenarios.storm:storm_worker",
            [
                {
                    "urls": dep.urls,
                    "tokens": part,
                    "seed": i,
                    "concurrency": o.connect_concurrency,
                    "phase_timeout": o.storm_timeout,
                }
                for i, part in enumerate(split(tokens, ctx.pool.size))
            ],
        )
        ready = await job.recv_all()
        on_a = sum(r["ready"] for r in ready)
        ctx.say(f"storm: {on_a} of {n} sockets on node A")
        if on_a < n:
            ctx.say(f"storm: not on A: {_merge([r['not_on_a'] for r in ready])}")
        publisher = publisher_for(SYNTHIA, ctx.redis_url, dep.channel)
        await publisher.start()
        seq = 0
        loop = asyncio.get_running_loop()
        back = 0

        def count(k: int) -> None:
            nonlocal back
            back += k

        job.on_progress = count

        async def publish_until(done: asyncio.Event) -> None:
            nonlocal seq
            start = loop.time()
            while not done.is_set():
                delay = start + seq / o.storm_rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await publisher.publish(seq)
                seq += 1

        async def tick(killed_at: float) -> None:
            while True:
                await asyncio.sleep(2.0)
                ctx.say(
                    f"storm: {back}/{on_a} back on B, {time.time() - killed_at:.0f}s after the kill"
                )

        done = asyncio.Event()
        pub = asyncio.ensure_future(publish_until(done))
        ticker: asyncio.Future[None] | None = None
        try:
            await asyncio.sleep(1.0)
            drops_before = procstat.listen_drops()
            b_pids = dep.node_pids()[1]
            b_cpu = procstat.total_cpu(b_pids)
            killed_at = time.time()
            dep.servers[0].process.kill()  # SIGKILL: no drain, no close frames
            ticker = asyncio.ensure_future(tick(killed_at))
            reports = await job.recv_all()
            ticker.cancel()
            drops_after = procstat.listen_drops()
            b_cpu = procstat.total_cpu(b_pids) - b_cpu
            storm_seconds = time.time() - killed_at
            lasts = [r["last"] for r in reports if r["last"] is not None]
            all_back = (max(lasts) - killed_at) if lasts else None
            missing = sum(sum(r["not_reconnected"].values()) for r in reports)
            if missing:
                ctx.say(
                    f"storm: {missing} NOT reconnected after {o.storm_timeout:.0f}s: "
                    f"{_merge([r['not_reconnected'] for r in reports])}"
                )
            else:
                ctx.say(f"storm: all {on_a} reconnected to B {all_back:.2f}s after kill -9 A")
            await asyncio.sleep(1.0)  # live events after the storm, too
        finally:
            if ticker is not None:
                ticker.cancel()
            done.set()
            await pub
            await publisher.stop()
        job.send_all({"published": seq})
        finals = await job.finish()
    times = [t - killed_at for r in finals for t in r["reconnected_at"]]
    reconnected = len(times)
    result = {
        "sockets": n,
        "on_a": on_a,
        "events": seq,
        "seconds_to_all_reconnected": round(all_back, 3)
        if all_back is not None and not missing
        else None,
        "seconds_to_last_reconnect": round(all_back, 3) if all_back is not None else None,
        "reconnect_after_kill": ms_summary(times),
        "reconnects_per_s": round(reconnected / all_back, 1) if all_back else None,
        "reconnected": reconnected,
        **{
            k: sum(r[k] for r in finals)
            for k in (
                "lost",
                "unrecovered",
                "duplicates",
                "unauthorised",
                "retries",
                "not_reconnected",
                "abnormal_closes",
            )
        },
        "retry_causes": _merge([r["retry_causes"] for r in finals]),
        "not_reconnected_states": _merge([r["not_reconnected_states"] for r in finals]),
        "error_samples": [f for r in finals for f in r["failures"]][:5],
        # B's CPU from the kill until every worker reported: ~1 s/s means B was the bottleneck
        "node_b_cpu_s": round(b_cpu, 2),
        "node_b_cpu_pct": round(100 * b_cpu / storm_seconds, 1) if storm_seconds > 0 else None,
        # machine-wide: a full accept queue on B drops SYNs, which only shows as slow connects
        "listen_overflows": drops_after["ListenOverflows"] - drops_before["ListenOverflows"],
    }
    ctx.say(
        f"storm: lost {result['lost']}, unauthorised {result['unauthorised']}, "
        f"retries {result['retries']} {result['retry_causes']}, "
        f"not reconnected {result['not_reconnected']}"
    )
    return result


async def run(ctx: Context) -> dict[str, Any]:
    o = ctx.options
    if ctx.synthia is None:  # --node: someone else's nodes, whose database and key we don't hold
        return {
            "skipped": "seeds users into the bench's own database and kills a node: not with --node"
        }
    users = max(o.storm_handshake_users, o.storm_sockets)
    async with ctx.deploy(SYNTHIA, nodes=1) as dep:  # migrates the database
        ids = await seed_users(ctx.synthia.database_url, users)
        tokens = mint(ctx.synthia.jwt_secret, ids)
        handshakes = await _handshakes(
            ctx,
            SYNTHIA,
            dep.urls[0],
            dep.node_pids()[0],
            list(tokens[: o.storm_handshake_users]),
        )
    peers: dict[str, Any] = {}
    for target in o.targets:
        if target != SYNTHIA:
            peers[target] = await _peer_handshakes(ctx, target, o.storm_handshake_users)
            peers[target].update(_ratios(handshakes, peers[target]))
    storm = await _storm(ctx, tokens[: o.storm_sockets])
    result: dict[str, Any] = {"handshakes": handshakes, "storm": storm}
    if peers:
        result["handshake_peers"] = peers
    return result
