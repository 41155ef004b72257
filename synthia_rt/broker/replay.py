"""The history rules both brokers share: where a replay starts and whether it is complete."""

from __future__ import annotations

from collections.abc import Sequence

from synthia_rt.broker.base import Event, Position


def resumes(since: Position | None, position: Position) -> bool:
    """Whether ``since`` is a point of the current history (same epoch, not in the future)."""
    return (
        since is not None and since.epoch == position.epoch and 0 <= since.offset <= position.offset
    )


def first_offset(since: Position | None, position: Position) -> int:
    """Offset a replay starts at: right after ``since`` when it resumes, else the oldest kept."""
    if since is not None and resumes(since, position):
        return since.offset + 1
    return 1


def recovered(since: Position | None, position: Position, events: Sequence[Event]) -> bool:
    """True iff nothing between ``since`` (offset 0 when None) and the first event is missing.

    A different epoch or an offset beyond the newest means the client's view belongs to lost
    history: it must re-sync, whatever is returned.
    """
    since = since if since is not None else Position(0, position.epoch)
    if not resumes(since, position):
        return False
    if since.offset == position.offset:
        return True
    return bool(events) and events[0].offset == since.offset + 1
