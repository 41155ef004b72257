"""The local analyzer: OpenCV measurements and rule tables, no network, no model weights.

How it works (facial):

1. **Face.** OpenCV's Haar cascade (``haarcascade_frontalface_default.xml`` from
   ``cv2.data.haarcascades``) on the equalised greyscale image, downscaled to ≤1024 px; the
   largest detection wins; none → ``no_face_detected``.
2. **Skin.** Two cheek patches inside the face box, filtered to skin-like pixels (YCrCb
   bounds), converted to CIELAB; the median L*, a*, b* is the skin colour. Tone from the
   Individual Typology Angle ``ITA° = atan((L* − 50) / b*)`` with the usual bands
   (>55 very light, >41 light, >28 intermediate, >10 tan, >−30 brown, else dark).
   Undertone from the hue angle ``h = atan2(b*, a*)``: yellow-leaning (h ≥ 58°) warm,
   red-leaning (h ≤ 45°) cool, in between neutral; a yellow-leaning but low-chroma, low-a*
   skin is olive.
3. **Shape.** A skin mask around the face (pixels close to the measured skin colour in
   Lab, cleaned morphologically, the component under the face centre) gives the widths of
   forehead, cheekbones and jaw at fixed fractions of the face box; the face length is the
   box height scaled to hairline-to-chin (×1.3). Ratios map to the seven shapes by rules.
4. **Recommendations** come from :mod:`synthia_rt.analysis.rules` by shape and undertone,
   in the run's locale (:mod:`synthia_rt.i18n`), as are the summary and colour names.

Partials stream stage by stage (skin, then shape, then recommendations).

Limits, honestly: a Haar cascade finds frontal, upright, well-lit faces only (no profiles,
strong tilt or heavy occlusion); skin colour follows the photo's white balance and lighting
(no colour constancy), so a warm indoor light reads as a warm undertone; hair, beards,
glasses or a skin-coloured background disturb the width profile and thus the shape; the
length factor is an average, not a measured chin. It is a fallback and a test double for
the model, not a substitute for it.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import orjson
from numpy.typing import NDArray
from PIL import Image

from synthia_rt import i18n
from synthia_rt.analysis import quiz, rules
from synthia_rt.analysis.analyzer import AnalyzerOutput, PartialSink
from synthia_rt.analysis.models import validate_result
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.i18n import N_, ngettext
from synthia_rt.i18n import gettext as _
from synthia_rt.settings import Settings
from synthia_rt.uploads.validate import FORMATS, ValidatedImage

MODEL = "local-opencv-1"
RULES_VERSION = "rules-2026-12-01.2"  # bump when rules.py, a threshold or a text here changes
MAX_SIDE = 1024
_CASCADE_FILE = "haarcascade_frontalface_default.xml"

RGB = NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class SkinColour:
    lightness: float
    a: float
    b: float

    @property
    def ita(self) -> float:
        return math.degrees(math.atan2(self.lightness - 50.0, self.b))

    @property
    def hue(self) -> float:
        return math.degrees(math.atan2(self.b, self.a))


def tone_of(skin: SkinColour) -> str:
    ita = skin.ita
    for bound, name in (
        (55, "very_light"),
        (41, "light"),
        (28, "intermediate"),
        (10, "tan"),
        (-30, "brown"),
    ):
        if ita > bound:
            return name
    return "dark"


def undertone_of(skin: SkinColour) -> str:
    hue, chroma = skin.hue, math.hypot(skin.a, skin.b)
    if hue >= 58 and chroma < 20 and skin.a < 9:
        return "olive"
    if hue >= 58:
        return "warm"
    if hue <= 45:
        return "cool"
    return "neutral"


def shape_of(forehead: float, cheeks: float, jaw: float, length: float) -> str:
    """The face shape from widths at three heights and the face length (any unit)."""
    ratio = length / cheeks
    if ratio >= 1.55:
        return "oblong"
    if jaw > cheeks * 0.97 and forehead < cheeks * 0.9:
        return "triangle"
    if forehead >= cheeks * 0.95 and jaw < cheeks * 0.78:
        return "heart"
    if cheeks > forehead * 1.12 and cheeks > jaw * 1.12:
        return "diamond"
    if ratio < 1.25:
        return "square" if jaw >= cheeks * 0.9 else "round"
    return "oval"


def _hex(rgb: NDArray[np.float32]) -> str:
    r, g, b = (int(round(float(c) * 255)) for c in rgb)
    return f"#{r:02X}{g:02X}{b:02X}"


# The face check (before any model call): thresholds on the ≤1024 px working image.
MIN_FACE_SIDE = 64  # px: below this the cheeks and jaw are a handful of pixels
MIN_FACE_BRIGHTNESS = 45.0  # mean grey level (0–255) of the face box before equalisation
MIN_FACE_SHARPNESS = 25.0  # variance of the Laplacian of the face resized to 128×128
SECOND_FACE_SHARE = 0.4  # a second detection at least this fraction of the largest's side counts

DETECTION_WEIGHT_SCALE = (
    4.0  # level weight → strength 1 − exp(−weight / scale); a clear face scores ~7
)


def width_class(ratio: float) -> str:
    """A width relative to the cheekbones as narrow / balanced / wide."""
    return "narrow" if ratio < 0.85 else "wide" if ratio > 0.97 else "balanced"


def _unit(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 2)


POOR_SMALL = N_(
    "The face is too small to judge; move closer so that your face fills most of the photo."
)
POOR_DARK = N_("The face is too dark to judge; take the photo facing a window or in daylight.")
POOR_BLURRED = N_(
    "The face is too blurred to judge; hold the camera still and make sure it is in focus."
)


def load_rgb(data: bytes) -> RGB:
    with Image.open(io.BytesIO(data), formats=list(FORMATS)) as img:
        img.thumbnail((MAX_SIDE, MAX_SIDE))
        rgb: RGB = np.asarray(img.convert("RGB"))
    return rgb


def check_face(rgb: RGB) -> tuple[int, int, int, int]:
    """The one face in ``rgb`` as (x, y, w, h), or the refusal: ``no_face_detected``,
    ``multiple_faces`` or ``poor_quality`` (with a hint how to retake the photo).

    Runs before every facial analysis, whatever the analyzer: a photo that cannot be judged
    never reaches the model (see :meth:`Pipeline._run`)."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + _CASCADE_FILE)  # type: ignore[attr-defined]
    raw = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey = cv2.equalizeHist(raw)
    side = max(24, int(min(grey.shape) * 0.08))
    faces = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    if len(faces) == 0:
        raise AppError(ErrorCode.NO_FACE_DETECTED)
    ranked = sorted(
        ((int(x), int(y), int(w), int(h)) for x, y, w, h in faces),
        key=lambda f: f[2] * f[3],
        reverse=True,
    )
    x, y, w, h = ranked[0]
    if any(other[2] >= SECOND_FACE_SHARE * w for other in ranked[1:]):
        raise AppError(ErrorCode.MULTIPLE_FACES)
    if min(w, h) < MIN_FACE_SIDE:
        raise AppError(ErrorCode.POOR_QUALITY, POOR_SMALL)
    face = raw[y : y + h, x : x + w]
    if float(face.mean()) < MIN_FACE_BRIGHTNESS:
        raise AppError(ErrorCode.POOR_QUALITY, POOR_DARK)
    sharpness = float(
        cv2.Laplacian(cv2.resize(face, (128, 128), interpolation=cv2.INTER_AREA), cv2.CV_64F).var()
    )
    if sharpness < MIN_FACE_SHARPNESS:
        raise AppError(ErrorCode.POOR_QUALITY, POOR_BLURRED)
    return x, y, w, h


