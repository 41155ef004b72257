"""TokenService: what it issues, and every kind of token it must refuse.

Runs on both backends (PostgreSQL + Redis, SQLite + in-process KV) with the real key-value
store and a real users table behind the per-user cutoff.
"""

from __future__ import annotations

import base64
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
import pytest
import redis.asyncio as aioredis
from jwt.warnings import InsecureKeyLengthWarning

from synthia_rt.auth.tokens import TokenService
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.kv import KeyValue, create_kv
from synthia_rt.settings import Settings
from synthia_rt.store import engine as store
from synthia_rt.store import users
from synthia_rt.store.tables import User
from tests.conftest_helpers import unique_email


@dataclass
class Env:
    settings: Settings
    kv: KeyValue
    tokens: TokenService
    user_id: str


@pytest.fixture
async def env(settings_for: Any, backend: str, redis_client: aioredis.Redis) -> AsyncIterator[Env]:
    settings: Settings = settings_for(backend)
    url = settings.effective_database_url
    await store.migrate(url)
    engine = store.configure(url)
    await store.open_pool(engine)
    kv = create_kv(settings.effective_redis_url, settings.redis_namespace)
    await kv.start()
    try:
        user = await users.create(unique_email(), "not-a-real-hash")
        yield Env(settings, kv, TokenService(settings, kv), user.id)
    finally:
        await kv.close()
        await store.close_pool(engine)


def forge(
    settings: Settings, key: str | None = None, algorithm: str = "HS256", **overrides: Any
) -> str:
    now = time.time()
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(uuid.uuid4()),
        "iat": now,
        "exp": int(now) + 600,
        "jti": uuid.uuid4().hex,
        "typ": "access",
        "role": "user",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key or settings.resolved_secret(), algorithm=algorithm)


async def refused(env: Env, token: object, code: ErrorCode = ErrorCode.TOKEN_INVALID) -> None:
    with pytest.raises(AppError) as info:
        await env.tokens.verify_access(token)
    assert info.value.code is code


async def test_access_token_round_trip(env: Env) -> None:
    await User.update({User.role: "admin"}).where(User.id == uuid.UUID(env.user_id)).run()
    token, principal = env.tokens.issue_access(env.user_id, "admin", session_id="fam-1")
    verified = await env.tokens.verify_access(token)
    assert verified == principal
    assert verified.user_id == env.user_id and verified.is_admin and verified.session_id == "fam-1"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (
        claims["typ"] == "access" and claims["iss"] == "synthia-rt" and claims["aud"] == "synthia"
    )
    assert claims["exp"] - int(claims["iat"]) == env.settings.access_token_ttl
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


async def test_refresh_token_round_trip(env: Env) -> None:
    token, jti, exp = env.tokens.issue_refresh(env.user_id, "family-1")
    claims = await env.tokens.verify_refresh(token)
    assert (claims.user_id, claims.family_id, claims.jti, claims.expires_at) == (
        env.user_id,
        "family-1",
        jti,
        exp,
    )
    assert exp - time.time() == pytest.approx(env.settings.refresh_token_ttl, abs=2)


async def test_alg_none_is_refused(env: Env) -> None:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")

    valid, _ = env.tokens.issue_access(env.user_id, "user")
    claims = jwt.decode(valid, options={"verify_signature": False})
    for alg in ("none", "None", "NONE"):
        await refused(env, f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}.")


async def test_other_algorithms_and_keys_are_refused(env: Env) -> None:
    with warnings.catch_warnings():  # PyJWT warns that our 45-byte test key is short for SHA-512
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        same_key_other_algs = [
            forge(env.settings, sub=env.user_id, algorithm=a) for a in ("HS512", "HS384")
        ]
    for token in same_key_other_algs:
        await refused(env, token)
    await refused(env, forge(env.settings, sub=env.user_id, key="another-key-" + "x" * 40))


async def test_expired_token_says_expired(env: Env) -> None:
    past = time.time() - 3600
    await refused(
        env,
        forge(env.settings, sub=env.user_id, iat=past, exp=int(past) + 60),
        ErrorCode.TOKEN_EXPIRED,
    )


async def test_wrong_audience_or_issuer_is_refused(env: Env) -> None:
    await refused(env, forge(env.settings, sub=env.user_id, aud="someone-else"))
    await refused(env, forge(env.settings, sub=env.user_id, iss="someone-else"))


