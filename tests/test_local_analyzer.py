"""The local (OpenCV + rules) analyzer on real photos and on its measuring rules."""

from __future__ import annotations

from typing import Any, get_args

import numpy as np
import pytest

from synthia_rt.analysis.local import LocalAnalyzer, SkinColour, shape_of, tone_of, undertone_of
from synthia_rt.analysis.models import FaceShape, FacialResult, SkinTone, Undertone
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.settings import Settings
from synthia_rt.uploads.validate import ValidatedImage, validate_image
from tests.analysis_support import astronaut_jpeg, coffee_jpeg, encode

LIMITS = {"max_pixels": 40_000_000, "max_bytes": 10 * 1024 * 1024}


class Partials:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, delta: str, partial: dict[str, Any]) -> None:
        self.seen.append((delta, partial))


def image(data: bytes) -> ValidatedImage:
    return validate_image(data, **LIMITS)


async def test_astronaut_gets_a_complete_facial_result() -> None:
    sink = Partials()
    out = await LocalAnalyzer(Settings()).facial(image(astronaut_jpeg()), sink)
    result = FacialResult.model_validate(out.result)
    assert result.face_shape in get_args(FaceShape)
    assert result.skin.tone in get_args(SkinTone)
    assert result.skin.undertone in get_args(Undertone)
    assert {r.category for r in result.recommendations} >= {"hairstyle", "eyewear", "colors"}
    assert out.model == "local-opencv-1"
    # Eileen Collins photographed in daylight: light skin (ITA° well above 28).
    assert result.skin.tone in ("very_light", "light")
    # Streamed stage by stage: skin, then shape, then recommendations; each partial grows.
    assert [list(p) for _, p in sink.seen] == [
        ["skin"], ["skin", "face_shape"], ["skin", "face_shape", "recommendations", "summary"],
    ]
    assert sink.seen[-1][1] == out.result


@pytest.mark.parametrize("photo", ["coffee", "gradient"])
async def test_no_face_is_no_face_detected(photo: str) -> None:
    if photo == "coffee":
        data = coffee_jpeg()
    else:
        ramp = np.linspace(0, 255, 640, dtype=np.uint8)
        data = encode(np.dstack([np.tile(ramp, (480, 1))] * 3), "PNG")
    sink = Partials()
    with pytest.raises(AppError) as info:
        await LocalAnalyzer(Settings()).facial(image(data), sink)
    assert info.value.code == ErrorCode.NO_FACE_DETECTED
    assert sink.seen == []


@pytest.mark.parametrize(
    ("forehead", "cheeks", "jaw", "length", "shape"),
    [
        (90, 100, 80, 170, "oblong"),
        (80, 100, 100, 130, "triangle"),
        (100, 100, 70, 130, "heart"),
        (85, 100, 85, 135, "diamond"),
        (95, 100, 95, 115, "square"),
        (92, 100, 80, 115, "round"),
        (92, 100, 85, 135, "oval"),
    ],
)
def test_face_shape_rules(forehead: float, cheeks: float, jaw: float, length: float, shape: str) -> None:
    assert shape_of(forehead, cheeks, jaw, length) == shape


@pytest.mark.parametrize(
    ("lightness", "b", "tone"),
    [(80, 15, "very_light"), (68, 18, "light"), (60, 18, "intermediate"), (55, 18, "tan"), (40, 20, "brown"), (25, 15, "dark")],
)
def test_skin_tone_follows_ita_bands(lightness: float, b: float, tone: str) -> None:
    assert tone_of(SkinColour(lightness, 10, b)) == tone


@pytest.mark.parametrize(
    ("a", "b", "undertone"),
    [(8, 18, "olive"), (12, 24, "warm"), (16, 12, "cool"), (14, 17, "neutral")],
)
def test_undertone_follows_the_hue_angle(a: float, b: float, undertone: str) -> None:
    assert undertone_of(SkinColour(65, a, b)) == undertone


async def test_local_chromatic_result_from_answers() -> None:
    sink = Partials()
    answers = {"veins": "blue_purple", "jewellery": "silver", "hair": "black", "eyes": "dark_brown",
               "contrast": "high", "white": "pure_white"}
    out = await LocalAnalyzer(Settings()).chromatic(answers, sink)
    assert out.result["season"] == "winter"
    assert out.result["subseason"].endswith("_winter")
    assert all(s["hex"].startswith("#") and len(s["hex"]) == 7 for s in out.result["palette"])
    assert len(sink.seen) == 3 and sink.seen[-1][1] == out.result
