"""Scenario 4, analysis: a fake Gemini with a fixed first-chunk latency → what the server adds.

Fresh analyses, one at a time (so each model request pairs with its analysis by order): a small
distinct JPEG is uploaded, then the bench records, on one clock,

* ``t_upload`` the last chunk sent · ``t_request`` the model request arrives at the fake ·
  ``t_chunk`` the fake writes its first chunk · ``t_partial`` the first ``analysis.partial``
  reaches the socket · ``t_result`` ``analysis.result`` reaches it.

``time_to_first_partial = t_partial − t_upload``; ``first_chunk_overhead = time_to_first_partial
− (t_chunk − t_request)``, i.e. everything but the model's own latency, split into ``before_model``
(``t_request − t_upload``: hash check, decode, re-encode, queue, DB row) and ``relay``
(``t_partial − t_chunk``: SDK parse, partial JSON, publish, fan-out, socket write).

Then the same images again: ``analysis.start`` with a known sha256 answers ``cached: true``;
the round trip is timed to the reply and to the ``analysis.result`` that follows.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from bench.context import Context
from bench.images import face_like_jpeg, sha256_hex
from bench.scenarios.upload import upload
from bench.session import Session
from bench.stats import ms_summary
from bench.targets import SYNTHIA

USERS = 8  # fresh analyses rotate over these users, so per-socket command limits never bite
MIN_GAP = (
    0.1  # seconds between two cached round trips on one socket (2 commands: 20/s < COMMAND_RATE)
)


async def _fresh(session: Session, data: bytes) -> dict[str, float] | None:
    done = await upload(session, data, window=4)
    aid = done["analysis_id"]
    t_upload = done["last_sent"]  # the job starts when this chunk is stored
    partial = await session.wait(
        lambda f: (
            f.get("analysis_id") == aid
            and f.get("event") in ("analysis.partial", "analysis.error", "analysis.result")
        ),
        60,
    )
    if partial["event"] != "analysis.partial":
        session.drop_backlog()
        return None
    stages = {
        f["stage"]: f["_t"]
        for f in session.backlog
        if f.get("event") == "analysis.progress" and f.get("analysis_id") == aid and "stage" in f
    }
    result = await session.wait(
        lambda f: (
            f.get("analysis_id") == aid and f.get("event") in ("analysis.result", "analysis.error")
        ),
        60,
    )
    session.drop_backlog()
    if result["event"] != "analysis.result":
        return None
    return {
        "t_upload": t_upload,
        "t_partial": partial["_t"],
        "t_result": result["_t"],
        **{
            f"t_{stage}": stages.get(stage, float("nan"))
            for stage in ("validating", "queued", "analyzing")
        },
    }


async def _cached(session: Session, data: bytes) -> dict[str, float]:
    command_id, sent = session.send(
        "analysis.start",
        kind="facial",
        content_type="image/jpeg",
        size=len(data),
        sha256=sha256_hex(data),
    )
    reply = await session.reply(command_id)
    if not reply.get("ok") or not reply.get("cached"):
        raise RuntimeError(f"expected a cached answer, got {reply}")
    aid = reply["analysis_id"]
    result = await session.event("analysis.result", analysis_id=aid)
    session.drop_backlog()
    await session.command("unsubscribe", channel=reply["channel"])  # a tidy client; not timed
    return {"reply": reply["_t"] - sent, "result": result["_t"] - sent}


def _finite(values: np.ndarray) -> np.ndarray:
    return np.asarray(values[np.isfinite(values)], dtype=np.float64)


async def run(ctx: Context) -> dict[str, Any]:
    o = ctx.options
    fake = ctx.fake_model
    if fake is None:
        return {
            "skipped": "needs the fake Gemini: the bench's own nodes, or --model-port with --node"
        }
    async with ctx.deploy(SYNTHIA, nodes=1) as dep:
        await ctx.ensure_accounts(USERS * o.sockets_per_user, dep.urls)
        sessions = [await Session.open(dep.urls[0], ctx.accounts[i].token) for i in range(USERS)]
        images = [face_like_jpeg(seed) for seed in range(o.analysis_count)]
        owners: list[int] = []
        timings: list[dict[str, float]] = []
        failed = 0
        with ctx.bar(o.analysis_count, "analysis: fresh") as bar:
            for i, data in enumerate(images):
                before = len(fake.request_times)
                t = await _fresh(sessions[i % USERS], data)
                bar.update(1)
                if t is None or len(fake.request_times) != before + 1:
                    failed += 1
                    continue
                t["t_request"], t["t_chunk"] = (
                    fake.request_times[before],
                    fake.first_chunk_times[before],
                )
                timings.append(t)
                owners.append(i)
        cached: list[dict[str, float]] = []
        last_used: dict[int, float] = {}
        loop = asyncio.get_running_loop()
        with ctx.bar(o.cached_count, "analysis: cached") as bar:
            for j in range(o.cached_count):
                i = owners[j % len(owners)]
                wait = last_used.get(i % USERS, 0.0) + MIN_GAP - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                cached.append(await _cached(sessions[i % USERS], images[i]))
                last_used[i % USERS] = loop.time()
                bar.update(1)
        for s in sessions:
            await s.close()
    keys = (
        "t_upload",
        "t_request",
        "t_chunk",
        "t_partial",
        "t_result",
        "t_validating",
        "t_queued",
        "t_analyzing",
    )
    col = {k: np.array([t[k] for t in timings], dtype=np.float64) for k in keys}
    ttfp = col["t_partial"] - col["t_upload"]
    model = col["t_chunk"] - col["t_request"]
    result = {
        "model_first_chunk_latency_ms": o.model_latency_ms,
        "fresh": len(timings),
        "failed": failed,
        "time_to_first_partial": ms_summary(ttfp),
        "time_to_result": ms_summary(col["t_result"] - col["t_upload"]),
        "first_chunk_overhead": ms_summary(ttfp - model),
        "before_model": ms_summary(col["t_request"] - col["t_upload"]),
        "relay": ms_summary(col["t_partial"] - col["t_chunk"]),
        # where "before_model" goes, from the arrival of each analysis.progress stage (each carries
        # the same relay delay, so differences between stages are the server's own steps)
        "stages": {
            "upload_to_validating": ms_summary(_finite(col["t_validating"] - col["t_upload"])),
            "validating_to_queued": ms_summary(_finite(col["t_queued"] - col["t_validating"])),
            "queued_to_analyzing": ms_summary(_finite(col["t_analyzing"] - col["t_queued"])),
            "analyzing_to_model_request": ms_summary(
                _finite(col["t_request"] - col["t_analyzing"])
            ),
        },
        "cached": {
            "count": len(cached),
            "round_trip": ms_summary([c["reply"] for c in cached]),
            "to_result": ms_summary([c["result"] for c in cached]),
        },
    }
    ctx.say(
        f"analysis: first partial p50 {result['time_to_first_partial'].get('p50_ms')} ms, overhead p50 "
        f"{result['first_chunk_overhead'].get('p50_ms')} ms, cached p50 {result['cached']['round_trip'].get('p50_ms')} ms"
    )
    return result
