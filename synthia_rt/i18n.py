"""Locales ``es`` and ``en``: gettext catalogs through Babel.

* **Catalogs.** ``synthia_rt/locale/<lang>/LC_MESSAGES/messages.po`` are the source (in the
  repository and in the wheel, as package data). A ``messages.mo`` next to one is used when
  it is at least as new; otherwise the ``.po`` is compiled in memory at first use — so a
  checkout, ``pip install -e .`` and a wheel all work without a build step. Msgids are the
  English texts (``pybabel extract -F babel.cfg``); English is the identity catalog.
* **Marking.** ``N_("…")`` marks a string for extraction where it is defined (tables of
  questions, rules, labels, error docs); it is translated where it is shown. Literal
  messages of ``AppError(code, "…")`` are extracted too (keyword ``AppError:2``; plurals via
  ``errors.counted``, keyword ``counted:2,3``): errors are translated at the edge, when
  serialised for a locale, with the English message as msgid and its ``{params}`` filled after
  translation (never an f-string: the extractor skips those and the text would stay English).
* **The current locale** is a context variable: the REST helper and the socket session set it
  for the work they start, and tasks spawned from there (an analysis run) inherit it.
* **Negotiation.** The user's saved locale, else ``Accept-Language``, else ``DEFAULT_LOCALE``.
"""

from __future__ import annotations

import contextvars
import functools
import io
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from gettext import GNUTranslations, NullTranslations
from pathlib import Path

SUPPORTED = ("es", "en")
FALLBACK = "es"  # Spanish-speaking users first
DOMAIN = "messages"
LOCALE_DIR = Path(__file__).parent / "locale"

_current: contextvars.ContextVar[str] = contextvars.ContextVar("synthia_locale", default=FALLBACK)


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    """Mark ``message`` for extraction; translated later with :func:`gettext`."""
    return message


