"""PostgreSQL outages (issue 10, items 3 and 7) on a PRIVATE server that each test stops.

Nothing is mocked: the server is a real ``postgres`` (tests/pg_server.py) stopped with an
immediate shutdown, the app is the real runtime or a real uvicorn, and clients use real
sockets. Recovery times are printed (``-s``) and recorded in docs/failure-modes.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.runtime import Runtime
from synthia_rt.store import analyses as store
from tests.analysis_support import (
    FACIAL_RESULT,
    analysis_runtime,
    astronaut_jpeg,
    events,
    fake,
    gemini_settings,
    names,
    new_user,
    send,
    service,
    start,
)
from tests.conftest import serving
from tests.fake_gemini import FakeGemini, Stall
from tests.pg_server import PgServer, private_pg
from tests.wsclient import register, ws_session

__all__ = ["fake"]

DEADLINE = 30.0  # bounds a failing wait; nothing here measures speed
TERMINAL_EVENTS = ("analysis.result", "analysis.error")
_DENIAL = "ASGI callable returned without completing handshake"


@pytest.fixture
async def pg() -> AsyncIterator[PgServer]:
    async with private_pg() as server:
        yield server


@pytest.fixture
async def db_url(pg: PgServer) -> str:
    return await pg.create_database("synthia")


class Captured(logging.Handler):
    """Every record of the app and of uvicorn (whose loggers do not propagate to the root)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def loud(self) -> list[str]:
        """Records at ERROR or above, or carrying a traceback. (uvicorn's line about a refused
        handshake is left out: it is logged for every handshake refused with an HTTP status.)"""
        return [
            f"{r.name}: {r.getMessage()}"
            for r in self.records
            if (r.levelno >= logging.ERROR or r.exc_info) and not r.getMessage().startswith(_DENIAL)
        ]

    def saw(self, text: str) -> bool:
        return any(text in r.getMessage() for r in self.records)


@contextlib.contextmanager
def capture() -> Iterator[Captured]:
    """Capture from now on (enter it after uvicorn started: its logging setup replaces handlers)."""
    handler = Captured()
    loggers = [
        logging.getLogger(),
        logging.getLogger("uvicorn.error"),
        logging.getLogger("uvicorn"),
    ]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield handler
    finally:
        for lg in loggers:
            lg.removeHandler(handler)


_stacks: dict[str, contextlib.ExitStack] = {}


def stack_capture(live: str) -> Captured:
    """:func:`capture` until the end of the test (see the ``_release_captures`` fixture)."""
    stack = _stacks.setdefault(live, contextlib.ExitStack())
    return stack.enter_context(capture())


@pytest.fixture(autouse=True)
def _release_captures() -> Iterator[None]:
    yield
    while _stacks:
        _stacks.popitem()[1].close()


@pytest.fixture
def logs() -> Iterator[Captured]:
    with capture() as handler:
        yield handler


async def until(check: Callable[[], Awaitable[bool]], timeout: float = DEADLINE) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def terminal_events(runtime: Runtime, analysis_id: str) -> list[dict[str, Any]]:
    return [
        e for e in await events(runtime, f"analysis:{analysis_id}") if e["event"] in TERMINAL_EVENTS
    ]


def bearer(user: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['access_token']}"}


def assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "unavailable" and r.json()["error"]["temporary"] is True
    assert int(r.headers["retry-after"]) >= 1


async def test_rest_and_token_checks_answer_unavailable_while_postgres_is_down(
    pg: PgServer, db_url: str, settings_for: Any
) -> None:
    async with serving(settings_for("redis", database_url=db_url)) as live:
        logs = stack_capture(live)
        base = f"http://{live}"
        known, fresh = await register(base), await register(base)
        async with httpx.AsyncClient(base_url=base, timeout=DEADLINE) as http:
            assert (
                await http.get("/api/v1/users/profile", headers=bearer(known))
            ).status_code == 200

            # Mid-request: a lock holds the history query inside PostgreSQL, then the server stops.
            admin = await asyncpg.connect(db_url)
            locked = admin.transaction()
            await locked.start()
            await admin.execute("LOCK TABLE analyses IN ACCESS EXCLUSIVE MODE")
            request = asyncio.create_task(http.get("/api/v1/history", headers=bearer(known)))

            async def blocked() -> bool:
                count = await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                )
                return bool(count)

            await until(blocked)
            await pg.stop()
            with contextlib.suppress(Exception):
                await admin.close(timeout=1)
            assert_unavailable(await request)

            # While it is down: every route that needs the database says so, the same way.
            for path in ("/api/v1/history", "/api/v1/notifications"):
                assert_unavailable(await http.get(path, headers=bearer(known)))
            # The profile read earlier is served from the `user` cache namespace meanwhile.
            assert (
                await http.get("/api/v1/users/profile", headers=bearer(known))
            ).status_code == 200
            # A user whose revocation cutoff is not cached: a temporary refusal, not an auth failure.
            assert_unavailable(await http.get("/api/v1/users/profile", headers=bearer(fresh)))
            with pytest.raises(AppError) as refused:
                await live.runtime.need_tokens().verify_access(fresh["access_token"])
            assert refused.value.code is ErrorCode.UNAVAILABLE and refused.value.temporary
            # The socket handshake of that user is never a 500 (how it refuses is the endpoint's).
            try:
                async with connect(
                    f"ws://{live}/ws",
                    subprotocols=["synthia.v1", f"bearer.{fresh['access_token']}"],
                ):  # type: ignore[list-item]
                    pass
            except InvalidStatus as exc:
                assert exc.response.status_code != 500

            assert logs.loud() == []
            assert logs.saw("database unavailable")

            await pg.start()
            back = time.monotonic()
            r = await http.get("/api/v1/users/profile", headers=bearer(fresh))
            print(
                f"\n[measured] REST after PostgreSQL restart: {r.status_code} in {time.monotonic() - back:.3f} s"
            )
            assert r.status_code == 200


