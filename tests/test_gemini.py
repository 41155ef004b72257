"""The Gemini analyzer: the REAL google-genai SDK over HTTP against tests/fake_gemini.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from synthia_rt import i18n
from synthia_rt.analysis.gemini import GeminiAnalyzer
from synthia_rt.analysis.models import validate_result
from synthia_rt.analysis.partial import _size
from synthia_rt.analysis.service import AnalysisService
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.runtime import Runtime
from synthia_rt.settings import Settings
from synthia_rt.uploads.validate import validate_image
from tests.analysis_support import (
    CHROMATIC_RESULT,
    FACIAL_RESULT,
    analysis_runtime,
    astronaut_jpeg,
    events,
    fake,
    gemini_settings,
    names,
    new_user,
    send,
    service,
    sha,
    start,
    wait_terminal,
)
from tests.fake_gemini import FakeGemini, Safety, Stall, Status, Stream

__all__ = ["fake"]  # the fixture, imported for pytest

FACIAL_JSON = json.dumps(FACIAL_RESULT)


class Partials:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, delta: str, partial: dict[str, Any]) -> None:
        self.seen.append((delta, partial))


@pytest.fixture
async def analyzer(fake: FakeGemini) -> AsyncIterator[GeminiAnalyzer]:
    a = GeminiAnalyzer(gemini_settings(Settings(), fake))
    await a.start()
    try:
        yield a
    finally:
        await a.close()


@pytest.fixture(scope="module")
def photo() -> Any:
    return validate_image(astronaut_jpeg(), max_pixels=40_000_000, max_bytes=10 * 1024 * 1024)


async def facial(analyzer: GeminiAnalyzer, photo: Any) -> tuple[Any, Partials]:
    sink = Partials()
    return await analyzer.facial(photo, sink), sink


async def expect_error(
    analyzer: GeminiAnalyzer, photo: Any, code: ErrorCode
) -> tuple[AppError, Partials]:
    sink = Partials()
    with pytest.raises(AppError) as info:
        await analyzer.facial(photo, sink)
    assert info.value.code == code
    return info.value, sink


async def test_streamed_structured_result(
    fake: FakeGemini, analyzer: GeminiAnalyzer, photo: Any
) -> None:
    fake.push(Stream(FACIAL_JSON, pieces=6))
    out, sink = await facial(analyzer, photo)
    assert out.result == FACIAL_RESULT
    assert out.usage == {
        "prompt_tokens": 11,
        "output_tokens": 22,
        "thought_tokens": 0,
        "total_tokens": 33,
    }
    # ≥3 partials, deltas that concatenate to the answer, and a parse that only grows.
    assert len(sink.seen) >= 3
    assert "".join(delta for delta, _ in sink.seen) == FACIAL_JSON
    sizes = [_size(p) for _, p in sink.seen]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert sink.seen[-1][1] == FACIAL_RESULT
    assert any(p and p != FACIAL_RESULT for _, p in sink.seen)  # fields appeared along the way
    # What went over the wire: one streaming call, schema-constrained JSON, our system prompt.
    assert fake.calls == 1
    assert fake.paths[0] == f"/v1beta/models/{analyzer.model}:streamGenerateContent?alt=sse"
    assert fake.api_keys == ["test-key-not-secret"]
    config = fake.requests[0]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert set(config["responseSchema"]["properties"]) >= {"face_shape", "skin", "recommendations"}
    assert "image consultant" in fake.requests[0]["systemInstruction"]["parts"][0]["text"]
    parts = fake.requests[0]["contents"][0]["parts"]
    assert parts[0]["inlineData"]["mime_type"] == "image/jpeg"


async def test_429_then_success(fake: FakeGemini, analyzer: GeminiAnalyzer, photo: Any) -> None:
    fake.push(Status(429), Stream(FACIAL_JSON))
    out, sink = await facial(analyzer, photo)
    assert out.result == FACIAL_RESULT
    assert fake.calls == 2
    assert "".join(d for d, _ in sink.seen) == FACIAL_JSON  # the failed try streamed nothing


async def test_500_past_the_retry_budget(
    fake: FakeGemini, analyzer: GeminiAnalyzer, photo: Any
) -> None:
    fake.default = Status(500)
    err, sink = await expect_error(analyzer, photo, ErrorCode.MODEL_UNAVAILABLE)
    assert err.temporary is True
    assert fake.calls == 1 + analyzer.settings.gemini_retries
    assert sink.seen == []


async def test_stall_mid_stream_hits_the_idle_timeout(fake: FakeGemini, photo: Any) -> None:
    a = GeminiAnalyzer(gemini_settings(Settings(), fake, gemini_timeout=0.5))
    await a.start()
    try:
        fake.push(Stall(FACIAL_JSON, after=2))
        err, sink = await expect_error(a, photo, ErrorCode.MODEL_UNAVAILABLE)
    finally:
        await a.close()
    assert err.temporary is True
    assert len(sink.seen) == 2  # what came before the stall was streamed
    assert fake.calls == 1  # no retry once partials went out: they would be replayed


async def test_stall_before_any_output_is_retried(fake: FakeGemini, photo: Any) -> None:
    a = GeminiAnalyzer(gemini_settings(Settings(), fake, gemini_timeout=0.5))
    await a.start()
    try:
        fake.push(Stall(FACIAL_JSON, after=0), Stream(FACIAL_JSON))
        out, _ = await facial(a, photo)
    finally:
        await a.close()
    assert out.result == FACIAL_RESULT and fake.calls == 2


@pytest.mark.parametrize("where", ["candidate", "prompt"])
async def test_safety_block(
    fake: FakeGemini, analyzer: GeminiAnalyzer, photo: Any, where: str
) -> None:
    fake.push(Safety(where))
    err, _ = await expect_error(analyzer, photo, ErrorCode.BLOCKED)
    assert err.temporary is False
    assert fake.calls == 1  # a refusal is not retried


@pytest.mark.parametrize(
    "text",
    [
        '{"face_shape": "oval", "skin": {"tone": "lig',  # cut short
        "I'm sorry, I can't help with that.",  # not JSON at all
        json.dumps({**FACIAL_RESULT, "face_shape": "pentagon"}),  # JSON, not the schema
    ],
)
async def test_malformed_model_json(
    fake: FakeGemini, analyzer: GeminiAnalyzer, photo: Any, text: str
) -> None:
    fake.push(Stream(text, pieces=3))
    await expect_error(analyzer, photo, ErrorCode.MODEL_ERROR)
    assert fake.calls == 1


async def test_other_client_errors_are_model_errors(
    fake: FakeGemini, analyzer: GeminiAnalyzer, photo: Any
) -> None:
    fake.push(Status(400))
    await expect_error(analyzer, photo, ErrorCode.MODEL_ERROR)
    assert fake.calls == 1


async def test_chromatic_over_the_model(fake: FakeGemini, analyzer: GeminiAnalyzer) -> None:
    fake.push(Stream(json.dumps(CHROMATIC_RESULT), pieces=5))
    sink = Partials()
    out = await analyzer.chromatic({"veins": "blue_purple", "hair": "light_ash_brown"}, sink)
    assert out.result["subseason"] == "soft_summer" and len(sink.seen) == 5
    prompt = fake.requests[0]["contents"][0]["parts"][0]["text"]
    assert "Light to medium ash brown" in prompt  # labels, not option ids, reach the model


async def test_confidence_reasons_and_features_come_through(
    fake: FakeGemini, analyzer: GeminiAnalyzer, photo: Any
) -> None:
    fake.push(Stream(FACIAL_JSON, pieces=7))
    out, _ = await facial(analyzer, photo)
    confidence, features = out.result["confidence"], out.result["features"]
    assert confidence["face_shape"] == {
        "value": 0.82,
        "reason": "The forehead is clearly wider than the narrow chin.",
    }
    assert {field: c["value"] for field, c in confidence.items()} == {
        "face_shape": 0.82,
        "tone": 0.74,
        "undertone": 0.58,
    }
    assert (
        features["eye_shape"],
        features["brow_shape"],
        features["forehead"],
        features["jaw"],
    ) == ("almond", "soft_arch", "wide", "narrow")
    # The schema the model is held to asks for them, with the confidence bounded to 0–1.
    schema = fake.requests[0]["generationConfig"]["responseSchema"]
    assert {"confidence", "features"} <= set(schema["properties"])
    text = json.dumps(schema)
    assert "eye_spacing" in text and "lip_fullness" in text and '"maximum": 1' in text
    assert "confidence" in fake.requests[0]["contents"][0]["parts"][-1]["text"]

    fake.push(Stream(json.dumps(CHROMATIC_RESULT), pieces=3))
    chroma = await analyzer.chromatic({"veins": "blue_purple", "contrast": "low"}, Partials())
    assert [r["category"] for r in chroma.result["recommendations"]] == [
        "clothing",
        "makeup",
        "hair_color",
        "jewelry",
    ]
    assert chroma.result["confidence"]["contrast"]["value"] == 0.9
    # Out of range is not a result.
    bad = {
        **CHROMATIC_RESULT,
        "confidence": {**CHROMATIC_RESULT["confidence"], "season": {"value": 1.4, "reason": "x"}},
    }
    fake.push(Stream(json.dumps(bad)))
    with pytest.raises(AppError) as info:
        await analyzer.chromatic({"veins": "blue_purple"}, Partials())
    assert info.value.code == ErrorCode.MODEL_ERROR


async def analyse_a_photo(
    runtime: Runtime,
) -> tuple[AnalysisService, Principal, bytes, dict[str, Any], dict[str, Any]]:
    """A new user uploads the astronaut photo through the service; returns the start reply and
    the row once it is terminal, plus what a test needs to go on (service, user, image)."""
    svc = service(runtime)
    user = await new_user()
    data = astronaut_jpeg()
    reply = await start(svc, user, data)
    await send(svc, user, reply["analysis_id"], data)
    return svc, user, data, reply, await wait_terminal(reply["analysis_id"])


# -- through the service: cache and failure bookkeeping ---------------------------------------
async def test_same_image_twice_is_answered_from_the_cache(
    settings_for: Any, fake: FakeGemini
) -> None:
    fake.push(Stream(FACIAL_JSON, pieces=4))
    async with analysis_runtime(
        gemini_settings(settings_for("redis", max_chunk_bytes=64 * 1024), fake)
    ) as runtime:
        svc, user, data, first, row = await analyse_a_photo(runtime)
        assert row["status"] == "done" and row["result"] == FACIAL_RESULT and row["cached"] is False
        assert row["usage"]["total_tokens"] == 33 and row["model"] == runtime.settings.gemini_model
        evs = await events(runtime, first["channel"])
        assert [e["seq"] for e in evs if e["event"] == "analysis.partial"] == [1, 2, 3, 4]
        assert names(evs)[-2:] == ["progress:done", "analysis.result"]
        assert fake.calls == 1

        second = await start(svc, user, data)
        assert second["cached"] is True and "upload" not in second
        assert fake.calls == 1  # no model call
        cached_row = await wait_terminal(second["analysis_id"])
        assert cached_row["cached"] is True and cached_row["result"] == FACIAL_RESULT
        evs2 = await events(runtime, second["channel"])
        assert names(evs2) == ["progress:done", "analysis.result"]
        assert evs2[-1]["cached"] is True
        user_events = await events(runtime, f"user:{user.user_id}")
        assert [e["analysis_id"] for e in user_events if e["event"] == "analysis.result"] == [
            first["analysis_id"],
            second["analysis_id"],
        ]
        assert (await svc.cache_stats())["analysis"]["hits"] >= 1


async def test_a_result_cached_before_confidence_and_features_is_still_served(
    settings_for: Any, fake: FakeGemini
) -> None:
    old = {k: v for k, v in FACIAL_RESULT.items() if k not in ("confidence", "features")}
    assert validate_result("facial", old)["confidence"] is None  # the schema still takes it
    async with analysis_runtime(gemini_settings(settings_for("redis"), fake)) as runtime:
        svc, user, data = service(runtime), await new_user(), astronaut_jpeg()
        await svc.cache.set(
            "analysis",
            svc.launch.key(user.user_id, "facial", sha(data)),
            {"result": old, "model": runtime.settings.gemini_model, "usage": {}},
        )
        reply = await start(svc, user, data)
        assert reply["cached"] is True and fake.calls == 0
        row = await wait_terminal(reply["analysis_id"])
        assert row["status"] == "done" and row["result"] == old
        served = (await events(runtime, reply["channel"]))[-1]
        assert served["event"] == "analysis.result" and served["result"] == old
        assert served["labels"]["face_shape"] and "features" not in served["labels"]


async def test_unavailable_model_fails_the_row_and_caches_nothing(
    settings_for: Any, fake: FakeGemini
) -> None:
    fake.default = Status(503)
    async with analysis_runtime(gemini_settings(settings_for("redis"), fake)) as runtime:
        svc, user, data, first, row = await analyse_a_photo(runtime)
        assert (row["status"], row["error_code"]) == ("failed", "model_unavailable")
        error = [
            e for e in await events(runtime, first["channel"]) if e["event"] == "analysis.error"
        ]
        assert error == [{**error[0], "code": "model_unavailable", "temporary": True}]
        calls = fake.calls
        assert calls == 1 + runtime.settings.gemini_retries

        fake.push(Stream(FACIAL_JSON))  # the model is back: the same image is analysed anew
        again = await start(svc, user, data)
        assert "upload" in again and again.get("cached") is not True
        await send(svc, user, again["analysis_id"], data)
        assert (await wait_terminal(again["analysis_id"]))["status"] == "done"
        assert fake.calls == calls + 1


async def test_safety_block_through_the_service(settings_for: Any, fake: FakeGemini) -> None:
    fake.push(Safety("candidate"))
    async with analysis_runtime(gemini_settings(settings_for("memory"), fake)) as runtime:
        svc, _, _, reply, row = await analyse_a_photo(runtime)
        assert (row["status"], row["error_code"]) == ("failed", "blocked")
        i18n.use(
            "en"
        )  # the re-read outcome speaks the reader's language; this reader reads English
        assert (await svc.final_event(reply["analysis_id"])).payload() == {
            "event": "analysis.error",
            "analysis_id": reply["analysis_id"],
            "code": "blocked",
            "message": row["error_message"],
            "temporary": False,
        }
