"""The audit trail: who did what, by id. Never personal data, secrets or image bytes.

``detail`` keeps only short scalar values under keys that cannot hold personal data; anything
else is dropped, so a careless caller cannot leak an email or a token into the table. A failed
write is logged loudly but does not fail the request it describes (a login must not turn into
a 500 because the audit insert lost a race with shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from synthia_rt.store import audit as audit_store

log = logging.getLogger(__name__)

_FORBIDDEN_KEY = re.compile(
    r"email|mail|name|pass|token|secret|phone|address|image|photo|comment|body", re.I
)
_MAX_VALUE = 120


def clean_detail(detail: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in detail.items():
        if _FORBIDDEN_KEY.search(key):
            continue
        if isinstance(value, bool | int | float) or value is None:
            kept[key] = value
        elif isinstance(value, str) and "@" not in value:
            kept[key] = value[:_MAX_VALUE]
    return kept


async def audit(
    action: str,
    actor_id: str | None = None,
    subject_id: str | None = None,
    ip: str | None = None,
    **detail: Any,
) -> None:
    try:
        await audit_store.insert(action, actor_id, subject_id, ip, clean_detail(detail))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("audit write failed", extra={"action": action})
