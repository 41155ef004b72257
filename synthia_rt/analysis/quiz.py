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
from synthia_rt.i18n import N_, gettext

# question id → (text, [(option id, label, (warmth, value, chroma))])
Effect = tuple[float, float, float]
QUESTIONS: dict[str, tuple[str, list[tuple[str, str, Effect]]]] = {
    "veins": (
        N_("What colour do the veins on your inner wrist look in daylight?"),
        [
            ("blue_purple", N_("Blue or purple"), (-2, 0, 0)),
            ("green", N_("Green or olive"), (2, 0, 0)),
            ("mixed", N_("A mix / hard to tell"), (0, 0, -0.5)),
        ],
    ),
    "jewellery": (
        N_("Which metal flatters your skin more?"),
        [
            ("silver", N_("Silver, platinum, white gold"), (-2, 0, 0)),
            ("gold", N_("Yellow gold, brass, copper"), (2, 0, 0)),
            ("both", N_("Both look fine"), (0, 0, -0.5)),
        ],
    ),
    "sun": (
        N_("How does your skin react to the sun?"),
        [
            ("burns", N_("Burns easily, rarely tans"), (-1, 2, 0)),
            ("burns_then_tans", N_("Burns first, then tans"), (0, 1, 0)),
            ("tans_easily", N_("Tans easily, rarely burns"), (1, -1, 0)),
            ("deep_tan", N_("Almost never burns, tans deeply"), (0.5, -2, 0.5)),
        ],
    ),
    "hair": (
        N_("What is your natural hair colour?"),
        [
            ("platinum_ash", N_("Platinum or ash blonde"), (-1, 2, -0.5)),
            ("golden_blonde", N_("Golden or strawberry blonde"), (1.5, 2, 0.5)),
            ("light_ash_brown", N_("Light to medium ash brown"), (-0.5, 0, -1.5)),
            ("red_auburn", N_("Red, copper or auburn"), (2, -0.5, 0)),
            ("golden_brown", N_("Golden or chestnut brown"), (1, -1, -0.5)),
            ("dark_brown", N_("Dark brown"), (0, -2, 0.5)),
            ("black", N_("Black"), (-0.5, -2.5, 1.5)),
        ],
    ),
    "eyes": (
        N_("What colour are your eyes?"),
        [
            ("icy_blue_grey", N_("Icy blue or grey"), (-1, 1, 0.5)),
            ("bright_blue_green", N_("Bright blue, turquoise or emerald"), (0, 0.5, 2)),
            ("soft_blue_grey_green", N_("Soft blue-grey or grey-green"), (-0.5, 0.5, -1.5)),
            ("hazel", N_("Hazel or light green-brown"), (1, 0, -1)),
            ("warm_brown", N_("Warm brown or amber"), (1.5, -1, 0)),
            ("dark_brown", N_("Dark brown or black"), (0, -2, 1)),
        ],
    ),
    "white": (
        N_("Which looks better next to your face?"),
        [
            ("pure_white", N_("Pure, bright white"), (-1, 0, 1.5)),
            ("cream", N_("Cream or ivory"), (1, 0, -1)),
            ("both", N_("No difference"), (0, 0, 0)),
        ],
    ),
    "contrast": (
        N_("How much contrast is there between your hair, skin and eyes?"),
        [
            ("high", N_("High (e.g. dark hair, fair skin)"), (0, 0, 2)),
            ("medium", N_("Medium"), (0, 0, 0)),
            ("low", N_("Low, everything blends"), (0, 0, -2)),
        ],
    ),
    "skin": (
        N_("How would you describe your skin?"),
        [
            ("porcelain", N_("Fair, porcelain"), (0, 2, 0)),
            ("light", N_("Light"), (0, 1, 0)),
            ("medium", N_("Medium"), (0, 0, 0)),
            ("olive", N_("Olive"), (0.5, -0.5, -0.5)),
            ("deep", N_("Deep"), (0, -2, 0.5)),
        ],
    ),
    "colours": (
        N_("Which colours get you the most compliments?"),
        [
            ("bright", N_("Bright, saturated colours"), (0, 0, 2)),
            ("muted", N_("Muted, dusty colours"), (0, 0, -2)),
            ("earthy", N_("Warm earthy tones"), (1.5, -0.5, -0.5)),
            ("icy", N_("Icy pastels and jewel tones"), (-1.5, 0, 1)),
        ],
    ),
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
    """The questions in ``locale`` (default: the current one); ids stay English identifiers."""
    return [
        {
            "id": qid,
            "text": gettext(text, locale),
            "options": [{"id": oid, "label": gettext(label, locale)} for oid, label, _ in options],
        }
        for qid, (text, options) in QUESTIONS.items()
    ]


def check_answer(question: str, answer: str) -> None:
    if question not in QUESTIONS:
        raise AppError(ErrorCode.VALIDATION_ERROR, "Unknown question.", field="question")
    if answer not in {oid for oid, _, _ in QUESTIONS[question][1]}:
        raise AppError(
            ErrorCode.VALIDATION_ERROR, "Unknown answer for this question.", field="answer"
        )


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
    confidence = (
        round(min(0.95, 0.2 + 0.75 * coverage * (0.4 + 0.6 * margin)), 2) if answers else 0.0
    )
    return Estimate(SEASON_OF[sub], sub, undertone, contrast, confidence, len(answers))


AXES = (N_("warmth"), N_("depth"), N_("colour intensity"))  # the three axes as a reader names them


def confidences(answers: Mapping[str, str], est: Estimate) -> dict[str, dict[str, object]]:
    """Per field of the chromatic result: a 0–1 confidence and its reason, in the current locale."""
    w, v, c = _axes(answers)
    total = len(QUESTIONS)
    deciding = max(range(3), key=lambda i: (abs(w), abs(v), abs(c))[i])
    warmth_total = sum(1 for _, options in QUESTIONS.values() if any(e[0] for _, _, e in options))
    warmth_answered = sum(1 for q in answers if any(e[0] for _, _, e in QUESTIONS[q][1]))
    under = 0.2 + 0.75 * (warmth_answered / warmth_total) * min(1.0, 0.3 + abs(w))
    if "contrast" in answers:
        contrast, contrast_reason = (
            0.9,
            gettext("You described the contrast of your hair, skin and eyes yourself."),
        )
    else:
        contrast = 0.2 + 0.5 * (len(answers) / total) * min(1.0, abs(c) / 0.6)
        contrast_reason = gettext(
            "Inferred from how clear or soft your colouring answers are; the contrast question was not answered."
        )
    return {
        "season": {
            "value": est.confidence,
            "reason": gettext(
                "Scored from {count} of {total} answers, with {axis} as the deciding trait."
            ).format(count=est.answered, total=total, axis=gettext(AXES[deciding])),
        },
        "undertone": {
            "value": round(min(0.95, under), 2),
            "reason": gettext(
                "From the {count} of {total} warmth questions you answered (veins, metals, hair, eyes and others)."
            ).format(count=warmth_answered, total=warmth_total),
        },
        "contrast": {"value": round(min(0.95, contrast), 2), "reason": contrast_reason},
    }


def describe(answers: Mapping[str, str]) -> dict[str, str]:
    """Answers as readable question text → option label (what a model is shown)."""
    out: dict[str, str] = {}
    for qid, oid in answers.items():
        text, options = QUESTIONS[qid]
        out[text] = next(label for o, label, _ in options if o == oid)
    return out