@functools.cache
def translations(locale: str) -> NullTranslations:
    lang = locale if locale in SUPPORTED else FALLBACK
    folder = LOCALE_DIR / lang / "LC_MESSAGES"
    po, mo = folder / f"{DOMAIN}.po", folder / f"{DOMAIN}.mo"
    if mo.exists() and (not po.exists() or os.path.getmtime(mo) >= os.path.getmtime(po)):
        with mo.open("rb") as fp:
            return GNUTranslations(fp)
    if not po.exists():
        return NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fp:
        catalog = read_po(fp, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return GNUTranslations(buffer)


def current() -> str:
    return _current.get()


def use(locale: str) -> None:
    """Set the locale of the current context (and of tasks started from it)."""
    _current.set(locale if locale in SUPPORTED else FALLBACK)


@contextmanager
def using(locale: str) -> Iterator[None]:
    token = _current.set(locale if locale in SUPPORTED else FALLBACK)
    try:
        yield
    finally:
        _current.reset(token)


def gettext(message: str, locale: str | None = None) -> str:
    if not message:
        return message
    return translations(locale or current()).gettext(message)


def ngettext(singular: str, plural: str, n: int, locale: str | None = None) -> str:
    return translations(locale or current()).ngettext(singular, plural, n)


_ = gettext


def normalise(tag: object) -> str | None:
    """``es-MX`` → ``es``; None for anything that is not a supported language."""
    if not isinstance(tag, str):
        return None
    lang = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return lang if lang in SUPPORTED else None


def from_accept_language(header: str | None) -> str | None:
    """The best supported language of an ``Accept-Language`` header (q-values honoured)."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(header.split(",")[:32]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        lang = normalise(tag)
        if lang is not None and quality > 0:
            ranked.append((-quality, index, lang))
    return min(ranked)[2] if ranked else None


def negotiate(saved: str | None, accept_language: str | None, default: str) -> str:
    return (
        normalise(saved) or from_accept_language(accept_language) or normalise(default) or FALLBACK
    )


# -- result labels: raw keys stay English identifiers, labels are shown ---------------------
LABELS: dict[str, dict[str, str]] = {
    "face_shape": {
        "oval": N_("Oval"),
        "round": N_("Round"),
        "square": N_("Square"),
        "heart": N_("Heart"),
        "diamond": N_("Diamond"),
        "oblong": N_("Oblong"),
        "triangle": N_("Triangle"),
    },
    "tone": {
        "very_light": N_("Very light"),
        "light": N_("Light"),
        "intermediate": N_("Intermediate"),
        "tan": N_("Tan"),
        "brown": N_("Brown"),
        "dark": N_("Dark"),
    },
    "undertone": {
        "warm": N_("Warm"),
        "cool": N_("Cool"),
        "neutral": N_("Neutral"),
        "olive": N_("Olive"),
    },
    "season": {
        "spring": N_("Spring"),
        "summer": N_("Summer"),
        "autumn": N_("Autumn"),
        "winter": N_("Winter"),
    },
    "subseason": {
        "light_spring": N_("Light spring"),
        "warm_spring": N_("Warm spring"),
        "clear_spring": N_("Clear spring"),
        "light_summer": N_("Light summer"),
        "cool_summer": N_("Cool summer"),
        "soft_summer": N_("Soft summer"),
        "soft_autumn": N_("Soft autumn"),
        "warm_autumn": N_("Warm autumn"),
        "deep_autumn": N_("Deep autumn"),
        "deep_winter": N_("Deep winter"),
        "cool_winter": N_("Cool winter"),
        "clear_winter": N_("Clear winter"),
    },
    "contrast": {"low": N_("Low"), "medium": N_("Medium"), "high": N_("High")},
    "category": {
        "hairstyle": N_("Hairstyle"),
        "eyewear": N_("Eyewear"),
        "makeup": N_("Makeup"),
        "colors": N_("Colours"),
        "accessories": N_("Accessories"),
        "clothing": N_("Clothing"),
        "hair_color": N_("Hair colour"),
        "jewelry": N_("Jewellery metals"),
    },
    # facial features (FacialResult.features)
    "eye_shape": {
        "almond": N_("Almond eyes"),
        "round": N_("Round eyes"),
        "hooded": N_("Hooded eyes"),
        "monolid": N_("Monolid eyes"),
        "upturned": N_("Upturned eyes"),
        "downturned": N_("Downturned eyes"),
    },
    "eye_spacing": {
        "close": N_("Close-set eyes"),
        "balanced": N_("Evenly spaced eyes"),
        "wide": N_("Wide-set eyes"),
    },
    "brow_shape": {
        "straight": N_("Straight brows"),
        "soft_arch": N_("Softly arched brows"),
        "high_arch": N_("High-arched brows"),
        "rounded": N_("Rounded brows"),
        "angled": N_("Angled brows"),
    },
    "lip_fullness": {"thin": N_("Thin lips"), "medium": N_("Medium lips"), "full": N_("Full lips")},
    "forehead": {
        "narrow": N_("Narrow forehead"),
        "balanced": N_("Balanced forehead"),
        "wide": N_("Wide forehead"),
    },
    "jaw": {"narrow": N_("Narrow jaw"), "balanced": N_("Balanced jaw"), "wide": N_("Wide jaw")},
}
FEATURE_GROUPS = ("eye_shape", "eye_spacing", "brow_shape", "lip_fullness", "forehead", "jaw")


def label(group: str, key: str, locale: str | None = None) -> str:
    english = LABELS.get(group, {}).get(key)
    return gettext(english, locale) if english else key


def result_labels(
    kind: str, result: Mapping[str, object], locale: str | None = None
) -> dict[str, object]:
    """The ``labels`` map shown next to a result's raw keys, in ``locale``."""
    out: dict[str, object] = {}
    if kind == "facial":
        skin = result.get("skin")
        if isinstance(result.get("face_shape"), str):
            out["face_shape"] = label("face_shape", str(result["face_shape"]), locale)
        if isinstance(skin, Mapping):
            out["tone"] = label("tone", str(skin.get("tone")), locale)
            out["undertone"] = label("undertone", str(skin.get("undertone")), locale)
        features = result.get("features")
        if isinstance(features, Mapping):
            out["features"] = {
                group: label(group, str(features[group]), locale)
                for group in FEATURE_GROUPS
                if isinstance(features.get(group), str)
            }
    else:
        for group in ("season", "subseason", "undertone", "contrast"):
            if isinstance(result.get(group), str):
                out[group] = label(group, str(result[group]), locale)
        for field in ("palette", "avoid"):
            swatches = result.get(field)
            if isinstance(swatches, list):
                out[field] = [
                    gettext(str(s.get("name", "")), locale)
                    for s in swatches
                    if isinstance(s, Mapping)
                ]
    out["category"] = {key: gettext(text, locale) for key, text in LABELS["category"].items()}
    return out
