"""The colour questionnaire and its 12-season scoring.

Each answer moves three axes — warmth (cool −, warm +), value (deep −, light +) and chroma
(soft −, clear +). The season family follows the *dominant* axis, as in the 12-season system:
light → light spring/summer, deep → deep autumn/winter, warm → warm spring/autumn,
cool → cool summer/winter, clear → clear spring/winter, soft → soft summer/autumn, the
secondary choice made by warmth (or, for the warm/cool families, by value and chroma).
Confidence grows with the share of questions answered and with the dominant axis' margin.
It is a heuristic meant for a live estimate, not a colour analyst.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from synthia_rt.analysis.models import SEASON_OF
from synthia_rt.errors import AppError, ErrorCode

# question id → (text, [(option id, label, (warmth, value, chroma))])
Effect = tuple[float, float, float]
QUESTIONS: dict[str, tuple[str, list[tuple[str, str, Effect]]]] = {
    "veins": ("What colour do the veins on your inner wrist look in daylight?", [
        ("blue_purple", "Blue or purple", (-2, 0, 0)),
        ("green", "Green or olive", (2, 0, 0)),
        ("mixed", "A mix / hard to tell", (0, 0, -0.5)),
    ]),
    "jewellery": ("Which metal flatters your skin more?", [
        ("silver", "Silver, platinum, white gold", (-2, 0, 0)),
        ("gold", "Yellow gold, brass, copper", (2, 0, 0)),
        ("both", "Both look fine", (0, 0, -0.5)),
    ]),
    "sun": ("How does your skin react to the sun?", [
        ("burns", "Burns easily, rarely tans", (-1, 2, 0)),
        ("burns_then_tans", "Burns first, then tans", (0, 1, 0)),
        ("tans_easily", "Tans easily, rarely burns", (1, -1, 0)),
        ("deep_tan", "Almost never burns, tans deeply", (0.5, -2, 0.5)),
    ]),
    "hair": ("What is your natural hair colour?", [
        ("platinum_ash", "Platinum or ash blonde", (-1, 2, -0.5)),
        ("golden_blonde", "Golden or strawberry blonde", (1.5, 2, 0.5)),
        ("light_ash_brown", "Light to medium ash brown", (-0.5, 0, -1.5)),
        ("red_auburn", "Red, copper or auburn", (2, -0.5, 0)),
        ("golden_brown", "Golden or chestnut brown", (1, -1, -0.5)),
        ("dark_brown", "Dark brown", (0, -2, 0.5)),
        ("black", "Black", (-0.5, -2.5, 1.5)),
    ]),
    "eyes": ("What colour are your eyes?", [
        ("icy_blue_grey", "Icy blue or grey", (-1, 1, 0.5)),
        ("bright_blue_green", "Bright blue, turquoise or emerald", (0, 0.5, 2)),
        ("soft_blue_grey_green", "Soft blue-grey or grey-green", (-0.5, 0.5, -1.5)),
        ("hazel", "Hazel or light green-brown", (1, 0, -1)),
        ("warm_brown", "Warm brown or amber", (1.5, -1, 0)),
        ("dark_brown", "Dark brown or black", (0, -2, 1)),
    ]),
    "white": ("Which looks better next to your face?", [
        ("pure_white", "Pure, bright white", (-1, 0, 1.5)),
        ("cream", "Cream or ivory", (1, 0, -1)),
        ("both", "No difference", (0, 0, 0)),
    ]),
    "contrast": ("How much contrast is there between your hair, skin and eyes?", [
        ("high", "High (e.g. dark hair, fair skin)", (0, 0, 2)),
        ("medium", "Medium", (0, 0, 0)),
        ("low", "Low, everything blends", (0, 0, -2)),
    ]),
    "skin": ("How would you describe your skin?", [
        ("porcelain", "Fair, porcelain", (0, 2, 0)),
        ("light", "Light", (0, 1, 0)),
        ("medium", "Medium", (0, 0, 0)),
        ("olive", "Olive", (0.5, -0.5, -0.5)),
        ("deep", "Deep", (0, -2, 0.5)),
    ]),
    "colours": ("Which colours get you the most compliments?", [
        ("bright", "Bright, saturated colours", (0, 0, 2)),
        ("muted", "Muted, dusty colours", (0, 0, -2)),
        ("earthy", "Warm earthy tones", (1.5, -0.5, -0.5)),
        ("icy", "Icy pastels and jewel tones", (-1.5, 0, 1)),
    ]),
}
MIN_ANSWERS = 4  # quiz.submit refuses fewer


@dataclass(frozen=True, slots=True)
class Estimate:
    season: str
    subseason: str
    undertone: str
    contrast: str
    confidence: float
    answered: int


def public_questions(locale: str | None = None) -> list[dict[str, object]]:
    """The questions and options to show; ``locale`` picks their language once translations
    exist (English until then)."""
    return [
        {"id": qid, "text": text, "options": [{"id": oid, "label": label} for oid, label, _ in options]}
        for qid, (text, options) in QUESTIONS.items()
    ]


def check_answer(question: str, answer: str) -> None:
    if question not in QUESTIONS:
        raise AppError(ErrorCode.VALIDATION_ERROR, "Unknown question.", field="question")
    if answer not in {oid for oid, _, _ in QUESTIONS[question][1]}:
        raise AppError(ErrorCode.VALIDATION_ERROR, "Unknown answer for this question.", field="answer")


def _axes(answers: Mapping[str, str]) -> tuple[float, float, float]:
    """(warmth, value, chroma), each normalised to [-1, 1] by the largest swing the answered
    questions allow on that axis — so an axis asked about more often does not win by volume."""
    total = [0.0, 0.0, 0.0]
    reach = [0.0, 0.0, 0.0]
    for qid, oid in answers.items():
        options = QUESTIONS[qid][1]
        effect = next(e for o, _, e in options if o == oid)
        for axis in range(3):
            total[axis] += effect[axis]
            reach[axis] += max(abs(e[axis]) for _, _, e in options)
    w, v, c = (t / r if r else 0.0 for t, r in zip(total, reach, strict=True))
    return w, v, c


def _subseason(w: float, v: float, c: float) -> str:
    axis = max(("value", abs(v)), ("warmth", abs(w)), ("chroma", abs(c)), key=lambda t: t[1])[0]
    warm = w >= 0
    if axis == "value":
        if v >= 0:
            return "light_spring" if warm else "light_summer"
        return "deep_autumn" if warm else "deep_winter"
    if axis == "chroma":
        if c >= 0:
            return "clear_spring" if warm else "clear_winter"
        return "soft_autumn" if warm else "soft_summer"
    if warm:
        return "warm_spring" if (v > 0 or c > 0) else "warm_autumn"
    return "cool_summer" if (v > 0 or c < 0) else "cool_winter"


def estimate(answers: Mapping[str, str]) -> Estimate:
    w, v, c = _axes(answers)
    sub = _subseason(w, v, c)
    undertone = "warm" if w > 0.2 else "cool" if w < -0.2 else "neutral"
    if answers.get("skin") == "olive" and answers.get("veins") in ("green", "mixed"):
        undertone = "olive"
    contrast = {"high": "high", "low": "low"}.get(answers.get("contrast", ""), "")
    if not contrast:
        contrast = "high" if c > 0.3 else "low" if c < -0.3 else "medium"
    ranked = sorted((abs(w), abs(v), abs(c)), reverse=True)
    margin = ranked[0] - ranked[1]
    coverage = len(answers) / len(QUESTIONS)
    # Evidence first: a clear margin on two answers is still a guess.
    confidence = round(min(0.95, 0.2 + 0.75 * coverage * (0.4 + 0.6 * margin)), 2) if answers else 0.0
    return Estimate(SEASON_OF[sub], sub, undertone, contrast, confidence, len(answers))


def describe(answers: Mapping[str, str]) -> dict[str, str]:
    """Answers as readable question text → option label (what a model is shown)."""
    out: dict[str, str] = {}
    for qid, oid in answers.items():
        text, options = QUESTIONS[qid]
        out[text] = next(label for o, label, _ in options if o == oid)
    return out
