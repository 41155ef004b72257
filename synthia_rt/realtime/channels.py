"""Channel names and who may read them (protocol section 6).

| channel            | readers                          |
|--------------------|----------------------------------|
| ``user:<user_id>`` | that user (joined at connect)    |
| ``analysis:<id>``  | the analysis' or quiz's owner     |
| ``admin:metrics``  | role admin                        |
| ``broadcast``      | everyone (joined at connect)      |

Anything else — unknown prefixes, malformed ids, other people's channels — is ``forbidden``
with one identical message, so a refusal leaks nothing about whether the channel exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode

BROADCAST = "broadcast"
ADMIN_METRICS = "admin:metrics"

OwnerLookup = Callable[[str], Awaitable[str | None]]


def user_channel(user_id: str) -> str:
    return f"user:{user_id}"


def analysis_channel(analysis_id: str) -> str:
    return f"analysis:{analysis_id}"


def analysis_id_of(channel: str) -> str | None:
    """The analysis id of an ``analysis:<uuid>`` channel, else None."""
    prefix, _, rest = channel.partition(":")
    if prefix != "analysis":
        return None
    try:
        return str(uuid.UUID(rest))
    except ValueError:
        return None


def forbidden() -> AppError:
    return AppError(ErrorCode.FORBIDDEN, "you may not subscribe to this channel")


async def authorize(principal: Principal, channel: str, owner_of: OwnerLookup) -> str:
    """Return the canonical channel name if ``principal`` may read it; raise forbidden otherwise."""
    if channel == BROADCAST:
        return channel
    if channel == ADMIN_METRICS:
        if principal.is_admin:
            return channel
        raise forbidden()
    if channel == user_channel(principal.user_id):
        return channel
    analysis_id = analysis_id_of(channel)
    if analysis_id is not None and await owner_of(analysis_id) == principal.user_id:
        return analysis_channel(analysis_id)
    raise forbidden()
