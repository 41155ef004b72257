"""Parsing ids that arrive as text (paths, tokens, cursors) into UUIDs, safely."""

from __future__ import annotations

import uuid


def as_uuid(value: object) -> uuid.UUID | None:
    """The UUID ``value`` denotes, or None for anything that is not one (never raises)."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
