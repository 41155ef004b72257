"""Sections 3–5 over real sockets on two real nodes (local analyzer, PostgreSQL, Redis)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson

from synthia_rt.realtime.protocol import encode_chunk
from tests.analysis_support import astronaut_jpeg, sha
from tests.nodes import Node
from tests.wsclient import Client, register, ws_session

CHUNK = 8 * 1024


async def _send(
    client: Client, analysis_id: str, data: bytes, start: int, stop: int
) -> dict[str, Any]:
    """Send bytes [start, stop) in chunks; return the last upload.progress."""
    aid = uuid.UUID(analysis_id)
    progress: dict[str, Any] = {}
    for offset in range(start, stop, CHUNK):
        await client.send_raw(encode_chunk(aid, offset, data[offset : min(offset + CHUNK, stop)]))
        progress = await client.event("upload.progress", timeout=10)
        assert "channel" not in progress or "offset" in progress
    return progress


async def _until(client: Client, *names: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Collect analysis-channel events until one of ``names`` arrives."""
    seen: list[dict[str, Any]] = []
    while True:
        event = await client.event(None, timeout=timeout)
        seen.append(event)
        if event["event"] in names:
            return seen


async def test_facial_upload_resumed_on_the_other_node(two_nodes: tuple[Node, Node]) -> None:
    a, b = two_nodes
    user = await register(a.http)
    image = astronaut_jpeg()
    digest = sha(image)
    half = (len(image) // 2 // CHUNK) * CHUNK
    async with ws_session(a.ws, user["access_token"]) as on_a:
        started = await on_a.command(
            "analysis.start",
            kind="facial",
            content_type="image/jpeg",
            size=len(image),
            sha256=digest,
        )
        assert started["ok"] and started["upload"] == {
            "offset": 0,
            "max_chunk_bytes": on_a.ready["limits"]["max_chunk_bytes"],
        }  # type: ignore[attr-defined]
        analysis_id, channel = started["analysis_id"], started["channel"]
        assert channel == f"analysis:{analysis_id}"
        progress = await _send(on_a, analysis_id, image, 0, half)
        assert progress == {
            "event": "upload.progress",
            "analysis_id": analysis_id,
            "offset": half,
            "size": len(image),
        }
        # A chunk at the wrong offset is refused and changes nothing.
        await on_a.send_raw(encode_chunk(uuid.UUID(analysis_id), half + 1, b"x" * 10))
        refused = await on_a.event("analysis.error")
        assert (refused["code"], refused["analysis_id"]) == ("bad_chunk", analysis_id)
    # The connection dropped half-way; resume on the OTHER node from the durable offset.
    async with ws_session(b.ws, user["access_token"]) as on_b:
        status = await on_b.command("upload.status", analysis_id=analysis_id)
        assert (status["offset"], status["size"]) == (half, len(image))
        joined = await on_b.command("subscribe", channel=channel)
        assert joined["ok"]
        await _send(on_b, analysis_id, image, half, len(image))
        events = await _until(on_b, "analysis.result", "analysis.error")
        result = events[-1]
        assert result["event"] == "analysis.result", result
        stages = [e["stage"] for e in events if e["event"] == "analysis.progress"]
        assert stages == sorted(
            stages,
            key=["uploading", "validating", "queued", "analyzing", "persisting", "done"].index,
        )
        assert "persisting" in stages
        partials = [e for e in events if e["event"] == "analysis.partial"]
        assert partials and [p["seq"] for p in partials] == list(range(1, len(partials) + 1))
        facial = result["result"]
        assert facial["face_shape"] in {
            "oval",
            "round",
            "square",
            "heart",
            "diamond",
            "oblong",
            "triangle",
        }
        assert (
            facial["skin"]["undertone"] in {"warm", "cool", "neutral", "olive"}
            and facial["skin"]["tone"]
        )
        assert facial["recommendations"] and result["cached"] is False
        # Committed before it was sent: REST (on node A) has it.
        async with httpx.AsyncClient(base_url=a.http) as http:
            r = await http.get(
                f"/api/v1/analyses/{analysis_id}",
                headers={"Authorization": f"Bearer {user['access_token']}"},
            )
            assert r.status_code == 200 and r.json()["result"] == facial
        # The same image again: answered from the cache, no upload.
        again = await on_b.command(
            "analysis.start",
            kind="facial",
            content_type="image/jpeg",
            size=len(image),
            sha256=digest,
        )
        assert again["cached"] is True and "upload" not in again
        cached = await on_b.event("analysis.result", analysis_id=again["analysis_id"])
        assert cached["cached"] is True and cached["result"] == facial
        # Re-subscribing to a finished analysis delivers its result again.
        resub = await on_b.command("subscribe", channel=channel)
        assert resub["ok"]
        assert (await on_b.event("analysis.result", analysis_id=analysis_id))["result"] == facial


async def test_foreign_analysis_is_invisible(two_nodes: tuple[Node, Node]) -> None:
    a, b = two_nodes
    owner, other = await register(a.http), await register(a.http)
    image = astronaut_jpeg()
    async with (
        ws_session(a.ws, owner["access_token"]) as mine,
        ws_session(b.ws, other["access_token"]) as theirs,
    ):
        started = await mine.command(
            "analysis.start",
            kind="facial",
            content_type="image/jpeg",
            size=len(image),
            sha256=sha(image),
        )
        aid = started["analysis_id"]
        assert (await theirs.command("subscribe", channel=f"analysis:{aid}"))["error"][
            "code"
        ] == "forbidden"
        await theirs.send_raw(encode_chunk(uuid.UUID(aid), 0, image[:100]))
        assert (await theirs.event("analysis.error"))["code"] == "bad_chunk"
        assert (await mine.command("upload.status", analysis_id=aid))["offset"] == 0
        status = await theirs.command("upload.status", analysis_id=aid)
        assert status["ok"] is False and status["error"]["code"] in {
            "not_found",
            "bad_chunk",
            "forbidden",
        }


async def test_lying_size_and_too_large(two_nodes: tuple[Node, Node]) -> None:
    a, _ = two_nodes
    user = await register(a.http)
    image = astronaut_jpeg()
    async with ws_session(a.ws, user["access_token"]) as client:
        huge = await client.command(
            "analysis.start",
            kind="facial",
            content_type="image/jpeg",
            size=11 * 1024 * 1024,
            sha256=sha(image),
        )
        assert huge["error"]["code"] == "too_large"
        short = await client.command(
            "analysis.start", kind="facial", content_type="image/jpeg", size=1000, sha256=sha(image)
        )
        aid = short["analysis_id"]
        await client.send_raw(encode_chunk(uuid.UUID(aid), 0, image[:2000]))  # more than declared
        assert (await client.event("analysis.error"))["code"] == "bad_chunk"
        assert (await client.command("upload.status", analysis_id=aid))["offset"] == 0


async def test_colour_quiz_over_the_socket(two_nodes: tuple[Node, Node]) -> None:
    a, _ = two_nodes
    user = await register(a.http)
    async with ws_session(a.ws, user["access_token"]) as client:
        quiz = await client.command("quiz.start", locale="en")
        assert quiz["ok"] and len(quiz["questions"]) >= 6
        quiz_id = quiz["quiz_id"]
        for n, question in enumerate(quiz["questions"], start=1):
            assert set(question) >= {"id", "text", "options"} and question["options"]
            reply = await client.command(
                "quiz.answer",
                quiz_id=quiz_id,
                question=question["id"],
                answer=question["options"][0]["id"],
            )
            assert (reply["answered"], reply["remaining"]) == (n, len(quiz["questions"]) - n)
            estimate = await client.event("quiz.estimate")
            assert estimate["quiz_id"] == quiz_id and estimate["answered"] == n
            assert estimate["season"] in {"spring", "summer", "autumn", "winter"}
            assert 0 <= estimate["confidence"] <= 1
        bad = await client.command("quiz.answer", quiz_id=quiz_id, question="nonsense", answer="x")
        assert bad["ok"] is False
        submitted = await client.command("quiz.submit", quiz_id=quiz_id)
        assert submitted["ok"] and submitted["channel"] == f"analysis:{submitted['analysis_id']}"
        result = await client.event(
            "analysis.result", analysis_id=submitted["analysis_id"], timeout=30
        )
        chromatic = result["result"]
        assert (
            chromatic["season"] in {"spring", "summer", "autumn", "winter"}
            and chromatic["subseason"]
        )
        assert chromatic["palette"] and all(
            len(c["hex"]) == 7 and c["hex"].startswith("#") and int(c["hex"][1:], 16) >= 0
            for c in chromatic["palette"]
        )
        assert orjson.dumps(chromatic)
