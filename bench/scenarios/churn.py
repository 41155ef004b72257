"""Scenario 5, churn: sockets keep dropping and reconnecting with ``since`` → nothing is missed.

Each socket behaves like a careful client: it keeps its position ``(offset, epoch)`` in
``broadcast``; it lives 0.3–2 s, then drops (half close cleanly, half just vanish), waits a
jittered 0–300 ms, reconnects to a random node and sends ``subscribe`` ``broadcast`` with
``since`` = its position. Live events that arrive before the reply are held back and merged
after it by offset (exactly what protocol.md asks of a client). Meanwhile the coordinator
publishes at a fixed rate. At the end every socket reconnects once more and catches up; then
every published event must have reached every socket (``missed`` = 0). ``gaps`` counts the
times a socket saw an offset jump — an event the server failed to replay.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import orjson

from bench.context import Context
from bench.pool import split
from bench.publishers import publisher_for
from bench.session import Session
from bench.stats import ms_summary
from bench.targets import SYNTHIA

LIFETIME = (0.3, 2.0)  # seconds a connection lives
BACKOFF = (0.0, 0.3)  # seconds before reconnecting


class Client:
    def __init__(self, urls: list[str], token: str, max_events: int, rng: random.Random) -> None:
        self.urls, self.token, self.rng = urls, token, rng
        self.seen = bytearray(max_events)
        self.offset: int | None = None
        self.epoch: str | None = None
        self.gaps = self.duplicates = self.reconnects = self.not_recovered = self.failures = 0
        self.connect_times: list[float] = []
        self.catch_up_times: list[float] = []
        self.positioned = asyncio.Event()  # set once the first subscribe reply gave a position

    def _take(self, frame: dict[str, Any]) -> None:
        if frame.get("event") != "notification" or frame.get("channel") != "broadcast":
            return
        offset, epoch = frame["offset"], frame["epoch"]
        if self.offset is not None and epoch == self.epoch:
            if offset <= self.offset:
                self.duplicates += 1
                return
            if offset != self.offset + 1:
                self.gaps += 1
        self.offset, self.epoch = offset, epoch
        self.seen[frame["seq"]] = 1

    async def _session(self, stop: asyncio.Event, final: bool) -> None:
        t0 = time.monotonic()
        session = await Session.open(self.rng.choice(self.urls), self.token)
        self.connect_times.append(time.monotonic() - t0)
        try:
            fields: dict[str, Any] = {"channel": "broadcast"}
            if self.offset is not None:
                fields["since"] = {"offset": self.offset, "epoch": self.epoch}
            command_id, _ = session.send("subscribe", **fields)
            reply = await session.reply(command_id)
            if not reply.get("ok"):
                raise RuntimeError(f"subscribe refused: {reply}")
            self.catch_up_times.append(time.monotonic() - t0)
            held = sorted(
                (f for f in session.backlog if f.get("channel") == "broadcast"),
                key=lambda f: f["offset"],
            )
            session.drop_backlog()
            if self.offset is None:
                self.offset, self.epoch = reply["offset"], reply["epoch"]
                self.positioned.set()
            elif not reply.get("recovered"):
                self.not_recovered += 1
            # Replayed events follow the reply in offset order; a held live event goes in just
            # before the first later frame (or at the end), so offsets are taken in order.
            deadline = time.monotonic() + (1.0 if final else self.rng.uniform(*LIFETIME))
            while (final or not stop.is_set()) and time.monotonic() < deadline:
                try:
                    payload, _ = await session.ws.recv(0.1)
                except TimeoutError:
                    continue
                frame = orjson.loads(payload)
                while held and held[0]["offset"] < frame.get("offset", 0):
                    self._take(held.pop(0))
                self._take(frame)
            for frame in held:
                self._take(frame)
        finally:
            if final or self.rng.random() < 0.5:
                await session.close()
            else:
                session.ws.abort()  # vanish: no close frame, the server only sees the TCP reset

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._session(stop, final=False)
            except Exception:  # noqa: BLE001 - a failed reconnect is retried, and counted
                self.failures += 1
            self.reconnects += 1
            await asyncio.sleep(self.rng.uniform(*BACKOFF))
        await self._session(stop, final=True)  # catch up one last time


async def worker(args: dict[str, Any], ctl: Any) -> dict[str, Any]:
    rng = random.Random(args["seed"])
    clients = [Client(args["urls"], token, args["max_events"], rng) for token in args["tokens"]]
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(c.run(stop)) for c in clients]
    await asyncio.wait_for(asyncio.gather(*(c.positioned.wait() for c in clients)), 60)
    ctl.send({"ready": len(clients)})
    message = await ctl.recv()  # publishing is over
    stop.set()
    await asyncio.gather(*tasks)
    published = message["published"]
    return {
        "missed": sum(published - sum(c.seen[:published]) for c in clients),
        "gaps": sum(c.gaps for c in clients),
        "duplicates": sum(c.duplicates for c in clients),
        "reconnects": sum(c.reconnects for c in clients),
        "not_recovered": sum(c.not_recovered for c in clients),
        "failures": sum(c.failures for c in clients),
        "connect_times": [t for c in clients for t in c.connect_times],
        "catch_up_times": [t for c in clients for t in c.catch_up_times],
    }


async def run(ctx: Context) -> dict[str, Any]:
    o = ctx.options
    events = int(o.churn_rate * o.churn_seconds)
    async with ctx.deploy(SYNTHIA, nodes=2) as dep:
        await ctx.ensure_accounts(o.churn_sockets, dep.urls)
        tokens = [t for _, t in ctx.plan(SYNTHIA, dep.urls, o.churn_sockets)]
        job = ctx.pool.start(
            "bench.scenarios.churn:worker",
            [
                {"urls": dep.urls, "tokens": part, "max_events": events, "seed": i}
                for i, part in enumerate(split(tokens, ctx.pool.size))
            ],
        )
        await job.recv_all()
        publisher = publisher_for(SYNTHIA, ctx.redis_url, dep.channel)
        await publisher.start()
        try:
            ctx.say(
                f"churn: {o.churn_sockets} sockets over {len(dep.urls)} nodes, {o.churn_rate}/s for {o.churn_seconds}s"
            )
            loop = asyncio.get_running_loop()
            start = loop.time()
            with ctx.bar(events, "churn: publishing") as bar:
                for seq in range(events):
                    delay = start + seq / o.churn_rate - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await publisher.publish(seq)
                    bar.update(1)
        finally:
            await publisher.stop()
        job.send_all({"published": events})
        reports = await job.finish()
    result = {
        "sockets": o.churn_sockets,
        "events": events,
        "expected_deliveries": events * o.churn_sockets,
        **{
            k: sum(r[k] for r in reports)
            for k in ("missed", "gaps", "duplicates", "reconnects", "not_recovered", "failures")
        },
        "reconnect": ms_summary([t for r in reports for t in r["connect_times"]]),
        "catch_up": ms_summary([t for r in reports for t in r["catch_up_times"]]),
    }
    ctx.say(
        f"churn: {result['reconnects']} reconnects, missed {result['missed']}, gaps {result['gaps']}, "
        f"not recovered {result['not_recovered']}"
    )
    return result
