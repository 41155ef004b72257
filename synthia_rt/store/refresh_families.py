"""Refresh-token families: one per login, holding the id of its only valid refresh token.

Rotation is a compare-and-set on ``current_jti`` so two concurrent refreshes with the same
token cannot both succeed: the loser is treated as re-use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from synthia_rt.store import faults
from synthia_rt.store.ids import as_uuid
from synthia_rt.store.tables import RefreshFamily, utcnow


@dataclass(frozen=True, slots=True)
class FamilyRecord:
    id: str
    user_id: str
    current_jti: str
    revoked: bool


def _at(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


async def create(family_id: str, user_id: str, jti: str, expires_at: float) -> None:
    now = utcnow()
    row = RefreshFamily(
        id=as_uuid(family_id),
        user=as_uuid(user_id),
        current_jti=jti,
        revoked=False,
        created_at=now,
        expires_at=_at(expires_at),
        last_used_at=now,
    )
    await RefreshFamily.insert(row).run()


@faults.guard
async def get(family_id: str) -> FamilyRecord | None:
    fid = as_uuid(family_id)
    if fid is None:
        return None
    row = await RefreshFamily.select().where(RefreshFamily.id == fid).first().run()
    if row is None:
        return None
    return FamilyRecord(str(row["id"]), str(row["user"]), row["current_jti"], bool(row["revoked"]))


async def rotate(family_id: str, old_jti: str, new_jti: str, expires_at: float) -> bool:
    """Swap the family's current token iff it still is ``old_jti`` and not revoked."""
    fid = as_uuid(family_id)
    if fid is None:
        return False
    done = (
        await RefreshFamily.update(
            {
                RefreshFamily.current_jti: new_jti,
                RefreshFamily.expires_at: _at(expires_at),
                RefreshFamily.last_used_at: utcnow(),
            }
        )
        .where(
            (RefreshFamily.id == fid)
            & (RefreshFamily.current_jti == old_jti)
            & (RefreshFamily.revoked == False)  # noqa: E712 - Piccolo builds SQL from ==
        )
        .returning(RefreshFamily.id)
        .run()
    )
    return bool(done)


async def revoke(family_id: str) -> None:
    fid = as_uuid(family_id)
    if fid is not None:
        await (
            RefreshFamily.update({RefreshFamily.revoked: True}).where(RefreshFamily.id == fid).run()
        )


async def revoke_all(user_id: str) -> None:
    uid = as_uuid(user_id)
    if uid is not None:
        await (
            RefreshFamily.update({RefreshFamily.revoked: True})
            .where(RefreshFamily.user == uid)
            .run()
        )
