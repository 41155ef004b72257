"""synthia.v1 request/reply over the lean client, for the scenarios that send commands.

Events that arrive while waiting for something else are kept in a backlog, in order, so a
scenario can ask "the next ``upload.progress``" or "the reply to command 7" without losing any.
Every frame is stamped with its arrival time (``_t``) before it is parsed further.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.client import WsClient
from bench.targets import SYNTHIA, open_socket

Frame = dict[str, Any]


class Session:
    def __init__(self, ws: WsClient, ready: Frame) -> None:
        self.ws = ws
        self.ready = ready
        self.node = str(ready.get("node"))
        self.backlog: list[Frame] = []
        self._ids = itertools.count(1)

    @classmethod
    async def open(cls, http_url: str, token: str) -> Session:
        opened = await open_socket(SYNTHIA, http_url, token)
        return cls(opened.socket, opened.ready)

    async def _recv(self, timeout: float) -> Frame:
        payload, is_text = await self.ws.recv(timeout)
        now = time.time()
        if not is_text:
            raise RuntimeError("unexpected binary frame from the server")
        frame: Frame = orjson.loads(payload)
        frame["_t"] = now
        return frame

    def send(self, op: str, **fields: Any) -> tuple[int, float]:
        """Send a command without waiting; returns its id and send time."""
        command_id = next(self._ids)
        sent = time.time()
        self.ws.send_text(orjson.dumps({"id": command_id, "op": op, **fields}))
        return command_id, sent

    async def reply(self, command_id: int, timeout: float = 30.0) -> Frame:
        return await self.wait(lambda f: f.get("id") == command_id and "event" not in f, timeout)

    async def command(self, op: str, timeout: float = 30.0, **fields: Any) -> Frame:
        command_id, _ = self.send(op, **fields)
        reply = await self.reply(command_id, timeout)
        if not reply.get("ok"):
            raise CommandFailed(op, reply.get("error", {}))
        return reply

    async def wait(self, match: Callable[[Frame], bool], timeout: float = 30.0) -> Frame:
        """The first frame (backlog first) that ``match``es; later frames stay in the backlog."""
        for i, frame in enumerate(self.backlog):
            if match(frame):
                return self.backlog.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self._recv(max(0.001, deadline - loop.time()))
            if match(frame):
                return frame
            self.backlog.append(frame)

    async def event(self, name: str, timeout: float = 30.0, **fields: Any) -> Frame:
        return await self.wait(
            lambda f: f.get("event") == name and all(f.get(k) == v for k, v in fields.items()),
            timeout,
        )

    def drop_backlog(self) -> None:
        self.backlog.clear()

    async def close(self) -> None:
        await self.ws.close()


class CommandFailed(RuntimeError):
    def __init__(self, op: str, error: dict[str, Any]) -> None:
        super().__init__(f"{op} failed: {error.get('code')}: {error.get('message')}")
        self.op = op
        self.error = error
