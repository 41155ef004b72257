"""Helpers for the analysis pipeline tests: a started runtime, users, images, uploads, events.

The runtime is the real one (``start_runtime``: PostgreSQL or SQLite, Redis or memory, the
broker, the analysis service); events are read back from the broker's channel history, so
nothing of our own infrastructure is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import struct
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import orjson
import pytest
from PIL import Image
from skimage import data as skdata

from synthia_rt.analysis.service import AnalysisService
from synthia_rt.app import start_runtime, stop_runtime
from synthia_rt.auth.principal import Principal
from synthia_rt.runtime import Runtime
from synthia_rt.settings import Settings
from synthia_rt.store import analyses as store
from synthia_rt.store import users
from tests.conftest_helpers import unique_email
from tests.fake_gemini import FakeGemini

FACIAL_RESULT: dict[str, Any] = {
    "face_shape": "heart",
    "skin": {"tone": "light", "undertone": "cool", "hex": "#E0B8A0"},
    "recommendations": [
        {
            "category": "hairstyle",
            "title": "Chin-length bob",
            "detail": "Balances a wider forehead.",
        },
        {"category": "eyewear", "title": "Aviators", "detail": "Bottom-heavy frames."},
        {"category": "colors", "title": "Berry tones", "detail": "Blue-based colours flatter."},
    ],
    "summary": "A heart-shaped face with light, cool skin.",
    "confidence": {
        "face_shape": {
            "value": 0.82,
            "reason": "The forehead is clearly wider than the narrow chin.",
        },
        "tone": {"value": 0.74, "reason": "Even daylight on both cheeks."},
        "undertone": {"value": 0.58, "reason": "Pinkish cheeks, but the light is slightly warm."},
    },
    "features": {
        "eye_shape": "almond",
        "eye_spacing": "balanced",
        "brow_shape": "soft_arch",
        "lip_fullness": "medium",
        "forehead": "wide",
        "jaw": "narrow",
        "forehead_ratio": 1.02,
        "jaw_ratio": 0.74,
        "length_ratio": 1.38,
    },
}
CHROMATIC_RESULT: dict[str, Any] = {
    "season": "summer",
    "subseason": "soft_summer",
    "undertone": "cool",
    "contrast": "low",
    "palette": [
        {"name": "Dusty Rose", "hex": "#DCAE96"},
        {"name": "Sage", "hex": "#9CAF88"},
        {"name": "Slate Blue", "hex": "#6A7BA2"},
    ],
    "avoid": [{"name": "Black", "hex": "#000000"}],
    "summary": "Soft and cool.",
    "recommendations": [
        {"category": "clothing", "title": "Dusty blues", "detail": "Slate blue and soft grey."},
        {"category": "makeup", "title": "Rose and mauve", "detail": "Muted rose lips."},
        {"category": "hair_color", "title": "Ash brown", "detail": "Avoid brassy gold."},
        {"category": "jewelry", "title": "Silver", "detail": "Silver and white gold."},
    ],
    "confidence": {
        "season": {"value": 0.7, "reason": "Most answers point to soft, cool colouring."},
        "undertone": {"value": 0.8, "reason": "Blue veins and silver jewellery."},
        "contrast": {"value": 0.9, "reason": "You said your contrast is low."},
    },
}
TERMINAL = ("done", "failed", "cancelled")


@contextlib.asynccontextmanager
async def analysis_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime(settings)
    await start_runtime(runtime)
    try:
        yield runtime
    finally:
        await stop_runtime(runtime)


def service(runtime: Runtime) -> AnalysisService:
    assert runtime.analysis is not None
    return runtime.analysis


async def new_user() -> Principal:
    record = await users.create(unique_email(), "not-a-real-hash")
    return Principal(record.id, "user", "test-jti", time.time() + 900)


def encode(array: np.ndarray[Any, Any], fmt: str = "JPEG", **params: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt, **params)
    return out.getvalue()


def astronaut_jpeg() -> bytes:
    return encode(skdata.astronaut(), "JPEG", quality=90)


def coffee_jpeg() -> bytes:
    return encode(skdata.coffee(), "JPEG", quality=90)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png_bomb(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose header declares ``width`` × ``height`` pixels."""
    raw = encode(np.zeros((1, 1), np.uint8), "PNG")
    ihdr = struct.pack(">II", width, height) + raw[24:29]  # keep depth, colour type, etc.
    chunk = b"IHDR" + ihdr
    return raw[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + raw[33:]


async def start(
    svc: AnalysisService, user: Principal, data: bytes, **overrides: Any
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "kind": "facial",
        "content_type": "image/jpeg",
        "size": len(data),
        "sha256": sha(data),
        "file_id": None,
    }
    fields.update(overrides)
    return await svc.start_analysis(user, **fields)


async def send(
    svc: AnalysisService,
    user: Principal,
    analysis_id: str,
    data: bytes,
    start_at: int = 0,
    chunk: int | None = None,
) -> None:
    """Upload ``data[start_at:]`` in chunks of ``chunk`` bytes (default: max_chunk_bytes)."""
    import uuid

    size = chunk or svc.settings.max_chunk_bytes
    offset = start_at
    while offset < len(data):
        piece = data[offset : offset + size]
        progress = await svc.upload_chunk(user, uuid.UUID(analysis_id), offset, piece)
        offset += len(piece)
        assert progress == {"analysis_id": analysis_id, "offset": offset, "size": progress["size"]}


async def wait_terminal(analysis_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The row once it is done/failed/cancelled (bounded wait, not a timing assertion)."""
    async with asyncio.timeout(timeout):
        while True:
            row = await store.get(analysis_id)
            if row is not None and row["status"] in TERMINAL:
                # The events follow the commit; give the runner the moment it needs to publish.
                await _settled(analysis_id)
                return row
            await asyncio.sleep(0.05)


async def _settled(analysis_id: str) -> None:
    """Wait for this process' runner of the analysis (if any) to finish publishing."""
    for task in asyncio.all_tasks():
        if task.get_name() == f"analysis-{analysis_id}":
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def events(runtime: Runtime, channel: str) -> list[dict[str, Any]]:
    history = await runtime.need_broker().history(channel, None)
    return [orjson.loads(e.frame) for e in history.events]


def names(evs: list[dict[str, Any]]) -> list[str]:
    return [
        e["event"] if e["event"] != "analysis.progress" else f"progress:{e['stage']}" for e in evs
    ]


def gemini_settings(settings: Settings, fake: FakeGemini, **overrides: Any) -> Settings:
    base = {
        "analyzer": "gemini",
        "gemini_api_key": "test-key-not-secret",
        "gemini_base_url": fake.base_url,
        "gemini_backoff": 0.01,
        "gemini_retries": 2,
        "gemini_timeout": 5.0,
    }
    return settings.with_(**{**base, **overrides})


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    server = FakeGemini()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
