"""A fake Gemini API on 127.0.0.1 that the REAL google-genai SDK talks to over HTTP.

It implements ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` and
``:generateContent``. Each call consumes the next behaviour of the script (``push``), or
``default`` when the script is empty:

* ``Stream(text, pieces)``  — 200, the text split into ``pieces`` SSE chunks, usage on the last;
* ``Status(code)``          — an error status with Google's JSON error body;
* ``Stall(text, after)``    — 200, ``after`` chunks of the text, then silence until released
  (with ``resume=event``: until that event is set, then the rest of the text, finished);
* ``Safety(where)``         — a safety block: ``finishReason: SAFETY`` on a candidate
  (``where="candidate"``) or ``promptFeedback.blockReason`` with no candidates (``"prompt"``).

A malformed model answer is just ``Stream("not json")``. ``calls`` counts every request and
``requests`` keeps their JSON bodies, so tests can prove a cache hit made no model call.
It is a tiny hand-written HTTP/1.1 server (``Connection: close`` on every response) so that
a stall is a real stall on a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stream:
    text: str
    pieces: int = 4
    usage: dict[str, int] = field(
        default_factory=lambda: {
            "promptTokenCount": 11,
            "candidatesTokenCount": 22,
            "totalTokenCount": 33,
        }
    )


@dataclass
class Status:
    code: int


@dataclass
class Stall:
    text: str
    after: int = 1  # chunks sent before going silent
    pieces: int = 4
    resume: asyncio.Event | None = None  # set it to send the rest and finish normally


@dataclass
class Safety:
    where: str = "candidate"  # candidate | prompt


Behaviour = Stream | Status | Stall | Safety

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_STATUS_NAMES = {
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
}


def split(text: str, pieces: int) -> list[str]:
    """``text`` cut into ``pieces`` non-empty slices (fewer only when the text is shorter)."""
    pieces = max(1, min(pieces, len(text)))
    step, extra = divmod(len(text), pieces)
    out, start = [], 0
    for i in range(pieces):
        end = start + step + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out


def _chunk(
    text: str, finish: str | None = None, usage: dict[str, int] | None = None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": [{"text": text}]},
        "index": 0,
    }
    if finish:
        candidate["finishReason"] = finish
    body: dict[str, Any] = {"candidates": [candidate], "modelVersion": "fake-gemini"}
    if usage:
        body["usageMetadata"] = usage
    return body


class FakeGemini:
    def __init__(self) -> None:
        self.script: deque[Behaviour] = deque()
        self.default: Behaviour = Status(500)
        self.calls = 0
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.api_keys: list[str | None] = []
        self._release = asyncio.Event()  # ends every stall (set at stop)
        self._server: asyncio.base_events.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def push(self, *behaviours: Behaviour) -> None:
        self.script.extend(behaviours)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    # -- HTTP ---------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away (e.g. it hit its idle timeout): expected
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode("latin-1").strip()
        if not request_line:
            return
        method, target, _ = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            line = (await reader.readline()).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        path = target.split("?", 1)[0]
        if method != "POST" or not path.startswith("/v1beta/models/"):
            await self._json(
                writer,
                404,
                {"error": {"code": 404, "message": "no such route", "status": "NOT_FOUND"}},
            )
            return
        self.calls += 1
        self.paths.append(target)
        self.api_keys.append(headers.get("x-goog-api-key"))
        self.requests.append(json.loads(body or b"{}"))
        behaviour = self.script.popleft() if self.script else self.default
        streaming = path.endswith(":streamGenerateContent")
        await self._respond(writer, behaviour, streaming)

    async def _respond(self, writer: asyncio.StreamWriter, b: Behaviour, streaming: bool) -> None:
        if isinstance(b, Status):
            status = _STATUS_NAMES.get(b.code, "UNKNOWN")
            await self._json(
                writer,
                b.code,
                {"error": {"code": b.code, "message": f"fake {status}", "status": status}},
            )
            return
        if isinstance(b, Safety):
            if b.where == "prompt":
                chunks = [
                    {"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": "fake-gemini"}
                ]
            else:
                blocked = _chunk("", finish="SAFETY")
                blocked["candidates"] = [
                    {**blocked["candidates"][0], "content": {"role": "model", "parts": []}}
                ]
                chunks = [blocked]
            await self._send(writer, chunks, streaming)
            return
        if isinstance(b, Stream):
            texts = split(b.text, b.pieces)
            chunks = [_chunk(t) for t in texts]
            chunks[-1] = _chunk(texts[-1], finish="STOP", usage=b.usage)
            await self._send(writer, chunks, streaming)
            return
        # Stall: send the first chunks, then hold the connection open and silent.
        texts = split(b.text, b.pieces)
        await self._head(writer, 200, "text/event-stream")
        for text in texts[: b.after]:
            writer.write(f"data: {json.dumps(_chunk(text))}\r\n\r\n".encode())
            await writer.drain()
        if b.resume is None:
            await self._release.wait()
            return
        waits = [
            asyncio.ensure_future(b.resume.wait()),
            asyncio.ensure_future(self._release.wait()),
        ]
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in pending:
            waiting.cancel()
        rest = texts[b.after :]
        for i, text in enumerate(rest):
            last = i == len(rest) - 1
            chunk = _chunk(text, finish="STOP", usage=Stream("").usage) if last else _chunk(text)
            writer.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
            await writer.drain()

    async def _send(
        self, writer: asyncio.StreamWriter, chunks: list[dict[str, Any]], streaming: bool
    ) -> None:
        if not streaming:
            merged = chunks[-1]
            if "candidates" in merged and len(chunks) > 1:
                text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
                merged = {
                    **merged,
                    "candidates": [
                        {
                            **merged["candidates"][0],
                            "content": {"role": "model", "parts": [{"text": text}]},
                        }
                    ],
                }
            await self._json(writer, 200, merged)
            return
        await self._head(writer, 200, "text/event-stream")
        for chunk in chunks:
            writer.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
            await writer.drain()
            await asyncio.sleep(0)  # separate writes, so the client really sees chunks

    @staticmethod
    async def _head(
        writer: asyncio.StreamWriter, status: int, content_type: str, length: int | None = None
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            f"Content-Type: {content_type}",
            "Connection: close",
        ]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()

    async def _json(self, writer: asyncio.StreamWriter, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        await self._head(writer, status, "application/json", len(data))
        writer.write(data)
        await writer.drain()


@contextlib.asynccontextmanager
async def fake_gemini() -> Any:
    server = FakeGemini()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
