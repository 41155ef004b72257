"""Argon2id hashing: parameters from settings, verification, and work done off the event loop."""

from __future__ import annotations

import threading

import pytest
from argon2 import PasswordHasher

from synthia_rt.auth.passwords import Passwords
from synthia_rt.settings import Settings


@pytest.fixture
def passwords() -> Passwords:
    return Passwords(
        Settings(argon2_memory_kib=19 * 1024, argon2_time_cost=2, argon2_parallelism=1)
    )


async def test_hash_is_argon2id_with_configured_cost(passwords: Passwords) -> None:
    hashed = await passwords.hash("s3cret-passphrase")
    assert hashed.startswith("$argon2id$")
    assert "m=19456,t=2,p=1" in hashed
    assert "s3cret-passphrase" not in hashed


async def test_verify_accepts_the_password_and_refuses_others(passwords: Passwords) -> None:
    hashed = await passwords.hash("s3cret-passphrase")
    assert await passwords.verify(hashed, "s3cret-passphrase")
    assert not await passwords.verify(hashed, "s3cret-passphrasE")
    assert not await passwords.verify(hashed, "")


async def test_salts_differ(passwords: Passwords) -> None:
    assert await passwords.hash("same") != await passwords.hash("same")


async def test_a_malformed_hash_is_a_mismatch_not_a_crash(passwords: Passwords) -> None:
    assert not await passwords.verify("not-a-hash", "anything")
    assert not await passwords.verify("$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA", "anything")


async def test_weaker_hashes_need_rehash(passwords: Passwords) -> None:
    weak = PasswordHasher(memory_cost=8 * 1024, time_cost=1, parallelism=1).hash("pw")
    assert passwords.needs_rehash(weak)
    assert not passwords.needs_rehash(await passwords.hash("pw"))
    assert passwords.needs_rehash("garbage")


class ThreadRecorder:
    """Wraps the real hasher and notes which thread each call ran on."""

    def __init__(self, inner: PasswordHasher) -> None:
        self.inner = inner
        self.threads: list[int] = []

    def hash(self, password: str) -> str:
        self.threads.append(threading.get_ident())
        return self.inner.hash(password)

    def verify(self, hashed: str, password: str) -> bool:
        self.threads.append(threading.get_ident())
        return self.inner.verify(hashed, password)


async def test_hashing_and_verifying_run_off_the_event_loop(passwords: Passwords) -> None:
    recorder = ThreadRecorder(passwords._hasher)
    passwords._hasher = recorder  # type: ignore[assignment]
    hashed = await passwords.hash("pw-pw-pw-pw")
    assert await passwords.verify(hashed, "pw-pw-pw-pw")
    await passwords.verify_dummy("pw-pw-pw-pw")
    assert len(recorder.threads) == 4  # hash, verify, dummy hash (made once), dummy verify
    assert threading.get_ident() not in recorder.threads


async def test_dummy_verification_hashes_once_and_never_matches(passwords: Passwords) -> None:
    await passwords.verify_dummy("whatever")
    dummy = passwords._dummy
    assert dummy is not None and dummy.startswith("$argon2id$")
    await passwords.verify_dummy("whatever")
    assert passwords._dummy == dummy
    assert not await passwords.verify(dummy, "whatever")
