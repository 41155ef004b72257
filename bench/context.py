"""What every scenario gets: options, the client worker pool, accounts, and deployments per target.

A scenario asks ``async with ctx.deploy(target, nodes=2) as dep`` for a fresh set of servers
(started for this scenario and stopped after it, so each memory figure starts from a clean
process) — or, with ``--node URL``, the synthia_rt nodes the operator runs. ``synthia-cluster``
deploys the same synthia_rt nodes (same database, secret and settings) on the run's Redis Cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tqdm import tqdm

from bench import deploy, procstat
from bench.accounts import Account, register_many, sockets_plan
from bench.deploy import SynthiaConfig
from bench.pool import Pool
from bench.profiling import PySpy, read_probe, summarize_raw
from bench.targets import LABELS, SYNTHIA, SYNTHIA_CLUSTER, SYNTHIA_TARGETS
from tests.redis_cluster import RedisCluster


@dataclass
class Deployment:
    target: str
    urls: list[str]  # http base URL per node
    channel: str  # synthia: the Redis namespace; peers: their Redis channel
    servers: list[deploy.Server] = field(default_factory=list)
    pid_override: list[int] | None = None
    redis_url: str = ""  # the Redis the servers use (and a publisher must use)
    redis_pids: list[int] = field(default_factory=list)  # its processes, if not the one on 6379

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
    redis_cluster: RedisCluster | None = None  # the synthia-cluster target's, started by the runner
    accounts: list[Account] = field(default_factory=list)
    gemini_url: str = ""
    fake_model: Any = None  # bench.deploy.TimedFakeGemini when the analysis scenario can run
    log_dir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="synthia-bench-logs-"))
    )
    server_logs: list[dict[str, Any]] = field(
        default_factory=list
    )  # per server: log path and counts
    scenario: str = ""  # the scenario running now (names profiles)
    profiles: list[dict[str, Any]] = field(default_factory=list)  # --profile: one entry per server

    @property
    def redis_url(self) -> str:
        return str(self.options.redis)

    # -- progress ------------------------------------------------------------------------------
    def bar(self, total: int, desc: str) -> tqdm:
        return tqdm(
            total=total,
            desc=desc,
            unit="",
            leave=False,
            dynamic_ncols=True,
            disable=self.options.quiet,
        )

    def say(self, text: str) -> None:
        if not self.options.quiet:
            tqdm.write(text)

    # -- deployments ---------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def deploy(self, target: str, nodes: int) -> AsyncIterator[Deployment]:
        if target == SYNTHIA and self.options.node:
            urls = list(self.options.node)[:nodes]
            yield Deployment(
                target,
                urls,
                self.options.namespace,
                pid_override=self.options.server_pid,
                redis_url=self.redis_url,
            )
            return
        servers: list[deploy.Server] = []
        spies: list[PySpy] = []
        profile_dir: Path | None = self.options.profile  # created by the runner
        redis_url, redis_pids = self.redis_url, []
        try:
            if target in SYNTHIA_TARGETS:
                config = self.synthia_config(target)
                channel, redis_url = config.namespace, config.redis_url
                if target == SYNTHIA_CLUSTER:
                    assert self.redis_cluster is not None
                    redis_pids = [p.pid for p in self.redis_cluster.processes.values()]
                for i in range(nodes):
                    probe = (
                        profile_dir / f"{self.scenario}-{target}-node{i}.probe.json"
                        if profile_dir
                        else None
                    )
                    servers.append(
                        await deploy.start_synthia(
                            config.env(), self.log_dir, probe=probe, target=target
                        )
                    )
            else:
                channel = f"bench-{target}-{secrets.token_hex(4)}"
                for i in range(nodes):
                    probe = (
                        profile_dir / f"{self.scenario}-{target}-node{i}.probe.json"
                        if profile_dir
                        else None
                    )
                    servers.append(
                        await deploy.start_peer(
                            target, self.redis_url, channel, self.log_dir, probe=probe
                        )
                    )
            if profile_dir is not None:
                for i, server in enumerate(servers):
                    spies.append(
                        PySpy(server.pid, profile_dir / f"{self.scenario}-{target}-node{i}.raw")
                    )
                    await spies[-1].start()
            yield Deployment(
                target,
                [s.url for s in servers],
                channel,
                servers,
                redis_url=redis_url,
                redis_pids=redis_pids,
            )
        finally:
            await asyncio.gather(*(spy.stop() for spy in spies))
            await asyncio.gather(*(s.stop() for s in servers))
            for s in servers:
                self.server_logs.append(
                    {"target": s.target, "port": s.port, "log": str(s.log), **s.log_counts()}
                )
            for i, spy in enumerate(spies):
                name = f"{self.scenario}-{target}-node{i}"
                assert profile_dir is not None
                self.profiles.append(
                    {
                        "name": name,
                        "raw": str(spy.out),
                        **summarize_raw(spy.out),
                        **read_probe(profile_dir / f"{name}.probe.json"),
                    }
                )

    def synthia_config(self, target: str) -> SynthiaConfig:
        """The bench's synthia_rt node settings; on the run's Redis Cluster for synthia-cluster."""
        assert self.synthia is not None
        if target != SYNTHIA_CLUSTER:
            return self.synthia
        assert self.redis_cluster is not None, "the runner starts the cluster"
        return dataclasses.replace(self.synthia, redis_url=self.redis_cluster.url)

    async def census(self, target: str, nodes: int) -> None:
        """With ``--profile``: ask each node's probe for a heap census now (waits up to 10 s)."""
        if self.options.profile is None:
            return
        requests = [
            self.options.profile / f"{self.scenario}-{target}-node{i}.probe.json.census"
            for i in range(nodes)
        ]
        for r in requests:
            r.touch()
        for _ in range(100):
            if not any(r.exists() for r in requests):
                return
            await asyncio.sleep(0.1)

    def stalls_in(
        self, target: str, nodes: int, start: float, end: float
    ) -> list[dict[str, Any]] | None:
        """Per node: GC pauses and loop lags (>= 5 ms) between wall-clock ``start`` and ``end``.

        Only with ``--profile`` (the probes write them); None otherwise.
        """
        if self.options.profile is None:
            return None
        out = []
        for i in range(nodes):
            probe = read_probe(
                self.options.profile / f"{self.scenario}-{target}-node{i}.probe.json"
            )
            inside = [
                s for s in probe.get("stalls", []) if start <= s[0] - s[1] and s[0] <= end + 5
            ]
            gcs = [s for s in inside if s[2] >= 0]
            lags = [s[1] for s in inside if s[2] < 0]
            out.append(
                {
                    "gc_pauses": len(gcs),
                    "gc_full": sum(1 for s in gcs if s[2] == 2),
                    "gc_total_ms": round(sum(s[1] for s in gcs) * 1000, 1),
                    "gc_full_total_ms": round(sum(s[1] for s in gcs if s[2] == 2) * 1000, 1),
                    "gc_max_ms": round(max((s[1] for s in gcs), default=0) * 1000, 1),
                    "lags_over_100ms": sum(1 for v in lags if v > 0.1),
                    "lag_max_ms": round(max(lags, default=0) * 1000, 1),
                }
            )
        return out

    # -- users ---------------------------------------------------------------------------------
    async def ensure_accounts(self, sockets: int, urls: list[str]) -> None:
        """Register enough users for ``sockets`` sockets at ``--sockets-per-user`` each."""
        needed = -(-sockets // self.options.sockets_per_user)
        missing = needed - len(self.accounts)
        if missing <= 0:
            return
        with self.bar(missing, "registering users") as bar:
            # One registration per node alone first: on a cluster, the rate limiter's client
            # (limits' RedisCluster storage) fails requests that race its first connection.
            first = min(missing, len(urls))
            self.accounts += await register_many(
                urls, first, concurrency=1, on_done=lambda: bar.update(1)
            )
            self.accounts += await register_many(
                urls, missing - first, on_done=lambda: bar.update(1)
            )

    def plan(self, target: str, urls: list[str], sockets: int) -> list[tuple[str, str | None]]:
        """``(node_url, token)`` per socket, nodes alternating; peers need no token."""
        if target in SYNTHIA_TARGETS:
            return list(sockets_plan(self.accounts, urls, sockets, self.options.sockets_per_user))
        return [(urls[i % len(urls)], None) for i in range(sockets)]


def progress_to(bar: tqdm) -> Callable[[int], None]:
    def update(n: int) -> None:
        bar.update(n)

    return update
