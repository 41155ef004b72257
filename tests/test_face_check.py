"""The local face check runs before any model call (issue 15.1): the REAL google-genai SDK
against tests/fake_gemini.py, which counts every call."""

from __future__ import annotations

import json
from typing import Any

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from synthia_rt.analysis.local import check_face
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.runtime import Runtime
from tests.analysis_support import (
    FACIAL_RESULT,
    analysis_runtime,
    astronaut_jpeg,
    coffee_jpeg,
    encode,
    fake,
    gemini_settings,
    new_user,
    send,
    service,
    start,
    wait_terminal,
)
from tests.fake_gemini import FakeGemini, Stream

__all__ = ["fake"]


def two_faces() -> bytes:
    crop = skdata.astronaut()[0:300, 100:350]
    return encode(np.concatenate([crop, crop], axis=1), "JPEG", quality=90)


def saved(runtime: Runtime, reason: str) -> float:
    assert runtime.metrics is not None
    value = runtime.metrics.model_calls_saved.labels(reason)._value.get()
    return float(value)


async def analyse(runtime: Runtime, data: bytes) -> dict[str, Any]:
    svc = service(runtime)
    user = await new_user()
    reply = await start(svc, user, data)
    await send(svc, user, reply["analysis_id"], data)
    return await wait_terminal(reply["analysis_id"])


@pytest.mark.parametrize(
    ("image", "code"), [(coffee_jpeg, "no_face_detected"), (two_faces, "multiple_faces")]
)
async def test_no_model_call_without_exactly_one_face(
    settings_for: Any, fake: FakeGemini, image: Any, code: str
) -> None:
    fake.default = Stream(json.dumps(FACIAL_RESULT))
    async with analysis_runtime(gemini_settings(settings_for("memory"), fake)) as runtime:
        row = await analyse(runtime, image())
        assert (row["status"], row["error_code"]) == ("failed", code)
        assert fake.calls == 0
        assert saved(runtime, code) == 1


def test_poor_quality_says_how_to_retake_the_photo() -> None:
    face = skdata.astronaut()
    cases = {
        "dark": (face * 0.15).astype(np.uint8),
        "blurred": cv2.GaussianBlur(face, (0, 0), 4),
        "small": cv2.resize(face, (256, 256)),
    }
    for word, rgb in cases.items():
        with pytest.raises(AppError) as caught:
            check_face(rgb)
        assert caught.value.code is ErrorCode.POOR_QUALITY and f"too {word}" in caught.value.message
    assert check_face(face)[2] > 64


async def test_model_face_found_false_is_no_face_and_not_cached(
    settings_for: Any, fake: FakeGemini
) -> None:
    fake.push(
        Stream(json.dumps({**FACIAL_RESULT, "face_found": False})),
        Stream(json.dumps(FACIAL_RESULT)),
    )
    async with analysis_runtime(gemini_settings(settings_for("redis"), fake)) as runtime:
        svc = service(runtime)
        user = await new_user()
        data = astronaut_jpeg()
        first = await start(svc, user, data)
        await send(svc, user, first["analysis_id"], data)
        row = await wait_terminal(first["analysis_id"])
        assert (row["status"], row["error_code"], row["result"]) == (
            "failed",
            "no_face_detected",
            None,
        )
        again = await start(svc, user, data)
        assert again.get("cached") is not True and "upload" in again  # nothing was cached
        await send(svc, user, again["analysis_id"], data)
        row = await wait_terminal(again["analysis_id"])
        assert (
            row["status"] == "done"
            and row["result"] == FACIAL_RESULT
            and "face_found" not in row["result"]
        )
        assert fake.calls == 2


async def test_locale_is_part_of_the_cache_key_and_the_prompt(
    settings_for: Any, fake: FakeGemini
) -> None:
    from synthia_rt import i18n

    fake.default = Stream(json.dumps(FACIAL_RESULT))
    async with analysis_runtime(gemini_settings(settings_for("memory"), fake)) as runtime:
        svc = service(runtime)
        user = await new_user()
        data = astronaut_jpeg()
        for locale in ("es", "en", "es"):
            with i18n.using(locale):
                reply = await start(svc, user, data)
                if "upload" in reply:
                    await send(svc, user, reply["analysis_id"], data)
                row = await wait_terminal(reply["analysis_id"])
            assert row["status"] == "done" and row["prompt_version"].endswith(f"+{locale}")
        assert fake.calls == 2  # es, en; the second es is a cache hit
        instructions = [r["systemInstruction"]["parts"][0]["text"] for r in fake.requests]
        assert "in Spanish" in instructions[0] and "in English" in instructions[1]
