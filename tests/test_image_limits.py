"""Issue 9: bounded image decoding and upload quotas, through the real decoders, app and Redis."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile

from synthia_rt import rest
from synthia_rt.analysis import local
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.kv.redis import RedisKV
from synthia_rt.settings import Settings
from synthia_rt.uploads import validate as validate_module
from synthia_rt.uploads.validate import Decoder, validate_image
from tests.analysis_support import astronaut_jpeg, encode, sha
from tests.conftest import running_app
from tests.redis_server import private_redis
from tests.rest_helpers import API, bearer, register

REPO = Path(__file__).resolve().parents[1]


def solid_webp(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 150, 120)).save(out, "WEBP", quality=80)
    return out.getvalue()


def rgba_png_bomb(width: int, height: int) -> bytes:
    """A tiny well-formed PNG whose header declares an 8-bit RGBA ``width`` × ``height`` canvas."""
    raw = encode(np.zeros((1, 1, 4), np.uint8), "PNG")
    ihdr = struct.pack(">II", width, height) + raw[24:29]
    chunk = b"IHDR" + ihdr
    return raw[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + raw[33:]


class DecodeSpy:
    """Records every real decode (Pillow's load and OpenCV's imdecode) and the size it ran at."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[tuple[int, int]] = []
        load = ImageFile.ImageFile.load
        imdecode = validate_module.cv2.imdecode

        def spy_load(img: ImageFile.ImageFile) -> Any:
            self.sizes.append(img.size)
            return load(img)

        def spy_imdecode(buf: Any, flags: int) -> Any:
            self.sizes.append((-1, -1))
            return imdecode(buf, flags)

        monkeypatch.setattr(ImageFile.ImageFile, "load", spy_load)
        monkeypatch.setattr(validate_module.cv2, "imdecode", spy_imdecode)


def limits(**overrides: Any) -> dict[str, Any]:
    s = Settings()
    return {"max_pixels": s.max_image_pixels, "max_bytes": s.max_image_bytes, **overrides}


# -- decoding -------------------------------------------------------------------------------


def test_the_issue_webp_is_refused_from_its_header_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 70 KB 6300×6300 WEBP of issue 9: above the default cap, refused without decoding."""
    assert Settings().max_image_pixels <= 24_000_000
    bomb = solid_webp(6300, 6300)
    assert len(bomb) < 200_000
    spy = DecodeSpy(monkeypatch)
    with pytest.raises(AppError) as info:
        validate_image(bomb, **limits())
    assert info.value.code == ErrorCode.INVALID_IMAGE
    assert spy.sizes == []


def test_decode_budget_is_checked_from_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    """4500×4500 RGBA = 81 MB decoded: within the pixel cap, over a 50 MB decode budget."""
    spy = DecodeSpy(monkeypatch)
    with pytest.raises(AppError) as info:
        validate_image(rgba_png_bomb(4500, 4500), **limits(max_decode_bytes=50_000_000))
    assert info.value.code == ErrorCode.TOO_LARGE
    assert spy.sizes == []


def test_jpeg_is_decoded_at_reduced_scale_to_what_the_analyzers_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    side = Settings().image_max_side
    assert side >= local.MAX_SIDE  # the local analyzer works at ≤ 1024 px; Gemini gets this
    ramp = np.linspace(0, 255, 4000, dtype=np.float32).astype(np.uint8)
    pixels = np.dstack([np.tile(ramp, (3000, 1))] * 3)
    data = encode(pixels, "JPEG", quality=80)
    spy = DecodeSpy(monkeypatch)
    image = validate_image(data, **limits())
    assert max(image.width, image.height) == side and (image.width, image.height) == (
        side,
        side * 3 // 4,
    )
    assert spy.sizes[0] == (2000, 1500)  # libjpeg decoded at 1/2 scale: no 4000×3000 canvas
    assert (4000, 3000) not in spy.sizes
    with Image.open(io.BytesIO(image.data)) as stored:
        assert stored.size == (image.width, image.height)


_PEAK_SCRIPT = """
import json, sys
from pathlib import Path
from synthia_rt.uploads.validate import validate_image

