"""Real uvicorn processes for tests whose behaviour crosses the network."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from dataclasses import dataclass

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    port: int
    process: asyncio.subprocess.Process

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.process.returncode is None:
            self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode


async def start_node(
    env: dict[str, str], port: int | None = None, extra_args: list[str] | None = None
) -> Node:
    port = port or free_port()
    full_env = {**os.environ, **env}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "synthia_rt.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *(extra_args or []),
        env=full_env,
    )
    node = Node(port, process)
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            if process.returncode is not None:
                raise RuntimeError(f"node exited with {process.returncode}")
            try:
                r = await client.get(f"{node.http}/healthz", timeout=1)
                if r.status_code == 200:
                    return node
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    await node.stop()
    raise RuntimeError("node did not become healthy")
