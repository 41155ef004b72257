"""Quiz state in the shared store, so any node can take the next answer.

One key per answer (``quiz:<user>:<quiz>:a:<question>``) rather than one JSON blob: two
answers arriving at once on two nodes cannot overwrite each other. ``…:submitted`` is set
with NX, so a quiz is submitted exactly once.
"""

from __future__ import annotations

import time

import orjson

from synthia_rt.analysis.quiz import QUESTIONS
from synthia_rt.kv.base import KeyValue


class QuizStore:
    def __init__(self, kv: KeyValue, ttl: float) -> None:
        self.kv = kv
        self.ttl = ttl

    @staticmethod
    def _key(user_id: str, quiz_id: str, part: str) -> str:
        return f"quiz:{user_id}:{quiz_id}:{part}"

    async def create(self, user_id: str, quiz_id: str, locale: str | None) -> None:
        meta = {"locale": locale, "created_at": time.time()}
        await self.kv.set(self._key(user_id, quiz_id, "meta"), orjson.dumps(meta), self.ttl)

    async def exists(self, user_id: str, quiz_id: str) -> bool:
        return await self.kv.exists(self._key(user_id, quiz_id, "meta"))

    async def answer(self, user_id: str, quiz_id: str, question: str, answer: str) -> None:
        await self.kv.set(self._key(user_id, quiz_id, f"a:{question}"), answer.encode(), self.ttl)

    async def answers(self, user_id: str, quiz_id: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for question in QUESTIONS:  # in questionnaire order
            raw = await self.kv.get(self._key(user_id, quiz_id, f"a:{question}"))
            if raw is not None:
                out[question] = raw.decode()
        return out

    async def claim_submit(self, user_id: str, quiz_id: str) -> bool:
        return await self.kv.set(self._key(user_id, quiz_id, "submitted"), b"1", self.ttl, nx=True)

    async def release_submit(self, user_id: str, quiz_id: str) -> None:
        await self.kv.delete(self._key(user_id, quiz_id, "submitted"))

    async def erase_user(self, user_id: str) -> int:
        keys = [k async for k in self.kv.scan(f"quiz:{user_id}:*")]
        return await self.kv.delete(*keys) if keys else 0
