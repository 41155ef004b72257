"""A small synthia.v1 test client over real sockets (the `websockets` library)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest_helpers import unique_email


class Client:
    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []  # events seen while waiting for replies

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.conn.recv(), timeout)
        frame: dict[str, Any] = orjson.loads(raw)
        return frame

    async def send_raw(self, data: str | bytes) -> None:
        await self.conn.send(data)

    async def command(self, op: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        """Send a command and return its reply; events that arrive first go to ``events``."""
        command_id = next(self._ids)
        await self.conn.send(orjson.dumps({"id": command_id, "op": op, **fields}).decode())
        return await self.reply(command_id, timeout)

    async def reply(self, command_id: int | None, timeout: float = 5.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - loop.time()))
            if "event" in frame:
                self.events.append(frame)
                continue
            if frame.get("id") == command_id:
                return frame
            raise AssertionError(f"unexpected frame {frame}")

    async def event(
        self, name: str | None = None, timeout: float = 5.0, **match: Any
    ) -> dict[str, Any]:
        """Next event named ``name`` (from the backlog first) whose fields match ``match``."""

        def ok(e: dict[str, Any]) -> bool:
            return (name is None or e.get("event") == name) and all(
                e.get(k) == v for k, v in match.items()
            )

        for i, e in enumerate(self.events):
            if ok(e):
                return self.events.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - loop.time()))
            if "event" in frame and ok(frame):
                return frame
            self.events.append(frame)

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        try:
            async with asyncio.timeout(timeout):
                async for _ in self.conn:
                    pass
        except Exception:  # noqa: BLE001 - closed abnormally
            pass
        rcvd = self.conn.protocol.close_rcvd
        return rcvd.code if rcvd is not None else None


@asynccontextmanager
async def ws_session(url: str, token: str, **kwargs: Any) -> AsyncIterator[Client]:
    """Connect the browser way (token in the subprotocol list) and read session.ready."""
    async with connect(url, subprotocols=["synthia.v1", f"bearer.{token}"], **kwargs) as conn:  # type: ignore[list-item]
        client = Client(conn)
        ready = await client.recv()
        assert ready["event"] == "session.ready", ready
        client.ready = ready  # type: ignore[attr-defined]
        yield client


async def register(
    http_base: str, email: str | None = None, password: str = "correct horse battery"
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=http_base) as http:
        r = await http.post(
            "/api/v1/auth/register", json={"email": email or unique_email(), "password": password}
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body