def check_image(data: bytes) -> None:
    """:func:`check_face` on encoded image bytes (CPU-bound: run it in a thread)."""
    check_face(load_rgb(data))


class _Face:
    """One photo's measurements; each stage is CPU-bound and runs in a worker thread."""

    def __init__(self, data: bytes) -> None:
        self.rgb: RGB = load_rgb(data)
        self.lab = cv2.cvtColor(self.rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
        self.box: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.skin = SkinColour(0, 0, 0)
        self.skin_rgb = np.zeros(3, np.float32)
        self.strength = 0.0  # 0–1 from the cascade's level weight of the detection
        self.skin_share = 0.0  # share of the cheek pixels that passed the skin filter
        self.skin_pixels = 0
        self.widths = (0.0, 0.0, 0.0)  # forehead, cheekbones, jaw (px)
        self.widths_measured = 0  # of the three rows, how many found the skin mask

    def detect(self) -> None:
        self.box = check_face(self.rgb)
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + _CASCADE_FILE)  # type: ignore[attr-defined]
        grey = cv2.equalizeHist(cv2.cvtColor(self.rgb, cv2.COLOR_RGB2GRAY))
        side = max(24, int(min(grey.shape) * 0.08))
        rects, _levels, weights = cascade.detectMultiScale3(
            grey, scaleFactor=1.1, minNeighbors=5, minSize=(side, side), outputRejectLevels=True
        )
        x, y, w, h = self.box
        for (rx, ry, rw, _height), weight in zip(rects, weights, strict=False):
            if (
                abs(int(rx) - x) <= w // 4
                and abs(int(ry) - y) <= h // 4
                and abs(int(rw) - w) <= w // 4
            ):
                self.strength = max(
                    self.strength, 1.0 - math.exp(-max(0.0, float(weight)) / DETECTION_WEIGHT_SCALE)
                )

    def _patch(
        self, image: NDArray[Any], fx0: float, fy0: float, fx1: float, fy1: float
    ) -> NDArray[Any]:
        x, y, w, h = self.box
        return image[
            y + int(fy0 * h) : y + int(fy1 * h), x + int(fx0 * w) : x + int(fx1 * w)
        ].reshape(-1, image.shape[2])

    def measure_skin(self) -> None:
        ycc = cv2.cvtColor(self.rgb, cv2.COLOR_RGB2YCrCb)
        patches = [(0.15, 0.5, 0.38, 0.72), (0.62, 0.5, 0.85, 0.72)]  # the two cheeks
        lab = np.concatenate([self._patch(self.lab, *p) for p in patches])
        rgb = np.concatenate([self._patch(self.rgb, *p) for p in patches])
        cr_cb = np.concatenate([self._patch(ycc, *p) for p in patches])[:, 1:]
        skinlike = (
            (cr_cb[:, 0] >= 133) & (cr_cb[:, 0] <= 173) & (cr_cb[:, 1] >= 77) & (cr_cb[:, 1] <= 127)
        )
        self.skin_share = float(skinlike.mean()) if skinlike.size else 0.0
        if skinlike.sum() >= max(10, lab.shape[0] // 10):  # else trust the box (odd lighting)
            lab, rgb = lab[skinlike], rgb[skinlike]
        self.skin_pixels = int(lab.shape[0])
        lightness, a, b = (float(v) for v in np.median(lab, axis=0))
        self.skin = SkinColour(lightness, a, b)
        self.skin_rgb = np.median(rgb, axis=0).astype(np.float32) / 255.0

    def measure_shape(self) -> str:
        x, y, w, h = self.box
        rows, cols = self.lab.shape[:2]
        x0, x1 = max(0, x - w // 4), min(cols, x + w + w // 4)
        y0, y1 = max(0, y - h // 10), min(rows, y + int(1.3 * h))
        region = self.lab[y0:y1, x0:x1]
        ref = np.array([self.skin.lightness, self.skin.a, self.skin.b], np.float32)
        dist = np.linalg.norm((region - ref) * np.array([0.5, 1.0, 1.0], np.float32), axis=2)
        mask = (dist < 14).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
        centre = labels[y + h // 2 - y0, x + w // 2 - x0]
        if centre == 0 and count > 1:
            centre = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        face = labels == centre

        measured = 0

        def width(fraction: float) -> float:
            nonlocal measured
            row = face[min(face.shape[0] - 1, y - y0 + int(fraction * h))]
            filled = np.flatnonzero(row)
            measured += bool(filled.size)
            return float(filled[-1] - filled[0] + 1) if filled.size else float(w) * 0.8

        forehead, cheeks, jaw = width(0.18), max(width(0.45), 1.0), width(0.85)
        self.widths, self.widths_measured = (forehead, cheeks, jaw), measured
        return shape_of(forehead, cheeks, jaw, 1.3 * h)

    def features(self) -> dict[str, Any]:
        """The proportions the width profile gives; eyes, brows and lips are not measured."""
        forehead, cheeks, jaw = self.widths
        return {
            "eye_shape": None,
            "eye_spacing": None,
            "brow_shape": None,
            "lip_fullness": None,
            "forehead": width_class(forehead / cheeks),
            "jaw": width_class(jaw / cheeks),
            "forehead_ratio": round(forehead / cheeks, 2),
            "jaw_ratio": round(jaw / cheeks, 2),
            "length_ratio": round(1.3 * self.box[3] / cheeks, 2),
        }

    def confidence(self) -> dict[str, dict[str, Any]]:
        """Per field: how far the measurement can be trusted, and what was measured."""
        # Shape: the detection, and how many of the three width rows found the skin mask;
        # capped because the face length is an average factor, not a measured chin.
        shape = 0.7 * self.strength * (0.4 + 0.2 * self.widths_measured)
        # Colour: the detection and the share of skin-like cheek pixels; capped because the
        # photo's white balance shifts every colour (no colour constancy).
        tone = 0.8 * self.strength * (0.5 + 0.5 * self.skin_share)
        # Undertone: as the tone, less when the hue sits near a class boundary (45°, 58°).
        margin = min(abs(self.skin.hue - 45.0), abs(self.skin.hue - 58.0))
        under = tone * (0.6 + 0.4 * min(1.0, margin / 10.0)) * 0.85
        return {
            "face_shape": {
                "value": _unit(shape),
                "reason": _(
                    "Measured from the widths of forehead, cheekbones and jaw in the detected face ({rows} of 3 rows "
                    "found); the face length is estimated from the face box, not measured."
                ).format(rows=self.widths_measured),
            },
            "tone": {
                "value": _unit(tone),
                "reason": _(
                    "Measured on {pixels} skin pixels of both cheeks (ITA {ita}°); the light and white balance of the "
                    "photo shift it."
                ).format(pixels=self.skin_pixels, ita=f"{self.skin.ita:.0f}"),
            },
            "undertone": {
                "value": _unit(under),
                "reason": _(
                    "From the hue angle of the cheeks ({hue}°: up to 45° reads cool, from 58° warm); a coloured light "
                    "changes it."
                ).format(hue=f"{self.skin.hue:.0f}"),
            },
        }


class LocalAnalyzer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model = MODEL
        self.prompt_version = RULES_VERSION
        # The measuring is CPU-bound (in threads): more at once than cores only queues up.
        self._cpu = asyncio.Semaphore(max(1, os.cpu_count() or 1))

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def facial(self, image: ValidatedImage, on_partial: PartialSink) -> AnalyzerOutput:
        async with self._cpu:
            face = await asyncio.to_thread(_Face, image.data)
            await asyncio.to_thread(face.detect)
            await asyncio.to_thread(face.measure_skin)
        partial: dict[str, Any] = {}
        skin = {
            "tone": tone_of(face.skin),
            "undertone": undertone_of(face.skin),
            "hex": _hex(face.skin_rgb),
        }
        await _emit(on_partial, partial, {"skin": skin})
        async with self._cpu:
            shape = await asyncio.to_thread(face.measure_shape)
        await _emit(on_partial, partial, {"face_shape": shape, "features": face.features()})
        recs = [
            _translated(r)
            for r in (*rules.SHAPE_RULES[shape], *rules.UNDERTONE_RULES[skin["undertone"]])
        ]
        summary = _(
            "{shape} face, {tone} skin, {undertone} undertone (ITA {ita}°, hue {hue}°), measured locally."
        ).format(
            shape=i18n.label("face_shape", shape).lower(),
            tone=i18n.label("tone", skin["tone"]).lower(),
            undertone=i18n.label("undertone", skin["undertone"]).lower(),
            ita=f"{face.skin.ita:.0f}",
            hue=f"{face.skin.hue:.0f}",
        )
        summary = summary[:1].upper() + summary[1:]
        confidence = face.confidence()
        await _emit(
            on_partial,
            partial,
            {"recommendations": recs, "summary": summary, "confidence": confidence},
        )
        return AnalyzerOutput(
            validate_result("facial", partial), self.model, {"measurements": _numbers(face)}
        )

    async def chromatic(
        self, answers: Mapping[str, str], on_partial: PartialSink
    ) -> AnalyzerOutput:
        est = quiz.estimate(answers)
        partial: dict[str, Any] = {}
        head = {
            "season": est.season,
            "subseason": est.subseason,
            "undertone": est.undertone,
            "contrast": est.contrast,
        }
        await _emit(on_partial, partial, head)
        palette, avoid = (_named(p) for p in rules.PALETTES[est.subseason])
        await _emit(on_partial, partial, {"palette": palette})
        summary = ngettext(
            "{subseason} from {count} answer (confidence {confidence}%).",
            "{subseason} from {count} answers (confidence {confidence}%).",
            est.answered,
        ).format(
            subseason=i18n.label("subseason", est.subseason),
            count=est.answered,
            confidence=round(est.confidence * 100),
        )
        recs = [
            _translated(r)
            for r in (*rules.SEASON_RULES[est.season], *rules.METAL_RULES[est.undertone])
        ]
        await _emit(
            on_partial,
            partial,
            {
                "avoid": avoid,
                "summary": summary,
                "recommendations": recs,
                "confidence": quiz.confidences(answers, est),
            },
        )
        return AnalyzerOutput(
            validate_result("chromatic", partial), self.model, {"confidence": est.confidence}
        )


def _translated(rec: rules.Rec) -> rules.Rec:
    return {**rec, "title": _(rec["title"]), "detail": _(rec["detail"])}


def _named(swatches: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{**s, "name": _(s["name"])} for s in swatches]


async def _emit(on_partial: PartialSink, partial: dict[str, Any], update: dict[str, Any]) -> None:
    partial.update(update)
    await on_partial(orjson.dumps(update).decode(), dict(partial))


def _numbers(face: _Face) -> dict[str, float]:
    return {
        "L": round(face.skin.lightness, 2),
        "a": round(face.skin.a, 2),
        "b": round(face.skin.b, 2),
        "ita": round(face.skin.ita, 2),
        "hue": round(face.skin.hue, 2),
    }
