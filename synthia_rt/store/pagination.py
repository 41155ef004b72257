"""Keyset pagination over ``(created_at, id)``, newest first, with an opaque cursor.

A cursor is the position of the last row of a page; the next page holds rows strictly after
it in ``created_at DESC, id DESC`` order. Keyset (not OFFSET) so pages stay stable while new
rows arrive and cost the same however deep the client scrolls.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from piccolo.columns import Column
from piccolo.custom_types import Combinable

from synthia_rt.errors import AppError, ErrorCode


@dataclass(frozen=True, slots=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            stamp, _, ident = raw.partition("|")
            created = datetime.fromisoformat(stamp)
            if created.tzinfo is None:
                raise ValueError("naive timestamp")
            return cls(created, uuid.UUID(ident))
        except (ValueError, UnicodeDecodeError):
            raise AppError(
                ErrorCode.VALIDATION_ERROR, "The cursor is not valid.", field="cursor"
            ) from None


def after(cursor: Cursor, created_col: Column, id_col: Column) -> Combinable:
    """Rows strictly after ``cursor`` in newest-first order."""
    return (created_col < cursor.created_at) | (
        (created_col == cursor.created_at) & (id_col < cursor.id)
    )


def next_cursor(rows: list[dict[str, Any]], limit: int) -> str | None:
    """The cursor for the page after ``rows`` (fetched with ``limit + 1``), or None at the end."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return Cursor(last["created_at"], last["id"]).encode()
