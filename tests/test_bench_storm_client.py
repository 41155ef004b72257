"""The storm's client follows the wire contract on refusals, and never waits forever.

A tiny ``websockets`` server plays the node: it sends ``session.ready`` and answers
``subscribe`` as each test scripts it (temporary refusal, final refusal, unauthorised close,
silence, 4008 on every resubscribe). No synthia_rt node and no database: the client alone.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from bench.scenarios import storm
from bench.scenarios.storm import Refused, StormClient, Unauthorised

REPO = Path(__file__).resolve().parent.parent
Script = Callable[[ServerConnection, int], Awaitable[None]]  # (socket, nth connection)


@asynccontextmanager
async def fake_node(script: Script) -> AsyncIterator[str]:
    count = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal count
        count += 1
        await script(ws, count)

    async with serve(
        handler, "127.0.0.1", 0, subprotocols=["synthia.v1"], compression=None
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}"


async def ready_then_subscribe(ws: ServerConnection) -> dict[str, Any]:
    await ws.send(orjson.dumps({"event": "session.ready", "node": "fake"}).decode())
    command: dict[str, Any] = orjson.loads(await ws.recv())
    assert command["op"] == "subscribe" and command["channel"] == "broadcast"
    return command


def ok(command: dict[str, Any], offset: int = 7) -> str:
    reply = {"id": command["id"], "ok": True, "offset": offset, "epoch": "e1", "recovered": True}
    return orjson.dumps(reply).decode()


def refusal(command: dict[str, Any], temporary: bool, retry_after: float | None) -> str:
    error: dict[str, Any] = {"code": "unavailable", "message": "busy", "temporary": temporary}
    if retry_after is not None:
        error["retry_after"] = retry_after
    return orjson.dumps({"id": command["id"], "ok": False, "error": error}).decode()


def client() -> StormClient:
    return StormClient("token", random.Random(1))


async def test_a_temporary_subscribe_refusal_is_retried_after_retry_after() -> None:
    sent_at: list[float] = []

    async def script(ws: ServerConnection, n: int) -> None:
        loop = asyncio.get_running_loop()
        command = await ready_then_subscribe(ws)
        sent_at.append(loop.time())
        await ws.send(refusal(command, temporary=True, retry_after=0.2))
        command = orjson.loads(await ws.recv())  # the same socket, asked again
        sent_at.append(loop.time())
        await ws.send(ok(command))
        await ws.send(
            orjson.dumps(
                {
                    "event": "notification",
                    "channel": "broadcast",
                    "seq": 0,
                    "offset": 8,
                    "epoch": "e1",
                }
            ).decode()
        )
        await ws.wait_closed()

    async with fake_node(script) as url:
        c = client()
        ws = await c.open(url)
        await asyncio.sleep(0.1)
        assert c.retries == 1 and c.causes == {"subscribe unavailable": 1}
        assert sent_at[1] - sent_at[0] >= 0.2  # waited retry_after (× 1–1.5 jitter)
        assert c.have == 1 and c.position == {"offset": 8, "epoch": "e1"}
        await ws.close()


async def test_a_final_subscribe_refusal_fails_the_socket() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(refusal(await ready_then_subscribe(ws), temporary=False, retry_after=None))
        await ws.wait_closed()

    async with fake_node(script) as url:
        c = client()
        with pytest.raises(Refused):
            await c.open(url)
        assert c.retries == 0


async def test_an_unauthorised_close_is_counted_and_not_retried() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.close(4003, "unauthorized")

    async with fake_node(script) as url:
        c = client()
        with pytest.raises(Unauthorised):
            await c.open(url)
        assert c.unauthorised == 1 and c.retries == 0


async def test_a_silent_node_is_retried_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storm, "REPLY_TIMEOUT", 0.2)
    monkeypatch.setattr(storm, "BACKOFF", (0.01, 2.0, 0.05))

    async def script(ws: ServerConnection, n: int) -> None:
        command = await ready_then_subscribe(ws)
        if n >= 3:
            await ws.send(ok(command))
        await ws.wait_closed()

    async with fake_node(script) as url:
        c = client()
        ws = await asyncio.wait_for(c.open(url), 5)
        assert c.retries == 2
        assert c.causes == {"stuck: waiting for the subscribe reply": 2}
        await ws.close()


async def test_resubscribes_closed_4008_every_time_give_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(storm, "BACKOFF", (0.01, 2.0, 0.05))

    async def script(ws: ServerConnection, n: int) -> None:
        command = await ready_then_subscribe(ws)
        if "since" in command:  # the node's answer to a replay longer than its queue
            await ws.close(4008, "slow consumer")
            return
        await ws.send(ok(command))
        await ws.wait_closed()

    async with fake_node(script) as url:
        c = client()
        ws = await c.open(url)
        await ws.close()
        with pytest.raises(Refused):
            await asyncio.wait_for(c.open(url), 5)
        assert c.retries == storm.MAX_OVERFLOWS
        assert c.state == "gave up: 4008 on every resubscribe"


@pytest.mark.timeout(300)
async def test_storm_scenario_runs_self_contained(tmp_path: Path) -> None:
    """``--smoke`` storm on the bench's own nodes (it seeds a database and kills a node):
    handshake rounds beside a peer with their CPU figures, then the storm with nothing lost."""
    import sys

    import asyncpg

    from tests.conftest import PG_ADMIN_URL, REDIS_URL

    database = f"synthia_bench_storm_{secrets.token_hex(4)}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench",
        "--smoke",
        "--quiet",
        "--name",
        "storm",
        "--scenarios",
        "storm",
        "--targets",
        "synthia,websockets",
        "--pg-admin",
        PG_ADMIN_URL,
        "--redis",
        REDIS_URL,
        "--database",
        database,
        "--results-dir",
        str(tmp_path),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await process.communicate()
    finally:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()
    assert process.returncode == 0, output.decode(errors="replace")[-4000:]
    result = orjson.loads((tmp_path / "raw" / "storm.json").read_bytes())["scenarios"]["storm"]
    for hs in (result["handshakes"], result["handshake_peers"]["websockets"]):
        assert hs["errors"] == 0 and hs["per_s_median"] > 0, hs
        assert hs["server_cpu_ms_per_handshake"] is not None, hs
    assert result["handshake_peers"]["websockets"]["per_s_ratio_to_synthia"] is not None
    st = result["storm"]
    assert st["reconnected"] == st["sockets"] == 20, st
    assert st["lost"] == st["unauthorised"] == st["not_reconnected"] == 0, st
    assert st["seconds_to_all_reconnected"] is not None, st
    summary = (tmp_path / "storm.json").read_text()
    assert "handshake_peers" in summary and "error_samples" not in summary
