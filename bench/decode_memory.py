"""``python -m bench.decode_memory``: peak RSS a node gains decoding uploaded images.

For each case a fresh node (embedded default: SQLite, in-process KV, one process) is started
from ``--src`` (a source tree; default this checkout), warmed up with one small upload, and
then sent ``POST /api/v1/files/upload`` — once, or by four users at the same moment. The
node's ``VmHWM`` (peak RSS) and ``VmRSS`` from ``/proc/<pid>/status`` give:

* ``peak_growth_mb`` — VmHWM after the case minus VmRSS before it (what the node needed);
* ``kept_mb`` — VmRSS a second after the case minus VmRSS before it (what it kept).

Cases: a 6300×6300 solid-colour WEBP (~40 Mpx, the issue's 70 KB bomb: refused from its
header since the 24 Mpx cap) and an image at the 24 Mpx cap (6000×4000) as WEBP and JPEG.

    python -m bench.decode_memory --label after                 # this checkout
    python -m bench.decode_memory --label before --src /tmp/old # an export of the old code
    python -m bench.decode_memory --label after-cap-40mpx --env MAX_IMAGE_PIXELS=40000000 \
        --cases webp-40mpx-x1,webp-40mpx-x4                     # the 40 Mpx WEBP decoded

Results are merged into ``bench/results/decode-memory.json`` under ``--label``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from tests.nodes import free_port

REPO = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
API = "/api/v1"


def _status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) * 1024  # kB
    return out


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


def solid_webp(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 150, 120)).save(out, "WEBP", quality=80)
    return out.getvalue()


def smooth_image(width: int, height: int, fmt: str) -> bytes:
    """A gradient (compresses well, so a 24 Mpx photo stays under max_image_bytes)."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = x.astype(np.uint8)
    rgb[..., 1] = y.astype(np.uint8)
    rgb[..., 2] = ((x + y) / 2).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, fmt, quality=85)
    return out.getvalue()


CASES: dict[str, tuple[str, int]] = {
    # name: (image, parallel uploads)
    "webp-40mpx-x1": ("webp-6300", 1),
    "webp-40mpx-x4": ("webp-6300", 4),
    "webp-24mpx-x1": ("webp-6000x4000", 1),
    "webp-24mpx-x4": ("webp-6000x4000", 4),
    "jpeg-24mpx-x1": ("jpeg-6000x4000", 1),
    "jpeg-24mpx-x4": ("jpeg-6000x4000", 4),
}


def make_image(name: str) -> bytes:
    if name == "webp-6300":
        return solid_webp(6300, 6300)
    if name == "webp-6000x4000":
        return smooth_image(6000, 4000, "WEBP")
    if name == "jpeg-6000x4000":
        return smooth_image(6000, 4000, "JPEG")
    raise ValueError(name)


async def _register(client: httpx.AsyncClient) -> dict[str, str]:
    email = f"bench-{secrets.token_hex(6)}@example.com"
    r = await client.post(
        f"{API}/auth/register", json={"email": email, "password": "correct horse battery staple"}
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def _upload(
    client: httpx.AsyncClient, auth: dict[str, str], data: bytes, filename: str
) -> str:
    r = await client.post(
        f"{API}/files/upload",
        headers=auth,
        files={"image": (filename, data, "application/octet-stream")},
    )
    if r.status_code == 201:
        return "201"
    return f"{r.status_code} {r.json().get('error', {}).get('code', '?')}"


async def run_case(
    src: Path, case: str, image: bytes, parallel: int, extra: dict[str, str]
) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as data_dir:
        env = {
            **os.environ,
            "PYTHONPATH": str(src),
            "DATA_DIR": data_dir,
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": "",
            "REDIS_URL": "",
            "GEMINI_API_KEY": "",
            **extra,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "synthia_rt.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            cwd=str(src),
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=300) as client:
                for _ in range(300):
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
                users = [await _register(client) for _ in range(parallel)]
                warm = smooth_image(640, 480, "JPEG")  # imports, pools, first-call caches
                await _upload(client, users[0], warm, "warm.jpg")
                await _upload(client, users[0], smooth_image(640, 480, "WEBP"), "warm.webp")
                await asyncio.sleep(0.5)
                before = _status(proc.pid)
                _reset_peak(proc.pid)
                start = time.perf_counter()
                codes = await asyncio.gather(
                    *(_upload(client, u, image, f"x{i}") for i, u in enumerate(users))
                )
                seconds = time.perf_counter() - start
                peak = _status(proc.pid)["VmHWM"]
                await asyncio.sleep(1.0)
                after = _status(proc.pid)["VmRSS"]
        finally:
            proc.terminate()
            await proc.wait()
    return {
        "case": case,
        "parallel": parallel,
        "image_bytes": len(image),
        "responses": codes,
        "rss_before_mb": round(before["VmRSS"] / MB, 1),
        "peak_growth_mb": round((peak - before["VmRSS"]) / MB, 1),
        "kept_mb": round((after - before["VmRSS"]) / MB, 1),
        "seconds": round(seconds, 2),
    }


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.decode_memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--label", required=True, help="results key, e.g. before / after")
    p.add_argument("--src", type=Path, default=REPO, help="source tree the node runs from")
    p.add_argument(
        "--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES)
    )
    p.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="node setting (repeatable)"
    )
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "decode-memory.json")
    args = p.parse_args(argv)
    images: dict[str, bytes] = {}
    rows = []
    for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
        name, parallel = CASES[case]
        if name not in images:
            images[name] = make_image(name)
        extra = dict(item.split("=", 1) for item in args.env)
        row = await run_case(args.src.resolve(), case, images[name], parallel, extra)
        print(json.dumps(row), flush=True)
        rows.append(row)
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    results[args.label] = {
        "src": "this checkout" if args.src.resolve() == REPO else str(args.src),
        "env": dict(item.split("=", 1) for item in args.env),
        "cases": rows,
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
