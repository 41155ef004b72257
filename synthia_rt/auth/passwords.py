"""Argon2id password hashing, always off the event loop.

Hashing costs ~19 MiB and tens of milliseconds of CPU by design; running it on the loop would
stall every socket of the process, so each call goes to a worker thread. ``verify_dummy`` lets
login spend the same work when the email is unknown, so timing does not reveal which emails
are registered.

Hashing is CPU-bound and each costs tens of milliseconds, so at most ``ARGON2_CONCURRENCY``
run at once per process, and registrations (``bulk``) hold at most half of those slots: a
registration flood queues behind its own gate instead of in front of logins. A flood that
queues more than ``MAX_BULK_WAITING`` registrations is refused as temporarily unavailable.
"""

from __future__ import annotations

import asyncio
import secrets

import anyio.to_thread
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.settings import Settings

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # bounds hashing work an attacker can demand per request
MAX_BULK_WAITING = 64


class Passwords:
    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        self._dummy: str | None = None
        self._slots = asyncio.Semaphore(settings.argon2_concurrency)
        self._bulk = asyncio.Semaphore(max(1, settings.argon2_concurrency // 2))
        self._bulk_waiting = 0

    async def hash(self, password: str, *, bulk: bool = False) -> str:
        """``bulk``: a registration, which must not delay logins."""
        if not bulk:
            async with self._slots:
                return await anyio.to_thread.run_sync(self._hasher.hash, password)
        if self._bulk_waiting >= MAX_BULK_WAITING:
            raise AppError(
                ErrorCode.UNAVAILABLE, "Too many registrations at once; try again.", retry_after=1
            )
        self._bulk_waiting += 1
        try:
            await self._bulk.acquire()
        finally:
            self._bulk_waiting -= 1
        try:
            async with self._slots:
                return await anyio.to_thread.run_sync(self._hasher.hash, password)
        finally:
            self._bulk.release()

    async def verify(self, password_hash: str, password: str) -> bool:
        async with self._slots:
            return await anyio.to_thread.run_sync(self._verify_sync, password_hash, password)

    async def verify_dummy(self, password: str) -> None:
        """Spend one verification's worth of work against a hash nobody owns."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        await self.verify(self._dummy, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the stored hash used weaker parameters than the current settings."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def _verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
