"""The analysis pipeline end to end over the real runtime (local analyzer unless stated)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import numpy as np
import orjson
import pytest

from synthia_rt import i18n
from synthia_rt.analysis.service import AnalysisService
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.runtime import Runtime
from synthia_rt.store import analyses as store
from synthia_rt.uploads.store import UploadMeta
from tests.analysis_support import (
    analysis_runtime,
    astronaut_jpeg,
    coffee_jpeg,
    encode,
    events,
    fake,
    gemini_settings,
    names,
    new_user,
    png_bomb,
    send,
    service,
    sha,
    start,
    wait_terminal,
)
from tests.fake_gemini import FakeGemini, Stall

__all__ = ["fake"]

FULL_RUN = [
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


async def app_error(coro: Any, code: ErrorCode) -> AppError:
    with pytest.raises(AppError) as info:
        await coro
    assert info.value.code == code, info.value
    return info.value


async def no_keys_left(runtime: Runtime, user: Principal, analysis_id: str) -> None:
    """Raw bytes are gone once the analysis is over (image_retention = 0)."""
    kv = runtime.need_kv()
    assert await kv.get(f"upload:{user.user_id}:{analysis_id}:data") is None
    assert [k async for k in kv.scan(f"image:{user.user_id}:*")] == []


async def test_full_run_events_rows_and_no_raw_image_kept(settings_for: Any, backend: str) -> None:
    async with analysis_runtime(settings_for(backend, max_chunk_bytes=8 * 1024)) as runtime:
        svc = service(runtime)
        user = await new_user()
        data = astronaut_jpeg()
        reply = await start(svc, user, data)
        aid = reply["analysis_id"]
        assert reply == {
            "analysis_id": aid,
            "channel": f"analysis:{aid}",
            "upload": {"offset": 0, "max_chunk_bytes": 8 * 1024},
        }
        assert (await store.get(aid))["status"] == "queued"  # type: ignore[index]
        await send(svc, user, aid, data)
        row = await wait_terminal(aid)
        assert row["status"] == "done" and row["result"]["skin"]["tone"] in ("very_light", "light")
        assert (
            row["started_at"] is not None
            and row["finished_at"] is not None
            and row["duration_ms"] >= 0
        )
        evs = await events(runtime, reply["channel"])
        assert names(evs) == FULL_RUN
        partials = [e["partial"] for e in evs if e["event"] == "analysis.partial"]
        assert [len(p) for p in partials] == sorted(len(p) for p in partials)
        result = evs[-1]
        assert result == {
            **result,
            "analysis_id": aid,
            "kind": "facial",
            "result": row["result"],
            "cached": False,
            "model": "local-opencv-1",
        }
        assert (await svc.final_event(aid)).payload() == {
            k: v for k, v in result.items() if k not in ("channel", "offset", "epoch")
        }
        user_events = await events(runtime, f"user:{user.user_id}")
        assert [e["event"] for e in user_events] == ["analysis.result"]
        assert await svc.owner_of(aid) == user.user_id
        await no_keys_left(runtime, user, aid)
        assert (
            await runtime.need_kv().zcount_above(f"active:{user.user_id}", 0) == 0
        )  # slot released


async def test_image_retention_keeps_only_the_cleaned_image(settings_for: Any) -> None:
    async with analysis_runtime(settings_for("redis", image_retention=600)) as runtime:
        svc = service(runtime)
        user = await new_user()
        data = astronaut_jpeg()
        aid = (await start(svc, user, data))["analysis_id"]
        await send(svc, user, aid, data)
        assert (await wait_terminal(aid))["status"] == "done"
        kept = await runtime.need_kv().get(f"image:{user.user_id}:{aid}")
        assert kept is not None and kept != data and kept[:2] == b"\xff\xd8"  # re-encoded JPEG


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("bomb", "invalid_image"),
        ("truncated", "invalid_image"),
        ("text_named_jpg", "invalid_image"),
        ("wrong_hash", "hash_mismatch"),
        ("lying_size", "hash_mismatch"),
        ("no_face", "no_face_detected"),
    ],
)
async def test_bad_inputs_fail_cleanly(settings_for: Any, case: str, code: str) -> None:
    photo = astronaut_jpeg()
    declared_sha = None
    if case == "bomb":
        data = png_bomb(8000, 6000)
    elif case == "truncated":
        data = photo[: len(photo) * 2 // 3]
    elif case == "text_named_jpg":
        data = b"GIF89a? no: plain text saved as selfie.jpg\n" * 40
    elif case == "wrong_hash":
        data, declared_sha = photo, sha(photo[::-1])
    elif case == "lying_size":
        data, declared_sha = photo[:-500], sha(photo)  # declares fewer bytes than the photo has
    else:
        data = coffee_jpeg()
    async with analysis_runtime(settings_for("redis", max_chunk_bytes=16 * 1024)) as runtime:
        svc = service(runtime)
        user = await new_user()
        reply = await start(
            svc,
            user,
            data,
            content_type="image/jpeg",
            **({"sha256": declared_sha} if declared_sha else {}),
        )
        aid = reply["analysis_id"]
        if case == "lying_size":
            await app_error(
                svc.upload_chunk(user, uuid.UUID(aid), 0, photo[: 16 * 1024 + 1]),
                ErrorCode.BAD_CHUNK,
            )
        await send(svc, user, aid, data)
        row = await wait_terminal(aid)
        assert (row["status"], row["error_code"]) == ("failed", code)
        evs = await events(runtime, reply["channel"])
        assert evs[-1]["event"] == "analysis.error" and evs[-1]["code"] == code
        assert "Traceback" not in evs[-1]["message"]
        assert "analysis.result" not in names(evs)
        await no_keys_left(runtime, user, aid)
        assert (await svc.cache_stats())["analysis"]["hits"] == 0
        # A failure is never cached: the same bytes again get a fresh upload, not a result.
        again = await start(svc, user, data, **({"sha256": declared_sha} if declared_sha else {}))
        assert "upload" in again


async def test_start_refusals(settings_for: Any) -> None:
    async with analysis_runtime(
        settings_for("memory", max_image_bytes=100_000, max_chunk_bytes=10_000)
    ) as runtime:
        svc = service(runtime)
        user = await new_user()
        data = astronaut_jpeg()
        err = await app_error(start(svc, user, data, size=100_001), ErrorCode.TOO_LARGE)
        assert err.status == 413
        await app_error(start(svc, user, data, kind="chromatic"), ErrorCode.BAD_REQUEST)
        await app_error(start(svc, user, data, sha256="xyz"), ErrorCode.BAD_REQUEST)
        await app_error(start(svc, user, data, size=0), ErrorCode.BAD_REQUEST)
        await app_error(start(svc, user, data, size="12"), ErrorCode.BAD_REQUEST)
        await app_error(start(svc, user, data, file_id=str(uuid.uuid4())), ErrorCode.NOT_FOUND)


async def test_bad_chunks_change_nothing(settings_for: Any) -> None:
    async with analysis_runtime(settings_for("redis", max_chunk_bytes=4096)) as runtime:
        svc = service(runtime)
        user, mallory = await new_user(), await new_user()
        data = astronaut_jpeg()
        aid = uuid.UUID((await start(svc, user, data))["analysis_id"])
        await svc.upload_chunk(user, aid, 0, data[:4096])
        for who, offset, payload in [
            (user, 100, data[100:200]),  # wrong offset
            (user, 4096, data[4096:8193]),  # larger than max_chunk_bytes
            (user, 4096, b""),  # empty
            (mallory, 4096, data[4096:8192]),  # someone else's analysis
            (user, len(data) - 10, data[-10:] + b"extra"),  # past the size (and wrong offset)
        ]:
            await app_error(svc.upload_chunk(who, aid, offset, payload), ErrorCode.BAD_CHUNK)
        await app_error(
            svc.upload_chunk(user, uuid.uuid4(), 0, data[:10]), ErrorCode.BAD_CHUNK
        )  # unknown
        assert await svc.upload_status(user, aid) == {"offset": 4096, "size": len(data)}
        await app_error(svc.upload_status(mallory, aid), ErrorCode.NOT_FOUND)
        assert (await store.get(aid))["status"] == "queued"  # type: ignore[index]


async def test_concurrent_analyses_per_user_are_limited(settings_for: Any) -> None:
    async with analysis_runtime(settings_for("redis", max_analyses_per_user=1)) as runtime:
        svc = service(runtime)
        user, other = await new_user(), await new_user()
        data = astronaut_jpeg()
        first = await start(svc, user, data)
        err = await app_error(start(svc, user, coffee_jpeg()), ErrorCode.RATE_LIMITED)
        assert err.retry_after and err.retry_after > 0 and err.temporary
        await start(svc, other, data)  # the limit is per user
        await svc.cancel(user, first["analysis_id"])  # frees the slot
        await start(svc, user, coffee_jpeg())


async def test_cancel_during_upload(settings_for: Any) -> None:
    async with analysis_runtime(settings_for("redis", max_chunk_bytes=4096)) as runtime:
        svc = service(runtime)
        user, mallory = await new_user(), await new_user()
        data = astronaut_jpeg()
        reply = await start(svc, user, data)
        aid = reply["analysis_id"]
        await svc.upload_chunk(user, uuid.UUID(aid), 0, data[:4096])
        await app_error(svc.cancel(mallory, aid), ErrorCode.NOT_FOUND)
        await svc.cancel(user, aid)
        row = await store.get(aid)
        assert row is not None and (row["status"], row["error_code"]) == ("cancelled", "cancelled")
        assert (await events(runtime, reply["channel"]))[-1]["code"] == "cancelled"
        await app_error(
            svc.upload_chunk(user, uuid.UUID(aid), 4096, data[4096:8192]), ErrorCode.BAD_CHUNK
        )
        await svc.cancel(user, aid)  # idempotent


async def _stalled_run(
    svc: AnalysisService, runtime: Runtime, fake: FakeGemini
) -> tuple[Principal, str]:
    """An analysis whose model call hangs after its first partial."""
    fake.push(Stall('{"face_shape": "oval", "skin": {"tone": "light"', after=1))
    user = await new_user()
    data = astronaut_jpeg()
    aid = (await start(svc, user, data))["analysis_id"]
    await send(svc, user, aid, data)
    async with asyncio.timeout(30):
        while True:
            if "analysis.partial" in names(await events(runtime, f"analysis:{aid}")):
                return user, aid
            await asyncio.sleep(0.05)


async def test_cancel_stops_a_running_model_call(settings_for: Any, fake: FakeGemini) -> None:
    async with analysis_runtime(
        gemini_settings(settings_for("redis"), fake, gemini_timeout=60)
    ) as runtime:
        svc = service(runtime)
        user, aid = await _stalled_run(svc, runtime, fake)
        await svc.cancel(user, aid)
        row = await wait_terminal(aid)
        assert (row["status"], row["error_code"]) == ("cancelled", "cancelled")
        assert (await events(runtime, f"analysis:{aid}"))[-1]["code"] == "cancelled"


async def test_cancel_flag_from_another_node_is_obeyed(settings_for: Any, fake: FakeGemini) -> None:
    """Another node cannot reach this task; it sets the shared flag, and this node's watcher acts."""
    async with analysis_runtime(
        gemini_settings(settings_for("redis"), fake, gemini_timeout=60)
    ) as runtime:
        svc = service(runtime)
        _, aid = await _stalled_run(svc, runtime, fake)
        await runtime.need_kv().set(f"cancel:{aid}", b"1", 60)
        row = await wait_terminal(aid)
        assert (row["status"], row["error_code"]) == ("cancelled", "cancelled")


