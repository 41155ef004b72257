"""``/users/profile``: read, update (display name, locale, password) and erase one's own account."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field
from starlette.requests import Request
from starlette.routing import BaseRoute

from synthia_rt.auth import accounts
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.rest.auth import session_out, user_out
from synthia_rt.rest.deps import client_ip, runtime_of
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import AnyPassword, Body, Out, ProfileOut, ProfilePatch, UserOut
from synthia_rt.store import plans, users

TAGS = ("users",)


@api(
    "GET",
    "/users/profile",
    "The caller's profile",
    response=UserOut,
    errors=[ErrorCode.NOT_FOUND],
    tags=TAGS,
)
async def get_profile(request: Request, principal: Principal) -> UserOut:
    user = await runtime_of(request).need_user_cache().record(principal.user_id)
    if user is None:
        raise AppError(ErrorCode.NOT_FOUND)
    return user_out(user)


@api(
    "PATCH",
    "/users/profile",
    "Change the display name, the language and/or the password",
    body=ProfilePatch,
    response=ProfileOut,
    errors=[ErrorCode.NOT_FOUND, ErrorCode.RATE_LIMITED],
    tags=TAGS,
    description="A password change needs `current_password`; it ends every session of the user "
    "(sockets close with 4010) and returns a fresh one for the caller in `session`.",
)
async def patch_profile(request: Request, principal: Principal, body: ProfilePatch) -> ProfileOut:
    runtime = runtime_of(request)
    session = None
    if body.password is not None:
        if body.current_password is None:
            raise AppError(
                ErrorCode.VALIDATION_ERROR,
                "current_password is required to change the password.",
                field="current_password",
            )
        session = await accounts.change_password(
            runtime, principal, body.current_password, body.password, client_ip(request)
        )
    user = await accounts.update_profile(principal, body.display_name)
    if "locale" in body.model_fields_set:
        changed = await users.set_locale(principal.user_id, body.locale)
        if changed is None:
            raise AppError(ErrorCode.NOT_FOUND)
        user = changed
    await runtime.forget_user(principal.user_id)
    return ProfileOut(
        user=user_out(user), session=None if session is None else session_out(session)
    )


class DeleteProfileIn(Body):
    password: AnyPassword | None = Field(
        default=None,
        description="The account's password; may be omitted only within 5 minutes of logging in.",
    )


@api(
    "DELETE",
    "/users/profile",
    "Erase the account and everything of it",
    body=DeleteProfileIn,
    status=204,
    errors=[ErrorCode.NOT_FOUND, ErrorCode.RATE_LIMITED],
    tags=TAGS,
    description="Needs `password` in the body, unless the caller's login (password entered, "
    "not a refresh) is less than 5 minutes old; else 422 naming `password`. Deletes the user's "
    "rows in every table and their keys in Redis, closes their sockets (4010). The audit log "
    "keeps the user id only.",
)
async def delete_profile(request: Request, principal: Principal, body: DeleteProfileIn) -> None:
    runtime = runtime_of(request)
    await accounts.confirm_identity(runtime, principal, body.password, client_ip(request))
    await accounts.erase(runtime, principal.user_id)


class UsageOut(Out):
    plan: Literal["free", "premium"]
    used: int = Field(description="Model-backed analyses started this calendar month (UTC).")
    limit: int | None = Field(description="The plan's monthly cap; null = unlimited (premium).")
    resets_at: datetime = Field(description="When `used` starts again from 0 (UTC).")


@api(
    "GET",
    "/users/usage",
    "Where the caller stands against the plan's monthly quota",
    response=UsageOut,
    errors=[ErrorCode.NOT_FOUND, ErrorCode.UNAVAILABLE],
    tags=TAGS,
    description="Cached answers and the local analyzer never count; see docs/billing.md.",
)
async def get_usage(request: Request, principal: Principal) -> UsageOut:
    limit = runtime_of(request).settings.free_analyses_per_month
    usage = await plans.usage(principal.user_id, limit)
    if usage is None:
        raise AppError(ErrorCode.NOT_FOUND)
    return UsageOut.model_validate(usage, from_attributes=True)


routes: list[BaseRoute] = [get_profile, patch_profile, delete_profile, get_usage]
