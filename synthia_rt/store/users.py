"""User rows: create, look up, update, and erase a user with everything that is theirs."""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from piccolo.columns import ForeignKey
from piccolo.columns.combination import WhereRaw
from piccolo.custom_types import Combinable
from piccolo.query.functions.aggregate import Count
from piccolo.table import Table

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.store import faults
from synthia_rt.store.ids import as_uuid
from synthia_rt.store.pagination import Cursor, after
from synthia_rt.store.tables import TABLES, Analysis, AuditLog, User, utcnow


class UserGone(LookupError):
    """The user no longer exists: none of their tokens is valid."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    email: str
    display_name: str
    role: str
    active: bool
    password_hash: str
    created_at: datetime
    updated_at: datetime
    plan: str = "free"  # free | premium (store/plans.py)
    locale: str | None = None  # es | en; None = negotiated per request (Accept-Language)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _record(row: dict[str, Any]) -> UserRecord:
    return UserRecord(
        id=str(row["id"]),
        email=row["email"],
        display_name=row["display_name"],
        role=row["role"],
        active=bool(row["active"]),
        password_hash=row["password_hash"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        plan=row.get("plan") or "free",
        locale=row.get("locale"),
    )


@faults.guard
async def by_id(user_id: str) -> UserRecord | None:
    uid = as_uuid(user_id)
    if uid is None:
        return None
    row = await User.select().where(User.id == uid).first().run()
    return _record(row) if row else None


async def by_email(email: str) -> UserRecord | None:
    row = await User.select().where(User.email == normalize_email(email)).first().run()
    return _record(row) if row else None


async def create(
    email: str, password_hash: str, display_name: str = "", role: str = "user"
) -> UserRecord:
    """Insert a user; :class:`AppError` CONFLICT when the email is taken (also under a race)."""
    email = normalize_email(email)
    if await User.exists().where(User.email == email).run():
        raise AppError(ErrorCode.CONFLICT, "This email is already registered.", field="email")
    now = utcnow()
    uid = uuid.uuid4()
    row = User(
        id=uid,
        email=email,
        password_hash=password_hash,
        display_name=display_name,
        role=role,
        active=True,
        created_at=now,
        updated_at=now,
    )
    try:
        await User.insert(row).run()
    except (asyncpg.UniqueViolationError, sqlite3.IntegrityError):  # lost a race for the email
        raise AppError(
            ErrorCode.CONFLICT, "This email is already registered.", field="email"
        ) from None
    created = await by_id(str(uid))
    assert created is not None
    return created


async def update(
    user_id: str, *, display_name: str | None = None, password_hash: str | None = None
) -> UserRecord | None:
    uid = as_uuid(user_id)
    if uid is None:
        return None
    values: dict[Any, Any] = {User.updated_at: utcnow()}
    if display_name is not None:
        values[User.display_name] = display_name
    if password_hash is not None:
        values[User.password_hash] = password_hash
    await User.update(values).where(User.id == uid).run()
    return await by_id(user_id)


async def set_locale(user_id: str, locale: str | None) -> UserRecord | None:
    """Save the user's language (``None`` clears it: negotiate per request again)."""
    uid = as_uuid(user_id)
    if uid is None:
        return None
    await User.update({User.locale: locale, User.updated_at: utcnow()}).where(User.id == uid).run()
    return await by_id(user_id)


@faults.guard
async def saved_locale(user_id: str) -> str | None:
    """The user's saved language, or None (also for an unknown user)."""
    uid = as_uuid(user_id)
    if uid is None:
        return None
    row = await User.select(User.locale).where(User.id == uid).first().run()
    return row["locale"] if row else None


async def set_active(user_id: str, active: bool) -> bool:
    uid = as_uuid(user_id)
    if uid is None:
        return False
    done = (
        await User.update({User.active: active, User.updated_at: utcnow()})
        .where(User.id == uid)
        .returning(User.id)
        .run()
    )
    return bool(done)


@faults.guard
async def get_tokens_valid_after(user_id: str) -> datetime | None:
    """The user's token cutoff; raises :class:`UserGone` when the user does not exist.

    Token checks (REST and the socket handshake) call this on a cache miss: a database
    outage is ``AppError(UNAVAILABLE)`` here, a temporary refusal, never an auth failure."""
    uid = as_uuid(user_id)
    row = (
        None
        if uid is None
        else await User.select(User.tokens_valid_after).where(User.id == uid).first().run()
    )
    if row is None:
        raise UserGone(user_id)
    value: datetime | None = row["tokens_valid_after"]
    return value


