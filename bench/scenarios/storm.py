"""Scenario 6, storm: handshakes/s per process with distinct users, then a reconnect storm.

Users are seeded straight into PostgreSQL (COPY, no Argon2) and their access tokens minted
with the nodes' JWT secret, so neither registration nor login is in any figure: only the
``/ws`` handshake (origin, token verify with its revocation lookups, presence, session start
with the user channel and ``broadcast`` joined, ``session.ready``).

* **handshakes** — ONE node; ``--storm-handshake-users`` sockets, one per user, opened with
  ``--connect-concurrency`` handshakes in flight per client process, until the last
  ``session.ready``; then all closed. ``--storm-rounds`` rounds (the first one also fills the
  per-user caches, as a user's first connect after a deploy does); the figure is the median
  of the rounds after the first.
* **storm** — two nodes A and B; ``--storm-sockets`` sockets (one per user) on A, each
  positioned in ``broadcast`` (``subscribe`` reply). Events are published at
  ``--storm-rate``/s from before the kill until after the last reconnect. A is killed with
  SIGKILL; every socket reconnects at once (no backoff: the worst case) to B with
  ``subscribe broadcast since=<its position>``. Reported: the time from the kill to the last
  socket's subscribe reply, handshakes refused as unauthorised (401 / 4001 / 4003 / 4010 —
  must be 0), other refusals (retried after 0.2–1 s), and events lost (published, never
  seen by a socket — must be 0).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import orjson

from bench.accounts import copy_users
from bench.client import HandshakeError
from bench.context import Context
from bench.pool import split
from bench.publishers import publisher_for
from bench.session import Session
from bench.stats import ms_summary
from bench.targets import SYNTHIA, open_many

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
    while True:
        message = await ctl.recv()
        if message == "done":
            return
        plan = [(args["url"], t) for t in args["tokens"]]
        started = time.monotonic()
        opened, errors = await open_many(SYNTHIA, plan, args["concurrency"])
        seconds = time.monotonic() - started
        await asyncio.gather(*(o.socket.close(timeout=10) for o in opened))
        ctl.send(
            {
                "connected": len(opened),
                "seconds": seconds,
                "errors": errors[:3],
                "error_count": len(errors),
            }
        )


async def _handshakes(ctx: Context, url: str, tokens: list[str]) -> dict[str, Any]:
    o = ctx.options
    job = ctx.pool.start(
        "bench.scenarios.storm:handshake_worker",
        [
            {"url": url, "tokens": part, "concurrency": o.connect_concurrency}
            for part in split(tokens, ctx.pool.size)
        ],
    )
    rounds = []
    for _ in range(o.storm_rounds):
        t0 = time.monotonic()
        job.send_all("go")
        reports = await job.recv_all()
        elapsed = time.monotonic() - t0
        connected = sum(r["connected"] for r in reports)
        rounds.append(
            {
                "connected": connected,
                "seconds": round(elapsed, 3),
                "per_s": round(connected / elapsed, 1),
                "errors": sum(r["error_count"] for r in reports),
                "error_samples": [e for r in reports for e in r["errors"]],
            }
        )
        ctx.say(
            f"storm handshakes: {connected} distinct users in {elapsed:.2f}s = {connected / elapsed:.0f}/s"
        )
        await asyncio.sleep(1.0)  # presence removals flush
    job.send_all("done")
    await job.finish()
    warm = [r["per_s"] for r in rounds[1:]] or [r["per_s"] for r in rounds]
    return {
        "users": len(tokens),
        "rounds": rounds,
        "cold_per_s": rounds[0]["per_s"],
        "per_s_median": statistics.median(warm),
    }


# -- the storm -------------------------------------------------------------------------------------
class StormClient:
    def __init__(self, token: str, max_events: int, rng: random.Random) -> None:
        self.token, self.rng = token, rng
        self.seen = bytearray(max_events)
        self.position: dict[str, Any] | None = None
        self.unauthorised = self.retries = 0
        self.reconnected_at: float | None = None  # time.time() of the subscribe reply on B

    def _take(self, frame: dict[str, Any]) -> None:
        if frame.get("event") == "notification" and frame.get("channel") == "broadcast":
            seq = frame.get("seq")
            if isinstance(seq, int) and 0 <= seq < len(self.seen):
                self.seen[seq] = 1
            self.position = {"offset": frame["offset"], "epoch": frame["epoch"]}

    async def open(self, url: str) -> Session:
        while True:
            try:
                session = await Session.open(url, self.token)
            except HandshakeError as exc:
                if exc.status == 401:
                    self.unauthorised += 1
                    raise
                self.retries += 1
            except Exception:  # noqa: BLE001 - 1013/503, timeouts, resets: retried
                self.retries += 1
            else:
                fields: dict[str, Any] = {"channel": "broadcast"}
                if self.position is not None:
                    fields["since"] = self.position
                command_id, _ = session.send("subscribe", **fields)
                try:
                    reply = await session.reply(command_id)
                except Exception:  # noqa: BLE001 - closed during the handshake, or no reply
                    code = session.ws.closed.result() if session.ws.closed.done() else None
                    session.ws.abort()
                    if code in UNAUTHORISED_CLOSES:
                        self.unauthorised += 1
                        raise
                    self.retries += 1
                else:
                    if not reply.get("ok"):
                        raise RuntimeError(f"subscribe refused: {reply}")
                    for frame in sorted(session.backlog, key=lambda f: f.get("offset", 0)):
                        self._take(frame)
                    session.drop_backlog()
                    if self.position is None:
                        self.position = {"offset": reply["offset"], "epoch": reply["epoch"]}
                    return session
            await asyncio.sleep(self.rng.uniform(0.2, 1.0))

    async def pump(self, session: Session, until: asyncio.Event | None) -> None:
        """Take frames until the socket closes (or ``until`` is set)."""
        while until is None or not until.is_set():
            try:
                payload, _ = await session.ws.recv(0.2)
            except TimeoutError:
                continue
            except ConnectionError:
                return
            self._take(orjson.loads(payload))


async def storm_worker(args: dict[str, Any], ctl: Any) -> dict[str, Any]:
    rng = random.Random(args["seed"])
    a, b = args["urls"]
    clients = [StormClient(t, args["max_events"], rng) for t in args["tokens"]]
    gate = asyncio.Semaphore(args["concurrency"])

    async def first(c: StormClient) -> Session:
        async with gate:
            return await c.open(a)

    sessions = await asyncio.gather(*(first(c) for c in clients))
    ctl.send({"ready": len(sessions)})
    stop = asyncio.Event()

    async def life(c: StormClient, s: Session) -> None:
        await c.pump(s, None)  # until A dies
        try:
            s2 = await c.open(b)
        except Exception:  # noqa: BLE001 - counted (unauthorised) in the report
            return
        c.reconnected_at = time.time()
        await c.pump(s2, stop)
        await s2.close()

    tasks = [asyncio.ensure_future(life(c, s)) for c, s in zip(clients, sessions, strict=True)]
    deadline = time.monotonic() + 300
    while sum(1 for c in clients if c.reconnected_at is not None or c.unauthorised) < len(clients):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    ctl.send({"reconnected": max((c.reconnected_at or 0.0) for c in clients)})
    message = await ctl.recv()  # publishing is over
    published = message["published"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(sum(c.seen[:published]) < published for c in clients):  # noqa: ASYNC110 - polls many counters
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*tasks)
    return {
        "lost": sum(published - sum(c.seen[:published]) for c in clients),
        "unauthorised": sum(c.unauthorised for c in clients),
        "retries": sum(c.retries for c in clients),
        "not_reconnected": sum(1 for c in clients if c.reconnected_at is None),
        "reconnected_at": [c.reconnected_at for c in clients if c.reconnected_at is not None],
    }


async def _storm(ctx: Context, tokens: list[str]) -> dict[str, Any]:
    o = ctx.options
    n = len(tokens)
    max_events = 100_000
    async with ctx.deploy(SYNTHIA, nodes=2) as dep:
        job = ctx.pool.start(
            "bench.scenarios.storm:storm_worker",
            [
                {
                    "urls": dep.urls,
                    "tokens": part,
                    "max_events": max_events,
                    "seed": i,
                    "concurrency": o.connect_concurrency,
                }
                for i, part in enumerate(split(tokens, ctx.pool.size))
            ],
        )
        await job.recv_all()
        ctx.say(f"storm: {n} sockets on node A")
        publisher = publisher_for(SYNTHIA, ctx.redis_url, dep.channel)
        await publisher.start()
        seq = 0
        loop = asyncio.get_running_loop()
        reconnected: list[float] = []

        async def publish_until(done: asyncio.Event) -> None:
            nonlocal seq
            start = loop.time()
            while not done.is_set():
                delay = start + seq / o.storm_rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await publisher.publish(seq)
                seq += 1

        done = asyncio.Event()
        pub = asyncio.ensure_future(publish_until(done))
        try:
            await asyncio.sleep(1.0)
            killed_at = time.time()
            dep.servers[0].process.kill()  # SIGKILL: no drain, no close frames
            reports = await job.recv_all()
            reconnected = [r["reconnected"] for r in reports]
            all_back = max(reconnected) - killed_at
            ctx.say(f"storm: all {n} reconnected to B {all_back:.2f}s after kill -9 A")
            await asyncio.sleep(1.0)  # live events after the storm, too
        finally:
            done.set()
            await pub
            await publisher.stop()
        job.send_all({"published": seq})
        finals = await job.finish()
    times = [t - killed_at for r in finals for t in r["reconnected_at"]]
    result = {
        "sockets": n,
        "events": seq,
        "seconds_to_all_reconnected": round(all_back, 3),
        "reconnect_after_kill": ms_summary(times),
        "reconnects_per_s": round(len(times) / all_back, 1) if all_back > 0 else None,
        **{
            k: sum(r[k] for r in finals)
            for k in ("lost", "unauthorised", "retries", "not_reconnected")
        },
    }
    ctx.say(
        f"storm: lost {result['lost']}, unauthorised {result['unauthorised']}, retries {result['retries']}"
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
        handshakes = await _handshakes(ctx, dep.urls[0], tokens[: o.storm_handshake_users])
    storm = await _storm(ctx, tokens[: o.storm_sockets])
    return {"handshakes": handshakes, "storm": storm}
