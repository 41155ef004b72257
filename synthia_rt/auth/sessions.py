"""Logins as token families: register, log in, rotate, log out, end every session of a user.

A *session* is one login: a refresh-token family row plus the access tokens issued for it
(``sid`` claim). Rotation swaps the family's only valid refresh token; presenting an older one
again means it was copied, so the whole family is revoked (``token_reused``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

from synthia_rt.auth.passwords import Passwords
from synthia_rt.auth.principal import Principal
from synthia_rt.auth.throttle import LoginThrottle, enforce
from synthia_rt.auth.tokens import TokenService
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.observability.audit import audit
from synthia_rt.runtime import Runtime
from synthia_rt.store import refresh_families as families
from synthia_rt.store import users
from synthia_rt.store.users import UserRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Login:
    """What a login, registration or refresh hands the client (not to be confused with a
    socket's :class:`~synthia_rt.realtime.session.Session`)."""

    access_token: str
    refresh_token: str
    expires_in: int
    user: UserRecord
    principal: Principal


def passwords_for(runtime: Runtime) -> Passwords:
    if runtime.passwords is None:
        runtime.passwords = Passwords(runtime.settings)
    return runtime.passwords


def throttle_for(runtime: Runtime) -> LoginThrottle:
    if runtime.login_throttle is None:
        runtime.login_throttle = LoginThrottle(
            runtime.settings, runtime.need_limiter(), runtime.need_kv()
        )
    return runtime.login_throttle


async def open_session(tokens: TokenService, user: UserRecord) -> Login:
    """A new login, just after its password was checked (``auth_time`` = now)."""
    family_id = str(uuid.uuid4())
    auth_time = time.time()
    refresh_token, jti, exp = tokens.issue_refresh(user.id, family_id, auth_time)
    await families.create(family_id, user.id, jti, exp)
    access_token, principal = tokens.issue_access(
        user.id, user.role, session_id=family_id, auth_time=auth_time
    )
    return Login(access_token, refresh_token, _expires_in(principal), user, principal)


def _expires_in(principal: Principal) -> int:
    return max(0, round(principal.expires_at - time.time()))


async def register(
    runtime: Runtime, email: str, password: str, display_name: str, ip: str | None
) -> Login:
    """Counted per client address before any work (a taken email's 409 counts too)."""
    await enforce(
        runtime.need_limiter(),
        runtime.settings.register_rate,
        "register-ip",
        ip or "-",
        "Too many registrations from this address; try again later.",
    )
    password_hash = await passwords_for(runtime).hash(password, bulk=True)
    user = await users.create(email, password_hash, display_name)
    await throttle_for(runtime).succeeded(user.email, ip)  # the owner's own address is known
    await audit("user.registered", actor_id=user.id, subject_id=user.id, ip=ip)
    return await open_session(runtime.need_tokens(), user)


async def login(runtime: Runtime, email: str, password: str, ip: str | None) -> Login:
    """Unknown email and wrong password take the same path, time and answer."""
    await throttle_for(runtime).hit(email, ip)
    hasher = passwords_for(runtime)
    user = await users.by_email(email)
    if user is None:
        await hasher.verify_dummy(password)
        await audit("login.failed", ip=ip)
        raise AppError(ErrorCode.INVALID_CREDENTIALS)
    if not await hasher.verify(user.password_hash, password):
        await audit("login.failed", subject_id=user.id, ip=ip)
        raise AppError(ErrorCode.INVALID_CREDENTIALS)
    # Blocked is told only to someone who knows the password.
    if not user.active:
        await audit("login.blocked", subject_id=user.id, ip=ip)
        raise AppError(ErrorCode.ACCOUNT_BLOCKED)
    if hasher.needs_rehash(user.password_hash):
        await users.update(user.id, password_hash=await hasher.hash(password))
    await throttle_for(runtime).succeeded(email, ip)
    await audit("login.succeeded", actor_id=user.id, subject_id=user.id, ip=ip)
    return await open_session(runtime.need_tokens(), user)


async def refresh(runtime: Runtime, refresh_token: str, ip: str | None) -> Login:
    tokens = runtime.need_tokens()
    claims = await tokens.verify_refresh(refresh_token)
    await enforce(
        runtime.need_limiter(),
        runtime.settings.refresh_rate,
        "refresh-sid",
        claims.family_id,
        "Too many refreshes for this login; try again later.",
    )
    family = await families.get(claims.family_id)
    if family is None or family.user_id != claims.user_id or family.revoked:
        raise AppError(ErrorCode.TOKEN_INVALID)
    if family.current_jti != claims.jti:
        await _reused(runtime, family.id, claims.user_id, ip)
    user = await users.by_id(claims.user_id)
    if user is None:
        raise AppError(ErrorCode.TOKEN_INVALID)
    if not user.active:
        raise AppError(ErrorCode.ACCOUNT_BLOCKED)
    # auth_time carries over: refreshing is not re-entering the password. Old refresh tokens
    # without it count as an old login (0): deletion then asks for the password.
    auth_time = claims.auth_time or 0.0
    new_refresh, new_jti, exp = tokens.issue_refresh(user.id, family.id, auth_time)
    if not await families.rotate(family.id, claims.jti, new_jti, exp):
        await _reused(runtime, family.id, claims.user_id, ip)  # a concurrent refresh won
    access_token, principal = tokens.issue_access(
        user.id, user.role, session_id=family.id, auth_time=auth_time
    )
    return Login(access_token, new_refresh, _expires_in(principal), user, principal)


async def _reused(runtime: Runtime, family_id: str, user_id: str, ip: str | None) -> None:
    """A copied refresh token: the whole login ends, its access tokens included."""
    await families.revoke(family_id)
    await runtime.need_tokens().revoke_session(family_id)
    await audit("token.reused", subject_id=user_id, ip=ip, session=family_id)
    raise AppError(ErrorCode.TOKEN_REUSED)


async def logout(runtime: Runtime, principal: Principal, refresh_token: str | None) -> None:
    """End this login: every access token of it (``sid``), its refresh family, and the
    user's live sockets."""
    tokens = runtime.need_tokens()
    await tokens.revoke_jti(principal.jti, principal.expires_at)
    ended = {principal.session_id} if principal.session_id else set()
    if refresh_token:
        try:
            claims = await tokens.verify_refresh(refresh_token)
        except AppError:
            claims = None  # an expired or foreign refresh token must not make logout fail
        if claims is not None and claims.user_id == principal.user_id:
            ended.add(claims.family_id)
    for family_id in ended:
        await families.revoke(family_id)  # the persisted truth first, then the fast denylist
        await tokens.revoke_session(family_id)
    await audit("logout", actor_id=principal.user_id, subject_id=principal.user_id)
    await close_sockets(runtime, principal.user_id)


async def end_all_sessions(runtime: Runtime, user_id: str) -> None:
    """Password change, deletion, block: every token and socket of the user stops working."""
    await runtime.need_tokens().revoke_user_tokens(user_id)
    await families.revoke_all(user_id)
    await close_sockets(runtime, user_id)


async def close_sockets(runtime: Runtime, user_id: str) -> None:
    """Close the user's sockets on every node (4010). The tokens are already revoked, so a
    broker outage here is logged, not raised: the sockets fail their next token check."""
    if runtime.hub is None:
        return
    try:
        await runtime.hub.revoke_user(user_id)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("could not close the sockets of a revoked user", extra={"user_id": user_id})
