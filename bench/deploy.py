"""Servers the bench starts for a self-contained run: synthia_rt nodes and the peer servers.

``synthia-rt serve`` nodes get a fresh PostgreSQL database and a private Redis namespace per run
(``bench-<random>``), a fake Gemini for the analysis scenario, and the few settings a load test
needs (documented in docs/performance.md). Every child inherits the bench's raised file limit.
The ``synthia-cluster`` target's nodes get the same settings on a private Redis Cluster
(:func:`start_redis_cluster`, the test suite's ``tests/redis_cluster.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.limits import raise_nofile
from bench.peers import PEER_MODULES
from bench.targets import open_socket
from tests.fake_gemini import FakeGemini, Stream
from tests.redis_cluster import RedisCluster

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    target: str
    port: int
    process: asyncio.subprocess.Process
    log: Path | None = None  # the process's stdout+stderr

    def log_counts(self) -> dict[str, int]:
        """Lines in the server's log that mention WARNING / ERROR / Traceback."""
        counts = {"warning": 0, "error": 0, "traceback": 0}
        if self.log is None or not self.log.exists():
            return counts
        with self.log.open(errors="replace") as fh:
            for line in fh:
                counts["warning"] += "WARNING" in line
                counts["error"] += "ERROR" in line or "CRITICAL" in line
                counts["traceback"] += "Traceback" in line
        return counts

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self, timeout: float = 15.0) -> None:
        if self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def _wait_http(server: Server, path: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient() as client:
        while loop.time() < deadline:
            if server.process.returncode is not None:
                raise RuntimeError(
                    f"{server.target} on :{server.port} exited with {server.process.returncode}"
                )
            try:
                if (await client.get(server.url + path, timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.target} on :{server.port} did not answer {path} in {timeout} s")


async def _wait_socket(server: Server, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if server.process.returncode is not None:
            raise RuntimeError(
                f"{server.target} on :{server.port} exited with {server.process.returncode}"
            )
        try:
            opened = await open_socket(server.target, server.url, None, timeout=2)
        except Exception:  # noqa: BLE001 - not listening yet
            await asyncio.sleep(0.1)
            continue
        await opened.socket.close()
        return
    raise RuntimeError(f"{server.target} on :{server.port} accepted no socket in {timeout} s")


def _log_file(log_dir: Path, target: str, port: int) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    return log_dir / f"{target}-{port}.log"


async def start_synthia(
    env: dict[str, str],
    log_dir: Path,
    port: int | None = None,
    timeout: float = 60.0,
    probe: Path | None = None,
    target: str = "synthia",
) -> Server:
    """One ``synthia-rt serve`` process; returns once ``/healthz`` answers.

    With ``probe`` it runs under ``bench.profiled_serve``, which writes GC and loop-lag figures there.
    """
    raise_nofile()
    port = port or free_port()
    log = _log_file(log_dir, target, port)
    instrumented = probe is not None or any(k.startswith("BENCH_") for k in env)
    module = "bench.profiled_serve" if instrumented else "synthia_rt.cli"
    if probe:
        env = {**env, "BENCH_PROFILE_OUT": str(probe)}
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env={**os.environ, **env},
            cwd=REPO,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    server = Server(target, port, process, log)
    try:
        await _wait_http(server, "/healthz", timeout)
    except BaseException:
        await server.stop()
        raise
    return server


async def start_peer(
    target: str,
    redis_url: str,
    channel: str,
    log_dir: Path,
    port: int | None = None,
    timeout: float = 30.0,
    probe: Path | None = None,
) -> Server:
    """One peer server process; returns once it accepted a socket and sent its ready frame.

    With ``probe`` it runs under ``bench.probe`` (GC pauses and heap census written there).
    """
    raise_nofile()
    port = port or free_port()
    log = _log_file(log_dir, target, port)
    launcher = (
        ["-m", "bench.probe", PEER_MODULES[target]] if probe else ["-m", PEER_MODULES[target]]
    )
    env = {**os.environ, "BENCH_PROFILE_OUT": str(probe)} if probe else None
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *launcher,
            "--port",
            str(port),
            "--redis",
            redis_url,
            "--channel",
            channel,
            cwd=REPO,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
    server = Server(target, port, process, log)
    try:
        await _wait_socket(server, timeout)
    except BaseException:
        await server.stop()
        raise
    return server


# The synthia-cluster target's Redis: 3 primaries + 3 replicas on this machine, started once per
# run. Redis' default node timeout (the test suite's is 1 s, for fast failovers): on 2 saturated
# cores a busy second must not get a primary failed over in the middle of a measurement.
CLUSTER_NODE_TIMEOUT_MS = 15_000


async def start_redis_cluster(workdir: Path) -> RedisCluster:
    """A private Redis Cluster (``cluster.url`` is its ``redis+cluster://`` URL); call ``stop()``."""
    cluster = RedisCluster(workdir, node_timeout_ms=CLUSTER_NODE_TIMEOUT_MS)
    starting = asyncio.ensure_future(asyncio.to_thread(cluster.start))  # blocking: ~5 s
    try:
        await asyncio.shield(starting)
    except BaseException:
        # Cancelled (Ctrl-C) or failed: let the thread finish starting what it starts, then stop
        # every process it started, so none outlives the run.
        with contextlib.suppress(BaseException):
            await starting
        cluster.stop()
        raise
    return cluster


async def fresh_database(admin_url: str, name: str) -> str:
    """Drop and re-create ``name`` (so every run starts empty); returns its URL."""
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


async def clear_namespace(redis_url: str, namespace: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        async for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


@dataclass
class SynthiaConfig:
    """The environment of the bench's own synthia_rt nodes (see docs/performance.md)."""

    database_url: str
    redis_url: str
    namespace: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}")
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(40))
    gemini_url: str = ""
    data_dir: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "REDIS_NAMESPACE": self.namespace,
            "JWT_SECRET_KEY": self.jwt_secret,
            "LOG_LEVEL": "WARNING",
            "ACCESS_TOKEN_TTL": "3600",  # no token expires during a run
            # The bench registers thousands of users from one address and measures the socket
            # path, not the abuse limits (docs/security.md): lift the per-address ones.
            "REGISTER_RATE": "1000000/hour",
            "LOGIN_ATTEMPTS_PER_IP": "1000000",
            # The upload scenario measures throughput: ~100 MiB per user per round, back to back,
            # as fast as one socket can send (the abuse caps would refuse that, rightly).
            "UPLOAD_USER_BYTES": str(4 << 30),
            "UPLOAD_PROCESS_BYTES": str(4 << 30),
            "UPLOAD_FRAME_RATE": "100000",  # and the per-socket binary-frame bucket
            "UPLOAD_FRAME_BURST": "100000",
            "DATA_DIR": self.data_dir or f"/tmp/synthia-bench-{self.namespace}",
        }
        if self.gemini_url:
            env.update(
                {
                    "ANALYZER": "gemini",
                    "GEMINI_API_KEY": "bench-fake-key",
                    "GEMINI_BASE_URL": self.gemini_url,
                    "FREE_ANALYSES_PER_MONTH": "1000000",
                }
            )  # bench users measure load, not the quota
        env.update(self.extra)
        return env


# The fake Gemini of the test suite (tests/fake_gemini.py), with a fixed first-chunk latency.
#
# Every call answers a valid facial result, streamed in 4 chunks: the first after
# ``first_chunk_latency`` seconds, the rest right behind it. It records when each request
# arrived and when its first chunk was written, on the bench's clock, so the analysis scenario
# can split a client-side time into model time and server overhead.

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