async def test_shutdown_never_leaves_a_row_running(settings_for: Any, fake: FakeGemini) -> None:
    async with analysis_runtime(
        gemini_settings(settings_for("redis"), fake, gemini_timeout=60)
    ) as runtime:
        svc = service(runtime)
        _, aid = await _stalled_run(svc, runtime, fake)
        assert (await store.get(aid))["status"] == "running"  # type: ignore[index]
    row = await store.get(aid)  # the runtime is stopped; the database is still there
    assert row is not None and (row["status"], row["error_code"]) == ("failed", "unavailable")


async def test_file_id_from_rest_runs_and_is_then_deleted(settings_for: Any) -> None:
    async with analysis_runtime(settings_for("redis")) as runtime:
        svc = service(runtime)
        user, other = await new_user(), await new_user()
        data = astronaut_jpeg()
        stored = await svc.store_file(user, data)
        assert stored["sha256"] == sha(data) and stored["content_type"] == "image/jpeg"
        await app_error(
            svc.start_analysis(
                other,
                kind="facial",
                content_type=None,
                size=None,
                sha256=None,
                file_id=stored["file_id"],
            ),
            ErrorCode.NOT_FOUND,
        )
        reply = await svc.start_analysis(
            user,
            kind="facial",
            content_type=None,
            size=None,
            sha256=None,
            file_id=stored["file_id"],
        )
        assert reply["cached"] is False and "upload" not in reply
        row = await wait_terminal(reply["analysis_id"])
        assert row["status"] == "done"
        assert await runtime.need_kv().get(f"file:{user.user_id}:{stored['file_id']}") is None
        assert await store.get_image(user.user_id, stored["file_id"]) is None
        # The socket path with the same bytes now hits the cache (same sha256 of the original).
        assert (await start(svc, user, data))["cached"] is True


