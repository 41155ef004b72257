"""Prompts sent to the model. Bump :data:`PROMPT_VERSION` whenever any text here changes:
it is part of every cache key and stored on every analysis row, so a new prompt never
serves answers produced by an old one.
"""

from __future__ import annotations

from collections.abc import Mapping

PROMPT_VERSION = (
    "2026-12-01.3"  # confidence + reason per field, facial features, chromatic recommendations
)

SYSTEM_INSTRUCTION = (
    "You are a professional image consultant. You analyse one person at a time and answer "
    "ONLY with JSON that matches the given response schema. Never identify the person, guess "
    "their name, age, ethnicity, health or any other sensitive attribute; describe only face "
    "geometry and colouring. Recommendations are practical and kind. If there is no human face "
    "in the image, answer with face_found false and nothing else; otherwise face_found is true."
)

FACIAL_PROMPT = (
    "Analyse the face in this photo. Determine the face shape from its proportions "
    "(forehead, cheekbone and jaw widths, face length), the skin tone on the ITA scale "
    "(very_light, light, intermediate, tan, brown, dark) and the skin undertone (warm, cool, "
    "neutral, olive) from the cheeks in neutral light. Then give 4 to 8 recommendations across "
    "hairstyle, eyewear, makeup, colors and accessories suited to that shape and colouring, and a "
    "two-sentence summary. Describe the features a stylist uses: eye shape, eye spacing, brow "
    "shape, lip fullness, forehead and jaw width relative to the cheekbones (narrow, balanced, "
    "wide) and the ratios forehead/cheekbones, jaw/cheekbones and face length/cheekbones; leave "
    "a feature null if the photo does not show it clearly. For face_shape, tone and undertone "
    "give a confidence from 0 to 1 and its reason in one sentence (what in the photo supports "
    "it or makes it uncertain: lighting, angle, hair, glasses)."
)

CHROMATIC_PROMPT = (
    "Determine this person's colour season in the 12-season system from their answers to a "
    "colour questionnaire. Weigh undertone (warm/cool), value (light/deep) and chroma "
    "(clear/soft). Give the season, the subseason, the undertone, the contrast level, a palette of "
    "8 to 12 flattering colours and 3 to 6 colours to avoid (names and #RRGGBB hex), a "
    "two-sentence summary, and recommendations in each category: clothing, makeup, hair_color and "
    "jewelry (which metals). For season, undertone and contrast give a confidence from 0 to 1 and "
    "its reason in one sentence (which answers support it, which are missing or contradict it).\n\nAnswers:\n{answers}\n\nA rule-based pre-estimate, which you may "
    "overrule: {estimate}."
)


LANGUAGES = {
    "es": "Spanish (neutral, understood in Spain and Latin America)",
    "en": "English",
}
LANGUAGE_INSTRUCTION = (
    "Write every free-text field (summary, recommendation titles and details, colour names, "
    "confidence reasons) in {language}. Enum values (face_shape, tone, undertone, season, "
    "subseason, contrast, category and the features) stay exactly as the schema spells them."
)


def language_instruction(locale: str) -> str:
    return LANGUAGE_INSTRUCTION.format(language=LANGUAGES.get(locale, LANGUAGES["es"]))


def chromatic_prompt(answers: Mapping[str, str], estimate: str) -> str:
    lines = "\n".join(f"- {question}: {answer}" for question, answer in answers.items())
    return CHROMATIC_PROMPT.format(answers=lines, estimate=estimate)