async def _stalled_analysis(runtime: Runtime, resume: asyncio.Event, fake: FakeGemini) -> str:
    """A facial analysis whose model call waits for ``resume`` after its first partial."""
    fake.push(Stall(json.dumps(FACIAL_RESULT), after=1, pieces=4, resume=resume))
    svc = service(runtime)
    user = await new_user()
    data = astronaut_jpeg()
    aid: str = (await start(svc, user, data))["analysis_id"]
    await send(svc, user, aid, data)

    async def partial_seen() -> bool:
        return "analysis.partial" in names(await events(runtime, f"analysis:{aid}"))

    await until(partial_seen)
    return aid


async def test_postgres_restart_mid_analysis_ends_it_exactly_once(
    pg: PgServer, db_url: str, settings_for: Any, fake: FakeGemini, logs: Captured
) -> None:
    resume = asyncio.Event()
    settings = gemini_settings(settings_for("redis", database_url=db_url), fake, gemini_timeout=60)
    async with analysis_runtime(settings) as runtime:
        aid = await _stalled_analysis(runtime, resume, fake)
        await pg.stop()
        resume.set()  # the model answers while the database is down
        await until(lambda: _true(logs.saw("record the result: database unavailable")))
        back = time.monotonic()
        await pg.start()

        async def told() -> bool:
            return bool(await terminal_events(runtime, aid))

        await until(told)
        recovered = time.monotonic() - back
        print(
            f"\n[measured] analysis result persisted and published {recovered:.2f} s after PostgreSQL was restarted"
        )
        row = await store.get(aid)
        assert row is not None and row["status"] == "done" and row["result"] == FACIAL_RESULT
        # Nothing is left for a sweeper to end a second time.
        assert await service(runtime).sweep_abandoned(older_than=0) == 0
        [terminal] = await terminal_events(runtime, aid)
        assert terminal["event"] == "analysis.result" and terminal["result"] == FACIAL_RESULT
        assert (await store.get(aid))["status"] == "done"  # type: ignore[index]
    assert logs.loud() == []


async def test_outage_longer_than_the_retry_window_fails_once_with_the_true_reason(
    pg: PgServer, db_url: str, settings_for: Any, fake: FakeGemini, logs: Captured
) -> None:
    resume = asyncio.Event()
    settings = gemini_settings(
        settings_for("redis", database_url=db_url, db_retry_window=1.0), fake, gemini_timeout=60
    )
    async with analysis_runtime(settings) as runtime:
        aid = await _stalled_analysis(runtime, resume, fake)
        await pg.stop()
        resume.set()

        async def told() -> bool:
            return bool(await terminal_events(runtime, aid))

        await until(told)
        [error] = await terminal_events(runtime, aid)
        assert (error["event"], error["code"], error["temporary"]) == (
            "analysis.error",
            "unavailable",
            True,
        )
        back = time.monotonic()
        await pg.start()

        async def recorded() -> bool:
            row = await store.get(aid)
            return row is not None and row["status"] in store.TERMINAL

        await until(recorded)
        print(
            f"\n[measured] failure recorded {time.monotonic() - back:.2f} s after PostgreSQL was restarted"
        )
        row = await store.get(aid)
        assert row is not None and (row["status"], row["error_code"]) == ("failed", "unavailable")
        assert await service(runtime).sweep_abandoned(older_than=0) == 0
        assert len(await terminal_events(runtime, aid)) == 1
    assert logs.loud() == []


async def test_quiz_start_during_an_outage_gets_exactly_one_reply(
    pg: PgServer, db_url: str, settings_for: Any
) -> None:
    async with serving(settings_for("redis", database_url=db_url)) as live:
        logs = stack_capture(live)
        user = await register(f"http://{live}")
        async with ws_session(f"ws://{live}/ws", user["access_token"]) as client:
            await pg.stop()
            await client.send_raw(json.dumps({"id": 1, "op": "quiz.start"}))
            await client.send_raw(json.dumps({"id": 2, "op": "ping"}))
            # Replies leave in command order: everything about command 1 comes before ping's.
            frames: list[dict[str, Any]] = []
            while not frames or frames[-1].get("id") != 2:
                frames.append(await client.recv(timeout=DEADLINE))
            replies = [f for f in frames if f.get("id") == 1]
            assert len(replies) == 1, frames
            [reply] = replies
            if not reply["ok"]:
                assert (
                    reply["error"]["code"] == "unavailable" and reply["error"]["temporary"] is True
                )
            await pg.start()
            again = await client.command("quiz.start", timeout=DEADLINE)
            assert again["ok"] and again["questions"]
    assert logs.loud() == []


def _true(value: bool) -> Awaitable[bool]:
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future
