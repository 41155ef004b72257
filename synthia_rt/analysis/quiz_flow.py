"""The colour quiz as the socket drives it: start, answer (with a live estimate), submit.

The quiz's channel is ``analysis:<quiz_id>`` and its analysis gets the quiz id as its id, so
a socket that started the quiz already follows the analysis' events. State lives in the
shared store (:class:`~synthia_rt.analysis.quiz_store.QuizStore`): any node takes any answer.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from synthia_rt import i18n
from synthia_rt.analysis import quiz
from synthia_rt.analysis.cache import answers_digest
from synthia_rt.analysis.launcher import Launcher
from synthia_rt.analysis.quiz_store import QuizStore
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode, counted
from synthia_rt.realtime import protocol as p
from synthia_rt.realtime.channels import analysis_channel
from synthia_rt.store.ids import as_uuid


def _quiz_id(value: object) -> str:
    parsed = as_uuid(value)
    if parsed is None:
        raise AppError(ErrorCode.BAD_REQUEST, "quiz_id must be a UUID.", field="quiz_id")
    return str(parsed)


def _not_found() -> AppError:
    return AppError(ErrorCode.NOT_FOUND, "No such quiz (it may have expired).", field="quiz_id")


class QuizFlow:
    def __init__(self, launch: Launcher, store: QuizStore) -> None:
        self.launch = launch
        self.store = store

    async def start(self, user: Principal, locale: str | None) -> dict[str, Any]:
        if locale is not None and (not isinstance(locale, str) or len(locale) > 35):
            raise AppError(
                ErrorCode.BAD_REQUEST,
                "locale must be a language tag such as en or es-MX.",
                field="locale",
            )
        quiz_id = str(uuid.uuid4())
        await self.store.create(user.user_id, quiz_id, locale)
        await self.launch.set_owner(quiz_id, user.user_id)
        # An explicit locale of the command wins; else the connection's (saved or negotiated).
        return {
            "quiz_id": quiz_id,
            "questions": quiz.public_questions(i18n.normalise(locale) or i18n.current()),
        }

    async def answer(
        self, user: Principal, quiz_id: str, question: str, answer: str
    ) -> dict[str, Any]:
        qid = _quiz_id(quiz_id)
        if not await self.store.exists(user.user_id, qid):
            raise _not_found()
        if not isinstance(question, str) or not isinstance(answer, str):
            raise AppError(
                ErrorCode.BAD_REQUEST, "question and answer must be strings.", field="question"
            )
        quiz.check_answer(question, answer)
        await self.store.answer(user.user_id, qid, question, answer)
        answers = await self.store.answers(user.user_id, qid)
        est = quiz.estimate(answers)
        await self.launch.events(qid, user.user_id).quiz_estimate(
            p.QuizEstimate(
                quiz_id=qid,
                season=est.season,
                subseason=est.subseason,
                confidence=est.confidence,
                answered=est.answered,
            )
        )
        return {"answered": len(answers), "remaining": len(quiz.QUESTIONS) - len(answers)}

    async def submit(self, user: Principal, quiz_id: str) -> dict[str, Any]:
        qid = _quiz_id(quiz_id)
        if not await self.store.exists(user.user_id, qid):
            raise _not_found()
        answers = await self.store.answers(user.user_id, qid)
        if len(answers) < quiz.MIN_ANSWERS:
            raise counted(
                ErrorCode.VALIDATION_ERROR,
                "Answer at least {n} question first.",
                "Answer at least {n} questions first.",
                quiz.MIN_ANSWERS,
                field="quiz_id",
            )
        if not await self.store.claim_submit(user.user_id, qid):
            raise AppError(ErrorCode.CONFLICT, "This quiz was already submitted.", field="quiz_id")
        try:
            task = await self.start_chromatic(user, uuid.UUID(qid), answers)
        except BaseException:
            await self.store.release_submit(user.user_id, qid)
            raise
        return {"analysis_id": qid, "channel": analysis_channel(qid), "cached": task is None}

    async def start_chromatic(
        self, user: Principal, aid: uuid.UUID, answers: dict[str, str]
    ) -> asyncio.Task[Any] | None:
        """None when answered from the cache, else the running task."""
        digest = answers_digest(answers)
        inputs = {"answers": answers}
        if await self.launch.from_cache(user, "chromatic", digest, inputs, aid) is not None:
            return None
        return await self.launch.start_job(user, aid, "chromatic", inputs, digest, answers=answers)
