"""Result schemas of the two analyses.

The same pydantic models are (1) Gemini's ``response_schema`` — so they stay inside the
schema subset Gemini accepts: objects, strings, numbers, arrays and ``Literal`` enums, no
patterns or unions — (2) the validator of every final result, whatever analyzer produced
it, and (3) the source of the protocol documentation. Constraints Gemini cannot express
(hex colours, a subseason belonging to its season) live in validators, which a model answer
must still pass.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FaceShape = Literal["oval", "round", "square", "heart", "diamond", "oblong", "triangle"]
Undertone = Literal["warm", "cool", "neutral", "olive"]
SkinTone = Literal["very_light", "light", "intermediate", "tan", "brown", "dark"]
Season = Literal["spring", "summer", "autumn", "winter"]
Subseason = Literal[
    "light_spring",
    "warm_spring",
    "clear_spring",
    "light_summer",
    "cool_summer",
    "soft_summer",
    "soft_autumn",
    "warm_autumn",
    "deep_autumn",
    "deep_winter",
    "cool_winter",
    "clear_winter",
]
Contrast = Literal["low", "medium", "high"]
RecommendationCategory = Literal["hairstyle", "eyewear", "makeup", "colors", "accessories"]
ChromaticCategory = Literal["clothing", "makeup", "hair_color", "jewelry"]
EyeShape = Literal["almond", "round", "hooded", "monolid", "upturned", "downturned"]
EyeSpacing = Literal["close", "balanced", "wide"]
BrowShape = Literal["straight", "soft_arch", "high_arch", "rounded", "angled"]
LipFullness = Literal["thin", "medium", "full"]
Width = Literal["narrow", "balanced", "wide"]  # a width relative to the cheekbones

SUBSEASONS: dict[str, tuple[str, ...]] = {
    "spring": ("light_spring", "warm_spring", "clear_spring"),
    "summer": ("light_summer", "cool_summer", "soft_summer"),
    "autumn": ("soft_autumn", "warm_autumn", "deep_autumn"),
    "winter": ("deep_winter", "cool_winter", "clear_winter"),
}
SEASON_OF: dict[str, str] = {sub: season for season, subs in SUBSEASONS.items() for sub in subs}
_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


class _Model(BaseModel):
    # Unknown fields from a model answer are dropped, not fatal: the schema is what we serve.
    model_config = ConfigDict(extra="ignore")


class Swatch(_Model):
    name: str = Field(description="Colour name, e.g. 'Terracotta'")
    hex: str = Field(description="sRGB colour as #RRGGBB")

    @field_validator("hex")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _HEX.match(value):
            raise ValueError("hex must be #RRGGBB")
        return value.upper()


class Skin(_Model):
    tone: SkinTone = Field(description="Lightness class (ITA° scale)")
    undertone: Undertone
    hex: str | None = Field(default=None, description="Representative skin colour #RRGGBB")


class Recommendation(_Model):
    category: RecommendationCategory
    title: str
    detail: str = ""


class Confidence(_Model):
    value: float = Field(ge=0, le=1, description="How sure the analysis is of this field, 0 to 1")
    reason: str = Field(description="Why, in one sentence in the user's language")


class FacialConfidence(_Model):
    face_shape: Confidence
    tone: Confidence
    undertone: Confidence


class FacialFeatures(_Model):
    """What a stylist reads off a face besides its shape. Each field is null when the analyzer
    could not judge it (the local analyzer measures proportions only)."""

    eye_shape: EyeShape | None = None
    eye_spacing: EyeSpacing | None = None
    brow_shape: BrowShape | None = None
    lip_fullness: LipFullness | None = None
    forehead: Width | None = Field(
        default=None, description="Forehead width relative to the cheekbones"
    )
    jaw: Width | None = Field(default=None, description="Jaw width relative to the cheekbones")
    forehead_ratio: float | None = Field(
        default=None, description="Forehead width / cheekbone width"
    )
    jaw_ratio: float | None = Field(default=None, description="Jaw width / cheekbone width")
    length_ratio: float | None = Field(default=None, description="Face length / cheekbone width")


class FacialResult(_Model):
    # Asked of the model: false (no human face in the photo) ends the analysis with
    # ``no_face_detected`` — never a result, never cached. Results cached before the field
    # existed read as true.
    face_found: bool = Field(
        default=True, exclude=True, description="Whether the photo shows a human face"
    )
    face_shape: FaceShape
    skin: Skin
    recommendations: list[Recommendation] = Field(min_length=1)
    summary: str = ""
    # Added with prompt 2026-12-01.3: optional, so results cached before them stay valid.
    confidence: FacialConfidence | None = None
    features: FacialFeatures | None = None


class ChromaticRecommendation(_Model):
    category: ChromaticCategory
    title: str
    detail: str = ""


class ChromaticConfidence(_Model):
    season: Confidence = Field(description="Of the season and its subseason")
    undertone: Confidence
    contrast: Confidence


class ChromaticResult(_Model):
    season: Season
    subseason: Subseason
    undertone: Undertone
    contrast: Contrast
    palette: list[Swatch] = Field(min_length=3, description="Colours that flatter")
    avoid: list[Swatch] = Field(default_factory=list, description="Colours to avoid")
    summary: str = ""
    # Added with prompt 2026-12-01.3: optional, so results cached before them stay valid.
    recommendations: list[ChromaticRecommendation] = Field(
        default_factory=list, description="Clothing, makeup, hair colour and jewellery metals"
    )
    confidence: ChromaticConfidence | None = None

    @model_validator(mode="after")
    def _subseason_in_season(self) -> ChromaticResult:
        if SEASON_OF[self.subseason] != self.season:
            raise ValueError(f"subseason {self.subseason} is not a {self.season} subseason")
        return self


RESULT_MODELS: dict[str, type[_Model]] = {"facial": FacialResult, "chromatic": ChromaticResult}
KINDS = tuple(RESULT_MODELS)


def validate_result(kind: str, data: object) -> dict[str, object]:
    """``data`` checked against the schema of ``kind``; raises pydantic's ValidationError."""
    model = RESULT_MODELS[kind]
    return model.model_validate(data).model_dump(mode="json")