def status():
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) * 1024
    return out

data = Path(sys.argv[1]).read_bytes()
validate_image(Path(sys.argv[2]).read_bytes(), max_pixels=10**9, max_bytes=10**8)  # warm up
Path("/proc/self/clear_refs").write_text("5")
before = status()["VmRSS"]
image = validate_image(data, max_pixels=10**9, max_bytes=10**8)
print(json.dumps({"growth": status()["VmHWM"] - before, "size": [image.width, image.height]}))
"""


def test_a_huge_webp_decodes_in_bounded_memory(tmp_path: Path) -> None:
    """Even above the cap (cap raised), the 40 Mpx WEBP costs one canvas, not the old ~1 GB."""
    bomb, warm = tmp_path / "bomb.webp", tmp_path / "warm.webp"
    bomb.write_bytes(solid_webp(6300, 6300))
    warm.write_bytes(solid_webp(64, 64))
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(bomb), str(warm)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(done.stdout)
    assert result["growth"] < 400 * 1024 * 1024, result  # one RGB canvas is 119 MB; old code ~1 GB
    assert max(result["size"]) <= Settings().image_max_side


async def test_decodes_per_process_are_bounded_by_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inside, most, release = 0, 0, threading.Event()
    lock, two_in, loop = threading.Lock(), asyncio.Event(), asyncio.get_running_loop()
    real = validate_module.validate_image

    def gated(data: bytes, **kwargs: Any) -> Any:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
            if inside == 2:
                loop.call_soon_threadsafe(two_in.set)
        try:
            release.wait(30)
            return real(data, **kwargs)
        finally:
            with lock:
                inside -= 1

    monkeypatch.setattr(validate_module, "validate_image", gated)
    decoder = Decoder(Settings(image_decode_concurrency=2))
    data = astronaut_jpeg()
    tasks = [asyncio.ensure_future(decoder.validate(data)) for _ in range(5)]
    async with asyncio.timeout(30):
        await two_in.wait()
    for _ in range(20):  # give the other three every chance to start (they must not)
        await asyncio.sleep(0.01)
    assert (inside, most) == (2, 2)
    release.set()
    results = await asyncio.gather(*tasks)
    assert most == 2 and all(r.format == "JPEG" for r in results)


# -- REST upload: slots, rate, byte quotas ---------------------------------------------------


def form(data: bytes) -> dict[str, Any]:
    return {"files": {"image": ("photo.jpg", data, "image/jpeg")}}


@pytest.fixture
def with_files(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tuple(m for m in ("files", "analyze") if m not in rest.MODULES)
    monkeypatch.setattr(rest, "MODULES", (*rest.MODULES, *missing))


async def _user(client: Any) -> tuple[Principal, dict[str, str]]:
    body = await register(client)
    principal = Principal(body["user"]["id"], "user", "test-jti", time.time() + 900)
    return principal, bearer(body["access_token"])


async def _start_upload(app: Any, user: Principal, size: int) -> str:
    reply = await app.state.runtime.analysis.start_analysis(
        user,
        kind="facial",
        content_type="image/jpeg",
        size=size,
        sha256=sha(str(size).encode() + user.jti.encode()),
        file_id=None,
    )
    return str(reply["analysis_id"])


@pytest.mark.usefixtures("with_files")
async def test_rest_upload_takes_an_analysis_slot(settings_for: Any) -> None:
    async with running_app(settings_for("redis", max_analyses_per_user=2)) as (app, client):
        user, auth = await _user(client)
        first = await _start_upload(app, user, 1000)
        await _start_upload(app, user, 1001)  # two socket uploads in progress: both slots taken
        r = await client.post(f"{API}/files/upload", headers=auth, **form(astronaut_jpeg()))
        assert (r.status_code, r.json()["error"]["code"]) == (429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        await app.state.runtime.analysis.cancel(user, first)
        r = await client.post(f"{API}/files/upload", headers=auth, **form(astronaut_jpeg()))
        assert r.status_code == 201, r.text
        assert await app.state.runtime.analysis.slots.active(user.user_id) == 1  # the upload let go


@pytest.mark.usefixtures("with_files")
async def test_rest_upload_is_rate_limited_per_user(settings_for: Any) -> None:
    async with running_app(settings_for("redis", upload_rate_limit="2/minute")) as (_, client):
        _, auth = await _user(client)
        _, other = await _user(client)
        for _ in range(2):
            assert (
                await client.post(f"{API}/files/upload", headers=auth, **form(astronaut_jpeg()))
            ).status_code == 201
        r = await client.post(f"{API}/files/upload", headers=auth, **form(astronaut_jpeg()))
        assert (r.status_code, r.json()["error"]["code"]) == (429, "rate_limited")
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert (
            await client.post(f"{API}/files/upload", headers=other, **form(astronaut_jpeg()))
        ).status_code == 201


@pytest.mark.usefixtures("with_files")
async def test_upload_bytes_a_user_holds_are_capped(settings_for: Any) -> None:
    async with running_app(
        settings_for("redis", upload_user_bytes=300_000, max_analyses_per_user=5)
    ) as (app, client):
        svc = app.state.runtime.analysis
        user, auth = await _user(client)
        first = await _start_upload(app, user, 200_000)
        with pytest.raises(AppError) as info:
            await _start_upload(app, user, 200_000)  # 400 kB would be held
        assert info.value.code == ErrorCode.RATE_LIMITED and info.value.retry_after
        assert await svc.uploads.user_bytes.held(user.user_id) == 200_000
        # The REST file (cleaned bytes) counts against the same budget.
        big = encode(np.random.default_rng(1).integers(0, 255, (1200, 1200, 3), np.uint8), "PNG")
        r = await client.post(f"{API}/files/upload", headers=auth, **form(big))
        assert (r.status_code, r.json()["error"]["code"]) == (429, "rate_limited")
        await svc.cancel(user, first)  # refunded
        assert await svc.uploads.user_bytes.held(user.user_id) == 0
        await _start_upload(app, user, 200_000)


@pytest.mark.usefixtures("with_files")
async def test_upload_bytes_in_flight_per_process_are_capped(settings_for: Any) -> None:
    async with running_app(settings_for("memory", upload_process_bytes=64 * 1024)) as (app, client):
        _, auth = await _user(client)
        data = astronaut_jpeg()
        assert len(data) > 64 * 1024
        r = await client.post(f"{API}/files/upload", headers=auth, **form(data))
        assert (r.status_code, r.json()["error"]["code"]) == (503, "unavailable")
        assert app.state.runtime.analysis.uploads.in_flight.held == 0


# -- Redis refusing writes ---------------------------------------------------------------------


async def test_redis_oom_is_unavailable_not_a_crash(
    settings_for: Any, tmp_path: Path, with_files: None
) -> None:
    async with private_redis(tmp_path / "redis") as server:
        kv = RedisKV(server.url, "oom-test")
        await kv.start()
        async with running_app(settings_for("redis", redis_url=server.url)) as (app, client):
            user, auth = await _user(client)
            admin = kv._redis
            await admin.config_set("maxmemory-policy", "noeviction")
            await admin.config_set("maxmemory", 1)  # every write is refused from now on
            try:
                with pytest.raises(AppError) as info:
                    await kv.set("k", b"v")
                assert info.value.code == ErrorCode.UNAVAILABLE
                with pytest.raises(AppError) as info:
                    await kv.zadd("z", "m", 1.0, ttl=10)  # MULTI/EXEC
                assert info.value.code == ErrorCode.UNAVAILABLE
                with pytest.raises(AppError) as info:
                    await kv.append_at("a", 0, b"x", 10)  # a Lua script
                assert info.value.code == ErrorCode.UNAVAILABLE
                with pytest.raises(AppError) as info:
                    await _start_upload(app, user, 1000)
                assert info.value.code == ErrorCode.UNAVAILABLE
                r = await client.post(f"{API}/files/upload", headers=auth, **form(astronaut_jpeg()))
                assert (r.status_code, r.json()["error"]["code"]) == (503, "unavailable")
            finally:
                await admin.config_set("maxmemory", 0)
        await kv.close()