async def test_store_file_refuses_what_the_socket_refuses(settings_for: Any) -> None:
    async with analysis_runtime(settings_for("memory")) as runtime:
        user = await new_user()
        await app_error(
            service(runtime).store_file(user, b"hello, I am text.jpg"), ErrorCode.INVALID_IMAGE
        )
        await app_error(
            service(runtime).store_file(user, png_bomb(50_000, 50_000)), ErrorCode.INVALID_IMAGE
        )


async def test_abandoned_uploads_are_swept(settings_for: Any) -> None:
    async with analysis_runtime(settings_for("redis")) as runtime:
        svc = service(runtime)
        user = await new_user()
        data = astronaut_jpeg()
        live = (await start(svc, user, data))["analysis_id"]
        gone = (await start(svc, user, coffee_jpeg()))["analysis_id"]
        await svc.uploads.discard(user.user_id, gone)  # as if its upload had expired
        assert await svc.sweep_abandoned(older_than=0) >= 1  # (plus other tests' leftovers)
        assert (await store.get(gone))["status"] == "cancelled"  # type: ignore[index]
        assert (await store.get(live))["status"] == "queued"  # type: ignore[index]
        await start(
            svc, user, encode(np.zeros((8, 8, 3), np.uint8), "PNG")
        )  # its slot is free again


