"""The local (OpenCV + rules) analyzer on real photos and on its measuring rules."""

from __future__ import annotations

from typing import Any, get_args

import numpy as np
import pytest

from synthia_rt import i18n
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
        ["skin"],
        ["skin", "face_shape", "features"],
        ["skin", "face_shape", "features", "recommendations", "summary", "confidence"],
    ]
    assert sink.seen[-1][1] == out.result


async def test_astronaut_confidences_and_reasons_in_spanish() -> None:
    with i18n.using("es"):
        out = await LocalAnalyzer(Settings()).facial(image(astronaut_jpeg()), Partials())
    result = FacialResult.model_validate(out.result)
    assert result.confidence is not None and result.features is not None
    scores = {
        field: getattr(result.confidence, field) for field in ("face_shape", "tone", "undertone")
    }
    assert all(0.0 < c.value <= 1.0 for c in scores.values())
    # A clear frontal face in daylight: the detection is strong, the colour capped by the
    # unknown white balance, the shape by the estimated face length.
    assert scores["tone"].value > 0.4 and scores["face_shape"].value <= 0.7
    assert scores["face_shape"].reason.startswith("Medido a partir del ancho de la frente")
    assert (
        "píxeles de piel" in scores["tone"].reason
        and "ángulo de matiz" in scores["undertone"].reason
    )
    # Only what the face box and the skin mask measure: proportions, no eyes, brows or lips.
    features = result.features
    assert features.forehead in ("narrow", "balanced", "wide") and features.jaw in (
        "narrow",
        "balanced",
        "wide",
    )
    assert (
        features.forehead_ratio and features.jaw_ratio and 1.0 < (features.length_ratio or 0) < 2.5
    )
    assert (
        features.eye_shape,
        features.eye_spacing,
        features.brow_shape,
        features.lip_fullness,
    ) == (None,) * 4
    shown: Any = i18n.result_labels("facial", out.result, "es")["features"]
    assert set(shown) == {"forehead", "jaw"} and shown["jaw"].split()[0] == "Mandíbula"


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
def test_face_shape_rules(
    forehead: float, cheeks: float, jaw: float, length: float, shape: str
) -> None:
    assert shape_of(forehead, cheeks, jaw, length) == shape


@pytest.mark.parametrize(
    ("lightness", "b", "tone"),
    [
        (80, 15, "very_light"),
        (68, 18, "light"),
        (60, 18, "intermediate"),
        (55, 18, "tan"),
        (40, 20, "brown"),
        (25, 15, "dark"),
    ],
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
    answers = {
        "veins": "blue_purple",
        "jewellery": "silver",
        "hair": "black",
        "eyes": "dark_brown",
        "contrast": "high",
        "white": "pure_white",
    }
    out = await LocalAnalyzer(Settings()).chromatic(answers, sink)
    assert out.result["season"] == "winter"
    assert out.result["subseason"].endswith("_winter")
    assert all(s["hex"].startswith("#") and len(s["hex"]) == 7 for s in out.result["palette"])
    assert len(sink.seen) == 3 and sink.seen[-1][1] == out.result
    # Recommendations by category, like the facial ones: a cool winter wears silver.
    by_category = {r["category"]: r for r in out.result["recommendations"]}
    assert set(by_category) == {"clothing", "makeup", "hair_color", "jewelry"}
    assert by_category["jewelry"]["title"] == i18n.gettext("Silver and platinum")
    confidence = out.result["confidence"]
    assert set(confidence) == {"season", "undertone", "contrast"}
    assert all(0.0 <= c["value"] <= 1.0 and c["reason"].endswith(".") for c in confidence.values())
    assert confidence["contrast"]["value"] == 0.9  # answered directly


async def test_chromatic_confidence_follows_the_evidence_in_spanish() -> None:
    few = {"veins": "mixed", "jewellery": "both", "sun": "burns_then_tans", "skin": "medium"}
    many = {
        "veins": "blue_purple",
        "jewellery": "silver",
        "sun": "burns",
        "hair": "platinum_ash",
        "eyes": "icy_blue_grey",
        "white": "pure_white",
        "skin": "porcelain",
        "colours": "icy",
    }
    with i18n.using("es"):
        weak = (await LocalAnalyzer(Settings()).chromatic(few, Partials())).result
        strong = (await LocalAnalyzer(Settings()).chromatic(many, Partials())).result
    for field in ("season", "undertone"):
        assert weak["confidence"][field]["value"] < strong["confidence"][field]["value"]
    assert strong["confidence"]["season"]["reason"].startswith(
        "Calculado a partir de 8 de 9 respuestas"
    )
    assert (
        "no respondiste la pregunta sobre el contraste" in weak["confidence"]["contrast"]["reason"]
    )
    assert {r["category"] for r in strong["recommendations"]} == {
        "clothing",
        "makeup",
        "hair_color",
        "jewelry",
    }
    assert any(r["title"] == "Plata y platino" for r in strong["recommendations"])
