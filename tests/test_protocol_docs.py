"""docs/protocol.md must name every op, event, error code and close code the code has."""

from __future__ import annotations

import re
from pathlib import Path

from synthia_rt.errors import CLOSE_DOCS, ERROR_DOCS, CloseCode, ErrorCode
from synthia_rt.realtime.dispatch import HANDLERS
from synthia_rt.realtime.protocol import COMMANDS

DOC = (Path(__file__).parents[1] / "docs" / "protocol.md").read_text()
EVENTS = [
    "session.ready",
    "session.expiring",
    "channel.reset",
    "notification",
    "upload.progress",
    "analysis.progress",
    "analysis.partial",
    "analysis.result",
    "analysis.error",
    "quiz.estimate",
    "metrics.snapshot",
]


def test_every_op_is_documented_and_handled() -> None:
    assert set(COMMANDS) == set(HANDLERS)
    for op in COMMANDS:
        assert f"| `{op}` |" in DOC, op


def test_every_event_is_documented() -> None:
    for name in EVENTS:
        assert f"`{name}`" in DOC, name


def test_every_error_code_is_documented_with_its_status() -> None:
    for code in ErrorCode:
        status, _ = ERROR_DOCS[code]
        assert re.search(rf"\| `{code.value}` \| {status} \|", DOC), code


def test_every_close_code_is_documented() -> None:
    assert set(CLOSE_DOCS) == set(CloseCode)
    for code in CloseCode:
        assert f"| {int(code)} |" in DOC, code
