"""Record real session transcripts into docs/transcripts.md.

    .venv/bin/python docs/make_transcripts.py

Starts the service on the embedded default (in this process, on a free port, in a temporary
directory), registers a user, then runs a facial analysis (scikit-image's astronaut photo) and the
colour quiz over a real socket, writing every frame in order. Long values are shortened.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import socket
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from PIL import Image
from skimage import data as skdata
from websockets.asyncio.client import connect

from synthia_rt.app import create_app
from synthia_rt.realtime.protocol import encode_chunk
from synthia_rt.settings import Settings

OUT = Path(__file__).with_name("transcripts.md")


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 72:
        return value[:40] + "…"
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v) for v in value[:4]] + (["…"] if len(value) > 4 else [])
    return value


class Recorder:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lines: list[str] = []
        self.next_id = 1

    def log(self, arrow: str, frame: Any) -> None:
        text = frame if isinstance(frame, str) else orjson.dumps(_short(frame)).decode()
        self.lines.append(f"{arrow} {text}")

    async def send(self, op: str, **fields: Any) -> dict[str, Any]:
        command = {"id": self.next_id, "op": op, **fields}
        self.next_id += 1
        self.log("→", command)
        await self.conn.send(orjson.dumps(command).decode())
        while True:
            frame = await self.recv()
            if frame.get("id") == command["id"]:
                return frame

    async def recv(self) -> dict[str, Any]:
        frame: dict[str, Any] = orjson.loads(await asyncio.wait_for(self.conn.recv(), 30))
        self.log("←", frame)
        return frame

    async def until(self, *names: str) -> dict[str, Any]:
        while True:
            frame = await self.recv()
            if frame.get("event") in names:
                return frame


async def record(base: str) -> tuple[list[str], list[str]]:
    async with httpx.AsyncClient(base_url=f"http://{base}") as http:
        r = await http.post(
            "/api/v1/auth/register",
            json={"email": "ada@example.com", "password": "correct horse battery"},
        )
        token = r.json()["access_token"]
    buf = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(buf, "JPEG", quality=90)
    image = buf.getvalue()
    chunk = 32 * 1024

    async with connect(f"ws://{base}/ws", subprotocols=["synthia.v1", f"bearer.{token}"]) as conn:  # type: ignore[list-item]
        facial = Recorder(conn)
        facial.lines.append(
            "(handshake) GET /ws  Sec-WebSocket-Protocol: synthia.v1, bearer.<access token>"
        )
        facial.lines.append(
            "(handshake) 101 Switching Protocols  Sec-WebSocket-Protocol: synthia.v1"
        )
        await facial.recv()
        await facial.send("subscribe", channel="user:" + "x")  # someone else's channel: forbidden
        started = await facial.send(
            "analysis.start",
            kind="facial",
            content_type="image/jpeg",
            size=len(image),
            sha256=hashlib.sha256(image).hexdigest(),
        )
        aid = uuid.UUID(started["analysis_id"])
        for offset in range(0, len(image), chunk):
            payload = image[offset : offset + chunk]
            facial.lines.append(
                f"→ <binary {24 + len(payload)} bytes: id={aid} offset={offset} payload={len(payload)}>"
            )
            await conn.send(encode_chunk(aid, offset, payload))
            await facial.until("upload.progress")
        await facial.until("analysis.result", "analysis.error")
        await facial.send(
            "analysis.start",
            kind="facial",
            content_type="image/jpeg",
            size=len(image),
            sha256=hashlib.sha256(image).hexdigest(),
        )
        await facial.until("analysis.result")

    async with connect(f"ws://{base}/ws", subprotocols=["synthia.v1", f"bearer.{token}"]) as conn:  # type: ignore[list-item]
        quiz = Recorder(conn)
        await quiz.recv()
        started = await quiz.send("quiz.start", locale="en")
        for question in started["questions"]:
            await quiz.send(
                "quiz.answer",
                quiz_id=started["quiz_id"],
                question=question["id"],
                answer=question["options"][0]["id"],
            )
            await quiz.until("quiz.estimate")
        await quiz.send("quiz.submit", quiz_id=started["quiz_id"])
        await quiz.until("analysis.result", "analysis.error")
    return facial.lines, quiz.lines


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        app = create_app(Settings(data_dir=tmp, log_json=False, log_level="WARNING"))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        task = asyncio.ensure_future(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.05)
        try:
            facial, quiz = await record(f"127.0.0.1:{port}")
        finally:
            server.should_exit = True
            await task
    OUT.write_text(
        "# Session transcripts\n\n"
        "Recorded from a real socket by `docs/make_transcripts.py` (embedded default, local analyzer).\n"
        "`→` client to server, `←` server to client; long strings and lists are shortened (`…`).\n\n"
        "## Facial analysis (with a refused subscribe, the upload, and a cache hit)\n\n```\n"
        + "\n".join(facial)
        + "\n```\n\n## Colour quiz\n\n```\n"
        + "\n".join(quiz)
        + "\n```\n"
    )
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