async def test_erase_user_forgets_everything_in_the_store(settings_for: Any) -> None:
    async with analysis_runtime(settings_for("redis", image_retention=600)) as runtime:
        svc = service(runtime)
        kv = runtime.need_kv()
        user, other = await new_user(), await new_user()
        data = astronaut_jpeg()
        done = (await start(svc, user, data))["analysis_id"]
        await send(svc, user, done, data)
        await wait_terminal(done)
        pending = (await start(svc, user, coffee_jpeg()))["analysis_id"]
        await svc.upload_chunk(user, uuid.UUID(pending), 0, b"\xff\xd8")
        await svc.store_file(user, data)
        await svc.quiz_start(user, None)
        kept = (await start(svc, other, data))["analysis_id"]
        assert svc.erase_user in runtime.erase_user_hooks

        await svc.erase_user(user.user_id)
        for pattern in ("upload", "file", "image", "quiz", "cache:analysis"):
            assert [k async for k in kv.scan(f"{pattern}:{user.user_id}:*")] == [], pattern
        assert await svc.upload_status(other, kept) == {"offset": 0, "size": len(data)}
        assert (await start(svc, user, data)).get("cached") is not True  # the cached result is gone


async def test_cached_answer_on_gemini_needs_no_upload(settings_for: Any, fake: FakeGemini) -> None:
    """Cache keys carry the model: a result cached by the local analyzer is not served by Gemini."""
    from tests.fake_gemini import Stream

    data = astronaut_jpeg()
    settings = settings_for("redis")
    async with analysis_runtime(settings) as runtime:
        svc = service(runtime)
        user = await new_user()
        aid = (await start(svc, user, data))["analysis_id"]
        await send(svc, user, aid, data)
        await wait_terminal(aid)
        assert (await start(svc, user, data))["cached"] is True
    fake.push(
        Stream(
            '{"face_shape": "heart", "skin": {"tone": "light", "undertone": "cool"}, '
            '"recommendations": [{"category": "eyewear", "title": "Aviators"}]}'
        )
    )
    async with analysis_runtime(gemini_settings(settings, fake)) as runtime:
        svc = service(runtime)
        reply = await start(svc, user, data)
        assert "upload" in reply
        await send(svc, user, reply["analysis_id"], data)
        row = await wait_terminal(reply["analysis_id"])
        assert row["status"] == "done" and row["result"]["face_shape"] == "heart"
        assert fake.calls == 1


