"""The colour quiz: 12-season scoring rules, and the quiz over the service (any node's state)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from synthia_rt.analysis import quiz
from synthia_rt.analysis.models import SEASON_OF
from synthia_rt.errors import AppError, ErrorCode
from tests.analysis_support import analysis_runtime, events, new_user, service, wait_terminal

WARM_LIGHT = {
    "veins": "green",
    "jewellery": "both",
    "sun": "burns_then_tans",
    "hair": "golden_blonde",
    "skin": "porcelain",
    "eyes": "icy_blue_grey",
}
COOL_DEEP_CLEAR = {
    "veins": "blue_purple",
    "jewellery": "silver",
    "hair": "black",
    "eyes": "dark_brown",
    "contrast": "high",
    "white": "pure_white",
    "colours": "icy",
    "skin": "deep",
}
SOFT_COOL = {
    "veins": "blue_purple",
    "jewellery": "silver",
    "hair": "light_ash_brown",
    "eyes": "soft_blue_grey_green",
    "contrast": "low",
    "colours": "muted",
}
SOFT_WARM = {
    "veins": "green",
    "jewellery": "gold",
    "hair": "light_ash_brown",
    "eyes": "hazel",
    "contrast": "low",
    "colours": "muted",
    "white": "cream",
}


@pytest.mark.parametrize(
    ("answers", "season", "subseason"),
    [
        (WARM_LIGHT, "spring", "light_spring"),
        (COOL_DEEP_CLEAR, "winter", "deep_winter"),
        (SOFT_COOL, "summer", "soft_summer"),
        (SOFT_WARM, "autumn", "soft_autumn"),
    ],
)
def test_scoring_follows_the_dominant_axis(
    answers: dict[str, str], season: str, subseason: str
) -> None:
    est = quiz.estimate(answers)
    assert (est.season, est.subseason) == (season, subseason)
    assert SEASON_OF[est.subseason] == est.season
    assert est.answered == len(answers)


def test_undertone_and_contrast() -> None:
    assert quiz.estimate(WARM_LIGHT).undertone == "warm"
    assert quiz.estimate(COOL_DEEP_CLEAR).undertone == "cool"
    assert quiz.estimate(COOL_DEEP_CLEAR).contrast == "high"
    assert quiz.estimate(SOFT_COOL).contrast == "low"
    assert (
        quiz.estimate({"skin": "olive", "veins": "mixed", "jewellery": "both"}).undertone == "olive"
    )


def test_confidence_grows_with_answers() -> None:
    few = dict(list(COOL_DEEP_CLEAR.items())[:2])
    assert quiz.estimate({}).confidence == 0.0
    assert 0 < quiz.estimate(few).confidence < quiz.estimate(COOL_DEEP_CLEAR).confidence <= 0.95


def test_every_subseason_is_reachable() -> None:
    """Each of the twelve families must be producible by some axis combination."""
    seen = set()
    for w in (-3.0, -0.5, 0.5, 3.0):
        for v in (-3.0, -0.5, 0.5, 3.0):
            for c in (-3.0, -0.5, 0.5, 3.0):
                seen.add(quiz._subseason(w * 2 if abs(w) > 1 else w, v, c))
                seen.add(quiz._subseason(w, v * 2 if abs(v) > 1 else v, c))
                seen.add(quiz._subseason(w, v, c * 2 if abs(c) > 1 else c))
    assert seen == set(SEASON_OF)


def test_answers_are_checked() -> None:
    quiz.check_answer("veins", "green")
    for question, answer, field in (
        ("nope", "green", "question"),
        ("veins", "purple-ish", "answer"),
    ):
        with pytest.raises(AppError) as info:
            quiz.check_answer(question, answer)
        assert info.value.code == ErrorCode.VALIDATION_ERROR and info.value.field == field


async def test_quiz_over_the_service(settings_for: Any) -> None:
    async with analysis_runtime(settings_for("redis")) as runtime:
        svc = service(runtime)
        user = await new_user()
        started = await svc.quiz_start(user, "en")
        qid = started["quiz_id"]
        assert [q["id"] for q in started["questions"]] == list(quiz.QUESTIONS)
        assert all(
            q["options"] and {"id", "label"} <= set(q["options"][0]) for q in started["questions"]
        )
        assert await svc.owner_of(qid) == user.user_id

        with pytest.raises(AppError) as info:
            await svc.quiz_submit(user, qid)
        assert info.value.code == ErrorCode.VALIDATION_ERROR  # too few answers yet

        for i, (question, answer) in enumerate(SOFT_COOL.items(), start=1):
            reply = await svc.quiz_answer(user, qid, question, answer)
            assert reply == {"answered": i, "remaining": len(quiz.QUESTIONS) - i}
        estimates = [
            e for e in await events(runtime, f"analysis:{qid}") if e["event"] == "quiz.estimate"
        ]
        assert [e["answered"] for e in estimates] == list(range(1, len(SOFT_COOL) + 1))
        assert estimates[-1]["subseason"] == "soft_summer" and estimates[-1]["quiz_id"] == qid

        other = await new_user()
        with pytest.raises(AppError) as info:
            await svc.quiz_answer(other, qid, "veins", "green")
        assert info.value.code == ErrorCode.NOT_FOUND  # another user's quiz does not exist for them

        submitted = await svc.quiz_submit(user, qid)
        assert submitted == {"analysis_id": qid, "channel": f"analysis:{qid}", "cached": False}
        row = await wait_terminal(qid)
        assert row["status"] == "done" and row["kind"] == "chromatic"
        assert row["result"]["subseason"] == "soft_summer"
        result = [
            e for e in await events(runtime, f"analysis:{qid}") if e["event"] == "analysis.result"
        ]
        assert len(result) == 1 and result[0]["result"] == row["result"]

        with pytest.raises(AppError) as info:
            await svc.quiz_submit(user, qid)
        assert info.value.code == ErrorCode.CONFLICT

        # The same answers (in another order) in a new quiz: answered from the cache.
        again = (await svc.quiz_start(user, None))["quiz_id"]
        for question, answer in reversed(list(SOFT_COOL.items())):
            await svc.quiz_answer(user, again, question, answer)
        cached = await svc.quiz_submit(user, again)
        assert cached["cached"] is True
        row2 = await wait_terminal(again)
        assert row2["cached"] is True and row2["result"] == row["result"]


async def test_unknown_quiz_is_not_found(settings_for: Any) -> None:
    async with analysis_runtime(settings_for("memory")) as runtime:
        user = await new_user()
        with pytest.raises(AppError) as info:
            await service(runtime).quiz_answer(user, str(uuid.uuid4()), "veins", "green")
        assert info.value.code == ErrorCode.NOT_FOUND
