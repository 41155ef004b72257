"""Small helpers shared by tests that are not fixtures."""

from __future__ import annotations

import uuid


def unique_email() -> str:
    return f"u-{uuid.uuid4().hex[:12]}@example.com"