async def test_runs_orphaned_by_a_dead_node_are_ended(settings_for: Any) -> None:
    """A row left `running` by a node that crashed is failed by any node's sweeper."""
    async with analysis_runtime(settings_for("redis")) as runtime:
        svc = service(runtime)
        user = await new_user()
        orphan = uuid.uuid4()
        await store.create(
            orphan,
            user.user_id,
            "facial",
            inputs={},
            image_sha256=None,
            model="m",
            prompt_version="p",
        )
        assert await store.mark_running(orphan)  # as the dead node did, before it died
        assert await svc.sweep_abandoned(older_than=0) >= 1
        row = await store.get(orphan)
        assert row is not None and (row["status"], row["error_code"]) == ("failed", "unavailable")
        assert "analysis.error" in names(await events(runtime, f"analysis:{orphan}"))


async def test_a_taken_over_upload_runs_in_its_uploaders_locale(settings_for: Any) -> None:
    """The upload's node died with every byte stored: the node that takes it over (sweeper,
    upload.status) runs it in the uploader's language, kept in the upload meta — not in its own.
    (One runtime plays both nodes: the run never started here, as on a dead node.)"""
    async with analysis_runtime(settings_for("redis")) as runtime:
        svc = service(runtime)
        user = await new_user()
        data = astronaut_jpeg()
        with i18n.using("es"):
            aid = (await start(svc, user, data))["analysis_id"]
        # every byte reached the shared store, but the node died before it started the run
        meta, length = await svc.uploads.append(user.user_id, aid, 0, data)
        assert length == len(data) and meta.locale == "es"
        with i18n.using("en"):  # the sweeper's context is another language
            assert await svc.sweep_abandoned(older_than=0) >= 1
        row = await wait_terminal(aid)
        assert row["status"] == "done" and row["result"]["summary"].startswith("Rostro "), row[
            "result"
        ]


def test_upload_metas_without_a_locale_still_load() -> None:
    old = orjson.dumps(
        {
            "analysis_id": "a",
            "user_id": "u",
            "size": 1,
            "sha256": "0" * 64,
            "content_type": None,
            "kind": "facial",
            "created_at": 1.0,
            "complete": False,
        }
    )
    assert UploadMeta.load(old).locale is None
    newer = orjson.dumps({**orjson.loads(old), "locale": "es", "field_of_a_newer_node": 1})
    assert UploadMeta.load(newer).locale == "es"
