"""What every scenario gets: options, the client worker pool, accounts, and deployments per target.

A scenario asks ``async with ctx.deploy(target, nodes=2) as dep`` for a fresh set of servers
(started for this scenario and stopped after it, so each memory figure starts from a clean
process) — or, with ``--node URL``, the synthia_rt nodes the operator runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tqdm import tqdm

from bench import deploy, procstat
from bench.accounts import Account, register_many, sockets_plan
from bench.pool import Pool
from bench.targets import LABELS, SYNTHIA


@dataclass
class Deployment:
    target: str
    urls: list[str]  # http base URL per node
    channel: str  # synthia: the Redis namespace; peers: their Redis channel
    servers: list[deploy.Server] = field(default_factory=list)
    pid_override: list[int] | None = None

    @property
    def label(self) -> str:
        return LABELS[self.target]

    def node_pids(self) -> list[list[int]]:
        """The pids behind each node (by listening port, or ``--server-pid`` for one node)."""
        if self.pid_override and len(self.urls) == 1:
            return [self.pid_override]
        if self.servers:
            # uvicorn with --workers > 1 forks listeners: find them all by port.
            return [procstat.pids_listening(s.port) or [s.pid] for s in self.servers]
        return [procstat.pids_listening(urlsplit(u).port or 80) for u in self.urls]


@dataclass
class Context:
    options: argparse.Namespace
    pool: Pool
    synthia: deploy.SynthiaConfig | None = None  # None when --node points at running nodes
    accounts: list[Account] = field(default_factory=list)
    gemini_url: str = ""
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def redis_url(self) -> str:
        return str(self.options.redis)

    # -- progress ------------------------------------------------------------------------------
    def bar(self, total: int, desc: str) -> tqdm:
        return tqdm(total=total, desc=desc, unit="", leave=False, dynamic_ncols=True, disable=self.options.quiet)

    def say(self, text: str) -> None:
        if not self.options.quiet:
            tqdm.write(text)

    # -- deployments ---------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def deploy(self, target: str, nodes: int) -> AsyncIterator[Deployment]:
        if target == SYNTHIA and self.options.node:
            urls = list(self.options.node)[:nodes]
            yield Deployment(target, urls, self.options.namespace, pid_override=self.options.server_pid)
            return
        servers: list[deploy.Server] = []
        try:
            if target == SYNTHIA:
                assert self.synthia is not None
                channel = self.synthia.namespace
                for _ in range(nodes):
                    servers.append(await deploy.start_synthia(self.synthia.env()))
            else:
                channel = f"bench-{target}-{secrets.token_hex(4)}"
                for _ in range(nodes):
                    servers.append(await deploy.start_peer(target, self.redis_url, channel))
            yield Deployment(target, [s.url for s in servers], channel, servers)
        finally:
            await asyncio.gather(*(s.stop() for s in servers))

    # -- users ---------------------------------------------------------------------------------
    async def ensure_accounts(self, sockets: int, urls: list[str]) -> None:
        """Register enough users for ``sockets`` sockets at ``--sockets-per-user`` each."""
        needed = -(-sockets // self.options.sockets_per_user)
        missing = needed - len(self.accounts)
        if missing <= 0:
            return
        with self.bar(missing, "registering users") as bar:
            self.accounts += await register_many(urls, missing, on_done=lambda: bar.update(1))

    def plan(self, target: str, urls: list[str], sockets: int) -> list[tuple[str, str | None]]:
        """``(node_url, token)`` per socket, nodes alternating; peers need no token."""
        if target == SYNTHIA:
            return list(sockets_plan(self.accounts, urls, sockets, self.options.sockets_per_user))
        return [(urls[i % len(urls)], None) for i in range(sockets)]


def progress_to(bar: tqdm) -> Callable[[int], None]:
    def update(n: int) -> None:
        bar.update(n)

    return update
