"""Request and response models of the REST shim; the OpenAPI document is generated from them.

Bodies are parsed strictly (a string is never silently an integer); query strings, which are
always text, are parsed leniently.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from synthia_rt.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    value = value.strip().lower()
    if not _EMAIL.match(value):
        raise ValueError("not a valid email address")
    return value


Email = Annotated[str, Field(max_length=320, examples=["ada@example.com"]), AfterValidator(_email)]
Password = Annotated[str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)]
AnyPassword = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
DisplayName = Annotated[str, Field(max_length=120)]
Limit = Annotated[int, Field(ge=1, le=100, description="Page size (at most 100).")]
Cursor = Annotated[
    str | None, Field(max_length=200, description="`next_cursor` of the previous page.")
]


class Body(BaseModel):
    model_config = ConfigDict(strict=True, str_strip_whitespace=False)


class Query(BaseModel):
    model_config = ConfigDict(strict=False)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- errors ---------------------------------------------------------------------------------
class ErrorDetail(Out):
    code: str = Field(description="One of the documented error codes.")
    message: str
    temporary: bool = False
    field: str | None = Field(default=None, description="The invalid field, for validation errors.")
    retry_after: float | None = Field(default=None, description="Seconds to wait (rate limits).")


class ErrorOut(Out):
    error: ErrorDetail


# --- auth -----------------------------------------------------------------------------------
class RegisterIn(Body):
    email: Email
    password: Password
    display_name: DisplayName = ""


class LoginIn(Body):
    email: Annotated[str, Field(min_length=1, max_length=320)]
    password: AnyPassword


class RefreshIn(Body):
    refresh_token: Annotated[str, Field(min_length=1, max_length=4096)]


class LogoutIn(Body):
    refresh_token: Annotated[str | None, Field(max_length=4096)] = None


class UserOut(Out):
    id: str
    email: str
    display_name: str
    role: Literal["user", "admin"]
    plan: Literal["free", "premium"] = "free"
    created_at: datetime
    locale: Literal["es", "en"] | None = Field(
        default=None,
        description="The saved language; null = Accept-Language, else the server default.",
    )


class SessionOut(Out):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    user: UserOut


# --- profile --------------------------------------------------------------------------------
class ProfilePatch(Body):
    display_name: DisplayName | None = None
    password: Password | None = Field(
        default=None, description="The new password; needs `current_password`."
    )
    current_password: AnyPassword | None = None
    locale: Literal["es", "en"] | None = Field(
        default=None, description="Save the language of texts and errors; null clears it."
    )


class ProfileOut(Out):
    user: UserOut
    session: SessionOut | None = Field(
        default=None,
        description="After a password change every other session ends; this is the caller's new one.",
    )


# --- analyses -------------------------------------------------------------------------------
AnalysisKind = Literal["facial", "chromatic"]


class HistoryQuery(Query):
    limit: Limit = 20
    cursor: Cursor = None
    kind: AnalysisKind | None = None


class AnalysisErrorOut(Out):
    code: str
    message: str


class AnalysisOut(Out):
    id: str
    kind: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    result: dict[str, Any] | None = None
    labels: dict[str, Any] = Field(
        default_factory=dict,
        description="The result's keys as words in the caller's language, as in `analysis.result`.",
    )
    cached: bool
    model: str
    error: AnalysisErrorOut | None = None
    duration_ms: int | None = None
    created_at: datetime
    finished_at: datetime | None = None


class AnalysisPage(Out):
    items: list[AnalysisOut]
    next_cursor: str | None = None


# --- feedback -------------------------------------------------------------------------------
class FeedbackIn(Body):
    rating: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str, Field(max_length=2000)] = ""
    analysis_id: uuid.UUID | None = None


class FeedbackOut(Out):
    id: str
    user_id: str
    analysis_id: str | None = None
    rating: int
    comment: str
    created_at: datetime


class PageQuery(Query):
    limit: Limit = 20
    cursor: Cursor = None


class FeedbackPage(Out):
    items: list[FeedbackOut]
    next_cursor: str | None = None


# --- notifications --------------------------------------------------------------------------
class NotificationQuery(PageQuery):
    unread: bool = Field(default=False, description="Only notifications not yet read.")


class NotificationOut(Out):
    id: str
    kind: str
    title: str
    body: str
    read: bool
    created_at: datetime


class NotificationPage(Out):
    items: list[NotificationOut]
    next_cursor: str | None = None


# --- health ---------------------------------------------------------------------------------
class HealthOut(Out):
    status: Literal["ok"] = "ok"
    node: str


class ReadyOut(Out):
    status: Literal["ok", "unavailable"]
    node: str
    checks: dict[str, bool] = Field(description="Each dependency and whether it answered.")
