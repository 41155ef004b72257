"""The fake Gemini of the test suite (tests/fake_gemini.py), with a fixed first-chunk latency.

Every call answers a valid facial result, streamed in 4 chunks: the first after
``first_chunk_latency`` seconds, the rest right behind it. It records when each request
arrived and when its first chunk was written, on the bench's clock, so the analysis scenario
can split a client-side time into model time and server overhead.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tests.fake_gemini import FakeGemini, Stream

FACIAL_RESULT = {
    "face_shape": "oval",
    "skin": {"tone": "light", "undertone": "warm", "hex": "#E0AC8C"},
    "recommendations": [
        {"category": "hairstyle", "title": "Soft layers", "detail": "Frame the cheekbones."},
        {"category": "eyewear", "title": "Round frames", "detail": "Balance the jawline."},
    ],
    "summary": "Balanced proportions.",
}


class TimedFakeGemini(FakeGemini):
    def __init__(self, first_chunk_latency: float) -> None:
        super().__init__()
        self.first_chunk_latency = first_chunk_latency
        self.default = Stream(json.dumps(FACIAL_RESULT), pieces=4)
        self.request_times: list[float] = []
        self.first_chunk_times: list[float] = []

    async def _respond(self, writer: asyncio.StreamWriter, b: Any, streaming: bool) -> None:
        self.request_times.append(time.time())
        await asyncio.sleep(self.first_chunk_latency)
        self.first_chunk_times.append(time.time())
        await super()._respond(writer, b, streaming)


    async def start(self, port: int = 0) -> None:  # a fixed port for --node runs
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]


async def start_fake_model(first_chunk_latency: float, port: int = 0) -> TimedFakeGemini:
    server = TimedFakeGemini(first_chunk_latency)
    await server.start(port)
    return server