async def test_missing_claims_and_bad_roles_are_refused(env: Env) -> None:
    assert (
        await env.tokens.verify_access(forge(env.settings, sub=env.user_id))
    ).user_id == env.user_id
    for claim in ("jti", "exp", "iat", "sub", "typ", "aud", "iss"):
        await refused(env, forge(env.settings, **{"sub": env.user_id, claim: None}))
    await refused(env, forge(env.settings, sub=env.user_id, role="root"))
    await refused(env, forge(env.settings, sub=env.user_id, role=None))


async def test_refresh_token_is_not_an_access_token_and_back(env: Env) -> None:
    refresh, _, _ = env.tokens.issue_refresh(env.user_id, "family-1")
    await refused(env, refresh)
    access, _ = env.tokens.issue_access(env.user_id, "user")
    with pytest.raises(AppError) as info:
        await env.tokens.verify_refresh(access)
    assert info.value.code is ErrorCode.TOKEN_INVALID


async def test_junk_is_refused(env: Env) -> None:
    for junk in ("", "abc", "a.b.c", "x" * 10_000, None, 42, b"bytes"):
        await refused(env, junk)
    token, _ = env.tokens.issue_access(env.user_id, "user")
    head, payload, signature = token.split(".")
    await refused(env, f"{head}.{payload}.{signature[:-4]}AAAA")
    # The segments' alphabet and encoding are checked, not only the signature: characters
    # outside base64url, a payload cut to an impossible length, and a signature whose last
    # character carries bits a canonical encoder leaves zero (same bytes, other text).
    await refused(env, f"{head}.{payload}!!.{signature}")
    await refused(env, f"{head}.{payload[:-3]}.{signature}")
    assert len(signature) % 4 == 3  # 32 bytes: the last character holds 4 bits + 2 zero bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(signature[-1]) | 1]  # a low bit set: decodes the same
    assert twin != signature[-1]
    assert base64.urlsafe_b64decode(signature[:-1] + twin + "=") == base64.urlsafe_b64decode(
        signature + "="
    )
    await refused(env, f"{head}.{payload}.{signature[:-1]}{twin}")


async def test_revoked_jti_is_refused_and_others_are_not(env: Env) -> None:
    first, principal = env.tokens.issue_access(env.user_id, "user")
    second, _ = env.tokens.issue_access(env.user_id, "user")
    await env.tokens.revoke_jti(principal.jti, principal.expires_at)
    await refused(env, first)
    assert (await env.tokens.verify_access(second)).user_id == env.user_id


async def test_user_cutoff_kills_older_tokens_only(env: Env) -> None:
    old_access, _ = env.tokens.issue_access(env.user_id, "user")
    old_refresh, _, _ = env.tokens.issue_refresh(env.user_id, "family-1")
    await env.tokens.verify_access(old_access)  # caches "no cutoff" in the KV first
    await env.tokens.revoke_user_tokens(env.user_id)
    await refused(env, old_access)
    with pytest.raises(AppError):
        await env.tokens.verify_refresh(old_refresh)
    # Issued in the same second as the logout, yet after it: valid.
    fresh, _ = env.tokens.issue_access(env.user_id, "user")
    assert (await env.tokens.verify_access(fresh)).user_id == env.user_id


async def test_cutoff_survives_loss_of_the_kv(env: Env) -> None:
    old_access, _ = env.tokens.issue_access(env.user_id, "user")
    await env.tokens.revoke_user_tokens(env.user_id)
    deleted = await env.kv.delete(f"cutoff:{env.user_id}")  # as if Redis lost its data
    assert deleted == 1
    await refused(env, old_access)  # reloaded from users.tokens_valid_after
    assert await env.kv.exists(f"cutoff:{env.user_id}")


async def test_token_of_a_deleted_user_is_refused_without_caching(env: Env) -> None:
    token, _ = env.tokens.issue_access(env.user_id, "user")
    await env.tokens.revocation.forget_user(env.user_id)
    assert await users.erase(env.user_id)
    await refused(env, token)
    assert not await env.kv.exists(f"cutoff:{env.user_id}")


async def test_tokens_of_unknown_users_are_refused(env: Env) -> None:
    await refused(env, forge(env.settings, sub=str(uuid.uuid4())))
    await refused(env, forge(env.settings, sub="not-a-uuid"))
