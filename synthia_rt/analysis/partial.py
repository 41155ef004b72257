"""Best-effort parsing of a JSON document while it streams in.

A model streaming structured output sends arbitrary slices of one JSON object. After each
slice, :class:`PartialJSON` re-parses the whole text with pydantic-core's partial mode,
which keeps only *complete* values (a half-streamed ``"ov`` of ``"oval"`` is left out, so a
client never sees an enum value that is not one). The result only ever grows: a slice that
makes the text unparsable for a moment (a dangling escape) keeps the previous best parse.
Re-parsing the whole text is O(n²) over a stream, which is fine at a few KiB of JSON.
"""

from __future__ import annotations

from typing import Any

import pydantic_core


class PartialJSON:
    def __init__(self) -> None:
        self.text = ""
        self.best: dict[str, Any] = {}

    def feed(self, delta: str) -> dict[str, Any]:
        """Append ``delta``; return the best parse of everything so far."""
        self.text += delta
        try:
            value = pydantic_core.from_json(self.text, allow_partial=True)
        except ValueError:
            return self.best
        if isinstance(value, dict) and _size(value) >= _size(self.best):
            self.best = value
        return self.best


def _size(value: Any) -> int:
    """Number of leaves in a JSON value: the measure by which a partial 'grows'."""
    if isinstance(value, dict):
        return sum(_size(v) for v in value.values()) + len(value)
    if isinstance(value, list):
        return sum(_size(v) for v in value) + len(value)
    return 1
