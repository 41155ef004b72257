"""A user's own account: profile changes, password change, and erasure.

Erasure removes the user everywhere: every table (``store.users.erase``), every key-value key
that names the user (scan), and whatever other modules keep (``erase_user_hooks``: async
callables ``(user_id) -> None`` that a module appends to ``runtime.erase_user_hooks``
at start-up, e.g. upload chunks keyed by analysis id). The audit trail keeps one row with the
user id and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from synthia_rt.auth import sessions
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.observability.audit import audit
from synthia_rt.runtime import Runtime
from synthia_rt.store import users
from synthia_rt.store.users import UserRecord

log = logging.getLogger(__name__)

EraseHook = Callable[[str], Awaitable[None]]
REAUTH_WINDOW = 300.0  # seconds: a login this recent may delete the account without its password


async def change_password(
    runtime: Runtime, principal: Principal, current_password: str, new_password: str, ip: str | None
) -> sessions.Login:
    """Check the current password, store the new hash, end every session, open a fresh one."""
    user = await _existing(principal.user_id)
    await sessions.throttle_for(runtime).hit(user.email, ip)  # no brute force with a stolen token
    hasher = sessions.passwords_for(runtime)
    if not await hasher.verify(user.password_hash, current_password):
        raise AppError(
            ErrorCode.VALIDATION_ERROR, "The current password is wrong.", field="current_password"
        )
    await sessions.throttle_for(runtime).succeeded(user.email, ip)
    await users.update(user.id, password_hash=await hasher.hash(new_password))
    await sessions.end_all_sessions(runtime, user.id)
    await audit("password.changed", actor_id=user.id, subject_id=user.id, ip=ip)
    return await sessions.open_session(runtime.need_tokens(), await _existing(user.id))


async def confirm_identity(
    runtime: Runtime, principal: Principal, password: str | None, ip: str | None
) -> None:
    """For destructive acts: the password now, or a login (``auth_time``) under 5 minutes old.
    A stolen access token alone (hours after its login was refreshed) is not enough."""
    if password is None:
        recent = principal.auth_time is not None and (
            time.time() - principal.auth_time < REAUTH_WINDOW
        )
        if recent:
            return
        raise AppError(
            ErrorCode.VALIDATION_ERROR,
            "Confirm with your password (or log in again first).",
            field="password",
        )
    user = await _existing(principal.user_id)
    await sessions.throttle_for(runtime).hit(user.email, ip)
    if not await sessions.passwords_for(runtime).verify(user.password_hash, password):
        raise AppError(ErrorCode.VALIDATION_ERROR, "The password is wrong.", field="password")


async def update_profile(principal: Principal, display_name: str | None) -> UserRecord:
    if display_name is None:
        return await _existing(principal.user_id)
    updated = await users.update(principal.user_id, display_name=display_name)
    if updated is None:
        raise AppError(ErrorCode.NOT_FOUND)
    return updated


async def erase(runtime: Runtime, user_id: str, actor_id: str | None = None) -> None:
    """Delete ``user_id`` and everything of theirs (idempotent, so an operator can re-run it)."""
    user = await users.by_id(user_id)
    if user is not None:
        # First make every token useless, so nothing reconnects while rows are going away.
        await runtime.need_tokens().revoke_user_tokens(user_id)
    await sessions.close_sockets(runtime, user_id)
    await users.erase(user_id)
    failed = 0
    for hook in list(runtime.erase_user_hooks):
        failed += not await _run_hook(hook, user_id)
    if user is not None:
        await sessions.throttle_for(runtime).forget(user.email)
    await _erase_keys(runtime, user_id)  # includes the revocation cutoff written above
    await runtime.forget_user(user_id)  # already among the keys above; named so it is not lost
    await audit("user.deleted", actor_id=actor_id or user_id, subject_id=user_id)
    if failed:
        raise AppError(
            ErrorCode.INTERNAL,
            "The account was deleted but some of its data is not gone yet; this was logged.",
        )


async def _run_hook(hook: EraseHook, user_id: str) -> bool:
    try:
        await hook(user_id)
        return True
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception(
            "an erase hook failed",
            extra={"user_id": user_id, "hook": getattr(hook, "__qualname__", "?")},
        )
        return False


async def _erase_keys(runtime: Runtime, user_id: str) -> None:
    kv = runtime.need_kv()
    doomed = [key async for key in kv.scan(f"*{user_id}*")]
    for start in range(0, len(doomed), 500):
        await kv.delete(*doomed[start : start + 500])


async def _existing(user_id: str) -> UserRecord:
    user = await users.by_id(user_id)
    if user is None:
        raise AppError(ErrorCode.NOT_FOUND)
    return user