@faults.guard
async def set_tokens_valid_after(user_id: str, at: datetime) -> None:
    uid = as_uuid(user_id)
    if uid is not None:
        await User.update({User.tokens_valid_after: at}).where(User.id == uid).run()


def _user_fks(table: type[Table]) -> list[ForeignKey[Any]]:
    return [
        fk
        for fk in table._meta.foreign_key_columns
        if fk._foreign_key_meta.resolved_references is User
    ]


def _owned_fks(table: type[Table]) -> list[tuple[ForeignKey[Any], type[Table]]]:
    """Foreign keys of ``table`` into another table that is itself owned by a user."""
    out = []
    for fk in table._meta.foreign_key_columns:
        target = fk._foreign_key_meta.resolved_references
        if target is not User and _user_fks(target):
            out.append((fk, target))
    return out


async def erase(user_id: str) -> bool:
    """Delete the user and every row that is theirs, in every table, in one transaction.

    Walks the foreign keys of :data:`TABLES` instead of naming tables, so a table added later
    is covered; rows hanging off a user's rows (feedback on their analyses) go first. The
    audit trail about the user (which may hold IP addresses) goes too.
    """
    uid = as_uuid(user_id)
    if uid is None:
        return False
    async with User._meta.db.transaction():
        for table in TABLES:
            for fk, target in _owned_fks(table):
                pk = target._meta.primary_key
                owned = [
                    r[pk._meta.name]
                    for fk_user in _user_fks(target)
                    for r in await target.select(pk).where(fk_user == uid).run()
                ]
                if owned:
                    await table.delete().where(fk.is_in(owned)).run()
        for table in TABLES:
            for fk_user in _user_fks(table):
                await table.delete().where(fk_user == uid).run()
        await (
            AuditLog.delete()
            .where((AuditLog.actor_id == str(uid)) | (AuditLog.subject_id == str(uid)))
            .run()
        )
        gone = await User.delete().where(User.id == uid).returning(User.id).run()
    return bool(gone)


# -- admin search ----------------------------------------------------------------------------------
_HEX = frozenset("0123456789abcdef")


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern whose ESCAPE character is a backslash."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matches(prefix: str) -> Combinable | None:
    """Email starting with ``prefix``, or id starting with it (dashes optional); None = all."""
    prefix = prefix.strip().lower()
    if not prefix:
        return None
    # Emails are stored normalised to lower case, so a case-sensitive LIKE on the lowered prefix
    # is case-insensitive; ESCAPE is spelled out because SQLite has no default escape character.
    condition: Combinable = WhereRaw("email LIKE {} ESCAPE '\\'", escape_like(prefix) + "%")
    digits = prefix.replace("-", "")
    if digits and len(digits) <= 32 and set(digits) <= _HEX:
        # An id prefix is a range of UUIDs: index-friendly, and no cast of every id to text.
        low = uuid.UUID(digits.ljust(32, "0"))
        high = uuid.UUID(digits.ljust(32, "f"))
        condition = condition | ((User.id >= low) & (User.id <= high))
    return condition


@faults.guard
async def search(prefix: str, cursor: Cursor | None, limit: int) -> list[dict[str, Any]]:
    """Users whose email or id starts with ``prefix``, newest first, ``limit + 1`` rows at most
    (so :func:`~synthia_rt.store.pagination.next_cursor` can tell whether a page follows)."""
    select = User.select(
        User.id, User.email, User.display_name, User.role, User.active, User.created_at
    )
    condition = _matches(prefix)
    if condition is not None:
        select = select.where(condition)
    if cursor is not None:
        select = select.where(after(cursor, User.created_at, User.id))
    rows: list[dict[str, Any]] = (
        await select.order_by(User.created_at, User.id, ascending=False).limit(limit + 1).run()
    )
    return rows


@faults.guard
async def analysis_counts(user_ids: list[uuid.UUID]) -> dict[str, int]:
    """How many analyses each of ``user_ids`` has (users without any are absent)."""
    if not user_ids:
        return {}
    rows = (
        await Analysis.select(Analysis.user, Count(alias="n"))
        .where(Analysis.user.is_in(user_ids))
        .group_by(Analysis.user)
        .run()
    )
    return {str(row["user"]): int(row["n"]) for row in rows}
