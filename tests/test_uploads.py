"""Resumable chunked uploads: the store on both backends, and resuming on another node."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.kv import KeyValue, create_kv
from synthia_rt.uploads.store import UploadStore, new_meta
from tests.analysis_support import (
    analysis_runtime,
    astronaut_jpeg,
    events,
    names,
    new_user,
    send,
    service,
    start,
    wait_terminal,
)
from tests.conftest import REDIS_URL


async def bad_chunk(coro: Any) -> AppError:
    with pytest.raises(AppError) as info:
        await coro
    assert info.value.code == ErrorCode.BAD_CHUNK
    return info.value


async def test_store_appends_in_order_and_refuses_without_changing_anything(kv: KeyValue) -> None:
    uploads = UploadStore(kv, ttl=60)
    aid = str(uuid.uuid4())
    await uploads.create(new_meta(aid, "alice", 10, "0" * 64, "image/png", "facial"))
    assert (await uploads.append("alice", aid, 0, b"0123"))[1] == 4
    err = await bad_chunk(uploads.append("alice", aid, 2, b"xx"))  # wrong offset (a replay)
    assert "continues at 4" in err.text() and err.params == {"offset": 4}
    await bad_chunk(uploads.append("alice", aid, 4, b"x" * 7))  # past the declared size
    await bad_chunk(uploads.append("bob", aid, 4, b"45"))  # someone else's upload
    await bad_chunk(uploads.append("alice", str(uuid.uuid4()), 0, b"45"))  # unknown
    assert await uploads.offset("alice", aid) == 4  # none of the refusals wrote anything
    meta, length = await uploads.append("alice", aid, 4, b"456789")
    assert length == 10 == meta.size
    assert await uploads.finish(meta) == b"0123456789"
    assert (await uploads.meta("alice", aid)).complete  # type: ignore[union-attr]
    await bad_chunk(uploads.append("alice", aid, 10, b"!"))  # complete: nothing more


async def test_erase_user_drops_only_that_users_uploads(kv: KeyValue) -> None:
    uploads = UploadStore(kv, ttl=60)
    for user in ("alice", "bob"):
        await uploads.create(new_meta("a1", user, 4, "0" * 64, None, "facial"))
        await uploads.append(user, "a1", 0, b"ab")
    assert await uploads.erase_user("alice") == 2
    assert await uploads.meta("alice", "a1") is None
    assert await uploads.offset("bob", "a1") == 2


async def test_incomplete_uploads_expire(namespace: str, redis_client: aioredis.Redis) -> None:
    kv = create_kv(REDIS_URL, namespace)
    await kv.start()
    try:
        uploads = UploadStore(kv, ttl=30)
        await uploads.create(new_meta("a1", "alice", 4, "0" * 64, None, "facial"))
        await uploads.append("alice", "a1", 0, b"ab")
        for part in ("meta", "data"):
            pttl = await redis_client.pttl(f"{namespace}:upload:alice:a1:{part}")
            assert 0 < pttl <= 30_000
    finally:
        await kv.close()


async def test_interrupted_upload_resumes_on_another_node(settings_for: Any) -> None:
    """Node A takes half the image and dies; node B (same Redis and PostgreSQL) answers
    upload.status and the client finishes the upload there."""
    settings = settings_for("redis", max_chunk_bytes=16 * 1024)
    data = astronaut_jpeg()
    half = (len(data) // 2) // 1000 * 1000
    async with analysis_runtime(settings.with_(node_id="node-a")) as node_a:
        svc_a = service(node_a)
        user = await new_user()
        reply = await start(svc_a, user, data)
        aid = reply["analysis_id"]
        await send(svc_a, user, aid, data[:half], chunk=1000)
    async with analysis_runtime(settings.with_(node_id="node-b")) as node_b:
        svc_b = service(node_b)
        status = await svc_b.upload_status(user, aid)
        assert status == {"offset": half, "size": len(data)}
        with pytest.raises(AppError) as info:  # a replayed chunk from before the drop
            await svc_b.upload_chunk(user, uuid.UUID(aid), 0, data[:1000])
        assert info.value.code == ErrorCode.BAD_CHUNK
        await send(svc_b, user, aid, data, start_at=status["offset"])
        row = await wait_terminal(aid)
        assert row["status"] == "done" and row["result"]["face_shape"]
        evs = await events(node_b, f"analysis:{aid}")  # history is shared: both nodes' events
        assert names(evs) == [
            "progress:uploading",
            "progress:validating",
            "progress:queued",
            "progress:analyzing",
            "analysis.partial",
            "analysis.partial",
            "analysis.partial",
            "progress:persisting",
            "progress:done",
            "analysis.result",
        ]
        assert await svc_b.upload_status(user, aid) == {"offset": len(data), "size": len(data)}
