"""Locales es and en (issue 15.2): catalogs complete, negotiation, Spanish over REST and the socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from synthia_rt import i18n
from synthia_rt.analysis import quiz, rules
from synthia_rt.errors import ERROR_DOCS, AppError, ErrorCode
from tests.conftest import serving
from tests.rest_helpers import API, bearer, register
from tests.wsclient import ws_session

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = {
    "N_": None,
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "AppError": (2,),
    "counted": (2, 3),
}


def catalog(lang: str) -> dict[str, Any]:
    with (ROOT / "synthia_rt" / "locale" / lang / "LC_MESSAGES" / "messages.po").open("rb") as fp:
        return {
            m.id if isinstance(m.id, str) else m.id[0]: m.string
            for m in read_po(fp, locale=lang)
            if m.id
        }


def extracted() -> set[str]:
    found: set[str] = set()
    for _, _, message, _, _ in extract_from_dir(
        str(ROOT / "synthia_rt"), [("**.py", "python")], keywords=KEYWORDS
    ):
        msgid = message if isinstance(message, str) else message[0]
        if msgid:
            found.add(msgid)
    return found


def test_every_user_facing_string_is_translated_in_spanish() -> None:
    es, en = catalog("es"), catalog("en")
    shown = extracted()
    shown |= {m for _, m in ERROR_DOCS.values()}
    shown |= {text for text, _ in quiz.QUESTIONS.values()} | {
        label for _, opts in quiz.QUESTIONS.values() for _, label, _ in opts
    }
    shown |= {
        r[k]
        for table in (rules.SHAPE_RULES, rules.UNDERTONE_RULES)
        for recs in table.values()
        for r in recs
        for k in ("title", "detail")
    }
    shown |= {s["name"] for pair in rules.PALETTES.values() for swatches in pair for s in swatches}
    shown |= {text for group in i18n.LABELS.values() for text in group.values()}
    missing = sorted(
        m for m in shown if not es.get(m) or (isinstance(es[m], tuple) and not all(es[m]))
    )
    assert missing == [], f"untranslated in es: {missing[:10]}"
    assert sorted(shown - set(en)) == [], "the en catalog is behind the sources (pybabel update)"


def test_negotiation_saved_then_header_then_default() -> None:
    assert i18n.negotiate("en", "es-MX,es;q=0.9", "es") == "en"
    assert i18n.negotiate(None, "fr-FR, en;q=0.4, es;q=0.8", "en") == "es"
    assert i18n.negotiate(None, "de, fr", "en") == "en"
    assert i18n.negotiate("xx", None, "es") == "es"


def test_spanish_texts_and_plural_forms() -> None:
    assert (
        AppError(ErrorCode.NO_FACE_DETECTED).to_dict("es")["message"]
        == "No se encontró ningún rostro en la imagen."
    )
    assert (
        AppError(ErrorCode.NO_FACE_DETECTED).to_dict("en")["message"]
        == "No face was found in the image."
    )
    questions = quiz.public_questions("es")
    assert (
        questions[0]["text"]
        == "¿De qué color se ven las venas del interior de tu muñeca con luz de día?"
    )
    one = i18n.ngettext(
        "{subseason} from {count} answer (confidence {confidence}%).",
        "{subseason} from {count} answers (confidence {confidence}%).",
        1,
        "es",
    )
    many = i18n.ngettext(
        "{subseason} from {count} answer (confidence {confidence}%).",
        "{subseason} from {count} answers (confidence {confidence}%).",
        5,
        "es",
    )
    assert "1 respuesta " in one.format(
        subseason="x", count=1, confidence=5
    ) and "5 respuestas" in many.format(subseason="x", count=5, confidence=5)
    labels = i18n.result_labels(
        "chromatic",
        {
            "season": "autumn",
            "subseason": "deep_autumn",
            "undertone": "warm",
            "contrast": "high",
            "palette": [{"name": "Burgundy", "hex": "#800020"}],
        },
        "es",
    )
    assert (labels["season"], labels["subseason"], labels["palette"]) == (
        "Otoño",
        "Otoño profundo",
        ["Burdeos"],
    )


@pytest.mark.parametrize("backend", ["memory"])
async def test_spanish_over_rest_and_the_socket(settings_for: Any, backend: str) -> None:
    async with (
        serving(settings_for(backend, default_locale="es")) as live,
        httpx.AsyncClient(base_url=f"http://{live}") as http,
    ):
        # anonymous: the header, else DEFAULT_LOCALE (es)
        r = await http.get(f"{API}/users/profile", headers={"Accept-Language": "en-GB,en;q=0.9"})
        assert (
            r.status_code == 401
            and r.json()["error"]["message"] == "No valid access token was presented."
        )
        r = await http.get(f"{API}/users/profile")
        assert r.json()["error"] == {
            **r.json()["error"],
            "code": "unauthorized",
            "message": "No se presentó ningún token de acceso válido.",
        }

        user = await register(http)
        token = user["access_token"]
        ws = f"ws://{live}/ws"
        async with ws_session(
            ws, token, additional_headers={"Accept-Language": "es-ES,es;q=0.9"}
        ) as client:
            started = await client.command("quiz.start")
            assert started["questions"][1]["text"] == "¿Qué metal favorece más a tu piel?"
            assert started["questions"][1]["options"][0] == {
                "id": "silver",
                "label": "Plata, platino, oro blanco",
            }
            bad = await client.command(
                "quiz.answer", quiz_id=started["quiz_id"], question="nope", answer="x"
            )
            assert bad["error"] == {
                **bad["error"],
                "code": "validation_error",
                "message": "Pregunta desconocida.",
            }

        # the saved locale wins over Accept-Language, on REST and at the socket handshake
        r = await http.patch(f"{API}/users/profile", json={"locale": "en"}, headers=bearer(token))
        assert r.status_code == 200 and r.json()["user"]["locale"] == "en"
        r = await http.get(
            f"{API}/analyses/00000000-0000-0000-0000-000000000000",
            headers={**bearer(token), "Accept-Language": "es"},
        )
        assert (
            r.status_code == 404
            and r.json()["error"]["message"] == "No such resource visible to the caller."
        )
        async with ws_session(ws, token, additional_headers={"Accept-Language": "es"}) as client:
            started = await client.command("quiz.start")
            assert started["questions"][1]["text"] == "Which metal flatters your skin more?"
        r = await http.patch(f"{API}/users/profile", json={"locale": "es"}, headers=bearer(token))
        r = await http.get(
            f"{API}/analyses/00000000-0000-0000-0000-000000000000",
            headers={**bearer(token), "Accept-Language": "en"},
        )
        assert r.json()["error"]["message"] == "No existe ese recurso o no tienes acceso a él."
        # The handshake's language entry is written through on each change (it lives 30 days).
        async with ws_session(ws, token, additional_headers={"Accept-Language": "en"}) as client:
            started = await client.command("quiz.start")
            assert started["questions"][1]["text"] == "¿Qué metal favorece más a tu piel?"
        r = await http.patch(f"{API}/users/profile", json={"locale": "fr"}, headers=bearer(token))
        assert r.status_code == 422 and r.json()["error"]["field"] == "locale"


def test_an_error_stored_as_data_comes_back_whatever_was_stored() -> None:
    """AppError.source() is JSON whatever the params hold, and restore() + text() never raise
    on what a row or a Redis key may hold (older rows, hand edits, junk)."""
    import orjson

    from synthia_rt.errors import counted

    odd = AppError(
        ErrorCode.VALIDATION_ERROR,
        "Values {a} {b} {c} {d}.",
        params={"a": 2**70, "b": float("nan"), "c": "x\ud800", "d": [1, 2]},
    )
    stored = orjson.loads(orjson.dumps(odd.source()))
    assert AppError.restore(stored).text("es") == "Values 1180591620717411303424 nan x? [1, 2]."
    two = counted(ErrorCode.VALIDATION_ERROR, "Answer at least {n} question.",
                  "Answer at least {n} questions.", 2)  # fmt: skip
    assert AppError.restore(orjson.loads(orjson.dumps(two.source()))).text("es") == (two.text("es"))
    for junk in ("junk", [1], {"code": "nope"}, {"code": 5, "params": "x"}, None):
        assert AppError.restore(junk).code is ErrorCode.INTERNAL  # type: ignore[arg-type]
    legacy = AppError.restore(None, "no_face_detected", "No face was found in the image.")
    assert legacy.text("es") == "No se encontró ningún rostro en la imagen."
    hand_edited = [
        {"code": "validation_error", "message": "one {n}", "plural": "many {n}",
         "params": {"n": "2.5"}},
        {"code": "validation_error", "message": "x {x.real} {x[0]}", "params": {"x": "s"}},
    ]  # fmt: skip
    for source in hand_edited:
        assert isinstance(AppError.restore(source).text("es"), str)


def test_formatted_messages_are_translated_then_filled() -> None:
    """Placeholders are filled after translation (one catalog entry per sentence), plural
    forms follow the count, and a translation with broken placeholders falls back to English."""
    from synthia_rt.errors import counted

    few = counted(
        ErrorCode.VALIDATION_ERROR,
        "Answer at least {n} question.",
        "Answer at least {n} questions.",
        4,
        field="answers",
    )
    assert few.to_dict("es") == {
        "code": "validation_error",
        "message": "Responde al menos 4 preguntas.",
        "temporary": False,
        "field": "answers",
    }
    assert (
        few.to_dict("en")["message"] == "Answer at least 4 questions."
        and str(few) == "validation_error: Answer at least 4 questions."
    )
    one = counted(
        ErrorCode.VALIDATION_ERROR,
        "Answer at least {n} question.",
        "Answer at least {n} questions.",
        1,
    )
    assert (one.to_dict("es")["message"], one.to_dict("en")["message"]) == (
        "Responde al menos 1 pregunta.",
        "Answer at least 1 question.",
    )
    offset = AppError(
        ErrorCode.BAD_CHUNK,
        "Wrong offset: the upload continues at {offset}.",
        params={"offset": 42},
    )
    assert offset.to_dict("es")["message"] == "Posición incorrecta: la subida continúa en 42."
    broken = AppError(
        ErrorCode.BAD_CHUNK, "Wrong offset: the upload continues at {offset}.", params={"other": 1}
    )
    assert (
        broken.to_dict("es")["message"] == "Wrong offset: the upload continues at {offset}."
    )  # never raises
    assert (
        AppError(
            ErrorCode.INTERNAL,
            "An unexpected error occurred (request {rid}).",
            params={"rid": "r-1"},
        ).to_dict("es")["message"]
        == "Se produjo un error inesperado (solicitud r-1)."
    )


@pytest.mark.parametrize("backend", ["memory"])
async def test_spanish_formatted_messages_over_rest_and_the_socket(
    settings_for: Any, backend: str
) -> None:
    from synthia_rt.rest.deps import MAX_BODY_BYTES

    async with (
        serving(settings_for(backend, default_locale="es")) as live,
        httpx.AsyncClient(base_url=f"http://{live}") as http,
    ):
        user = await register(http)
        token = user["access_token"]
        r = await http.patch(f"{API}/users/profile", json={"locale": "es"}, headers=bearer(token))
        assert r.status_code == 200
        # a count in the sentence, filled after translation
        r = await http.post(
            f"{API}/chromatic-analysis/analyze",
            headers=bearer(token),
            json={"answers": {"veins": "blue_purple"}},
        )
        assert r.status_code == 422 and r.json()["error"] == {
            "code": "validation_error",
            "message": "Responde al menos 4 preguntas.",
            "temporary": False,
            "field": "answers",
        }
        r = await http.post(
            f"{API}/chromatic-analysis/analyze",
            headers={**bearer(token), "content-type": "application/json"},
            content=b" " * (MAX_BODY_BYTES + 1),
        )
        assert (
            r.status_code == 413
            and r.json()["error"]["message"] == f"El cuerpo supera {MAX_BODY_BYTES} bytes."
        )
        # pydantic's detail: a translated generic sentence, the field kept
        r = await http.patch(f"{API}/users/profile", json={"locale": "fr"}, headers=bearer(token))
        assert r.status_code == 422 and r.json()["error"]["field"] == "locale"
        assert r.json()["error"]["message"] == "El campo locale tiene un valor no válido."
        r = await http.patch(
            f"{API}/users/profile", json={"display_name": 5}, headers=bearer(token)
        )
        assert r.status_code == 400 and r.json()["error"]["field"] == "display_name"
        assert r.json()["error"]["message"] == "El campo display_name tiene un tipo incorrecto."

        async with ws_session(f"ws://{live}/ws", token) as client:
            started = await client.command("quiz.start")
            await client.command(
                "quiz.answer", quiz_id=started["quiz_id"], question="veins", answer="blue_purple"
            )
            early = await client.command("quiz.submit", quiz_id=started["quiz_id"])
            assert early["error"] == {
                "code": "validation_error",
                "message": "Primero responde al menos 4 preguntas.",
                "temporary": False,
                "field": "quiz_id",
            }
            unknown = await client.command("quiz.nope")
            assert unknown["error"]["message"] == "operación desconocida: quiz.nope"
            bad = await client.command("quiz.submit")
            assert bad["error"] == {
                **bad["error"],
                "field": "quiz_id",
                "message": "El campo quiz_id es obligatorio.",
            }
