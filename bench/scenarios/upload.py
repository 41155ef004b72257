"""Scenario 3, upload: images of 1–10 MiB in chunks over the socket → MB/s.

``analysis.start`` (size, sha256, content type), then binary chunks of ``max_chunk_bytes``
with up to ``--upload-window`` chunks in flight, each acknowledged by a direct
``upload.progress``; timed from the first chunk sent to the acknowledgement of the last one
(bytes durably stored). Then K sockets (K users) upload at once → aggregate MB/s. Each upload
is a distinct valid JPEG; after each round the bench waits for the analyses to end (not
timed), so background decoding does not eat into the next measurement.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from bench.context import Context
from bench.images import MIB, jpeg_of_size, sha256_hex
from bench.session import Session
from bench.targets import SYNTHIA

MB = 1_000_000  # throughput in MB/s (10^6 bytes), sizes in MiB
_seed = iter(range(10_000, 1 << 30))


async def upload(session: Session, data: bytes, window: int) -> dict[str, Any]:
    """One upload; returns its timings. Leaves the analysis running (see ``settle``)."""
    reply = await session.command(
        "analysis.start",
        kind="facial",
        content_type="image/jpeg",
        size=len(data),
        sha256=sha256_hex(data),
    )
    if reply.get("cached"):
        raise RuntimeError("an upload image was answered from the cache")
    aid = reply["analysis_id"]
    chunk = int(reply["upload"]["max_chunk_bytes"])
    head = uuid.UUID(aid).bytes
    acked = 0

    async def ack() -> int:
        frame = await session.wait(
            lambda f: (
                f.get("event") in ("upload.progress", "analysis.error")
                and f.get("analysis_id") == aid
            )
        )
        if frame["event"] == "analysis.error":
            raise RuntimeError(f"upload refused: {frame.get('code')}: {frame.get('message')}")
        return int(frame["offset"])

    started = time.perf_counter()
    for offset in range(0, len(data), chunk):
        while offset - acked >= window * chunk:
            acked = await ack()
        session.ws.send_binary(head + offset.to_bytes(8, "big") + data[offset : offset + chunk])
        last_sent = time.time()
        await session.ws.drain()
    while acked < len(data):
        acked = await ack()
    seconds = time.perf_counter() - started
    return {
        "analysis_id": aid,
        "bytes": len(data),
        "seconds": seconds,
        "mb_s": len(data) / MB / seconds,
        "last_sent": last_sent,
    }


async def settle(session: Session, aid: str, timeout: float = 60.0) -> str:
    """Wait for the analysis to end (result or error); returns which."""
    frame = await session.wait(
        lambda f: (
            f.get("event") in ("analysis.result", "analysis.error") and f.get("analysis_id") == aid
        ),
        timeout,
    )
    session.drop_backlog()
    return str(frame.get("code", "result")) if frame["event"] == "analysis.error" else "result"


async def run(ctx: Context) -> dict[str, Any]:
    o = ctx.options
    sizes = [int(s * MIB) for s in o.upload_sizes]
    users = max(o.upload_concurrency)
    async with ctx.deploy(SYNTHIA, nodes=1) as dep:
        await ctx.ensure_accounts(users * o.sockets_per_user, dep.urls)
        url = dep.urls[0]
        sessions = [await Session.open(url, ctx.accounts[i].token) for i in range(users)]
        one = sessions[0]
        single: list[dict[str, Any]] = []
        outcomes: dict[str, int] = {}
        with ctx.bar(len(sizes) * o.upload_repeat, "upload: one socket") as bar:
            for size in sizes:
                for _ in range(o.upload_repeat):
                    data = jpeg_of_size(size, next(_seed))
                    done = await upload(one, data, o.upload_window)
                    outcome = await settle(one, done["analysis_id"])
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
                    single.append(
                        {"mib": size / MIB, "seconds": done["seconds"], "mb_s": done["mb_s"]}
                    )
                    bar.update(1)
        concurrent: list[dict[str, Any]] = []
        size = sizes[min(len(sizes) - 1, max(0, len(sizes) // 2))]
        for k in o.upload_concurrency:
            images = [jpeg_of_size(size, next(_seed)) for _ in range(k)]
            t0 = time.perf_counter()
            rounds = await asyncio.gather(
                *(upload(s, d, o.upload_window) for s, d in zip(sessions[:k], images, strict=True))
            )
            wall = time.perf_counter() - t0
            for s, d in zip(sessions[:k], rounds, strict=True):
                outcome = await settle(s, d["analysis_id"])
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            concurrent.append(
                {
                    "sockets": k,
                    "mib_each": size / MIB,
                    "aggregate_mb_s": round(k * size / MB / wall, 1),
                    "per_socket_mb_s": round(sum(d["mb_s"] for d in rounds) / k, 1),
                }
            )
            ctx.say(
                f"upload: {k} sockets x {size / MIB:g} MiB → {concurrent[-1]['aggregate_mb_s']} MB/s aggregate"
            )
        for s in sessions:
            await s.close()
    by_size: dict[float, list[float]] = {}
    for u in single:
        by_size.setdefault(u["mib"], []).append(u["mb_s"])
    per_size: list[dict[str, Any]] = [
        {
            "mib": m,
            "mb_s_median": round(sorted(v)[len(v) // 2], 1),
            "runs": [round(x, 1) for x in v],
        }
        for m, v in sorted(by_size.items())
    ]
    ctx.say(
        "upload: one socket "
        + ", ".join(f"{p['mib']:g} MiB {p['mb_s_median']} MB/s" for p in per_size)
    )
    return {
        "chunk_bytes": int(one.ready["limits"]["max_chunk_bytes"]),
        "window": o.upload_window,
        "single": per_size,
        "single_socket_mb_s": max(float(p["mb_s_median"]) for p in per_size),
        "concurrent": concurrent,
        "analysis_outcomes": outcomes,
    }
