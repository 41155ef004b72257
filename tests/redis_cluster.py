"""A private local Redis Cluster for tests: 3 primaries + 3 replicas on free ports.

``redis-server --cluster-enabled yes`` six times in a temp dir, then ``redis-cli --cluster
create … --cluster-replicas 1 --cluster-yes``.  Started once per test session (see
``conftest.redis_cluster``), never the shared server; no persistence.  The bench's
``synthia-cluster`` target starts one too, once per run (``bench.deploy.start_redis_cluster``).

``NODE_TIMEOUT_MS`` is short so that a killed primary is replaced by its replica within a
couple of seconds (``kill`` / ``restart``: the restarted process rejoins as a replica from its
``nodes.conf``).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

NODE_TIMEOUT_MS = 1000  # cluster-node-timeout: a dead primary is failed over after about this
REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too; Redis wants it <= 55535."""
    while True:
        port = random.randint(20000, 45000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


@dataclass
class RedisCluster:
    workdir: Path
    primaries: int = 3
    replicas: int = 1  # per primary
    node_timeout_ms: int = NODE_TIMEOUT_MS
    ports: list[int] = field(default_factory=list)
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start_node(self, port: int) -> None:
        node_dir = self.workdir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(node_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self, timeout: float = 30.0) -> None:
        self.ports = [cluster_port() for _ in range(self.primaries * (1 + self.replicas))]
        for port in self.ports:
            self.start_node(port)
        deadline = time.monotonic() + timeout
        for port in self.ports:
            client = redis.Redis(port=port, socket_connect_timeout=0.5)
            while True:
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {port} did not start")
                time.sleep(0.05)
            client.close()
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
        )
        self.wait_ok(deadline)

    def wait_ok(self, deadline: float) -> None:
        """Until every live node says the cluster is ok and sees every replica attached."""
        while True:
            states = []
            for port, proc in self.processes.items():
                if proc.poll() is not None:
                    continue
                client = redis.Redis(port=port, socket_connect_timeout=0.5)
                try:
                    info = client.cluster("info")
                    states.append(info.get("cluster_state") == "ok")
                    repl = client.info("replication")
                    states.append(
                        repl["role"] == "master" or repl.get("master_link_status") == "up"
                    )
                except redis.RedisError:
                    states.append(False)
                finally:
                    client.close()
            if all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not become ok")
            time.sleep(0.1)

    def owner(self, key: str) -> int:
        """The port of the primary that serves ``key``'s slot now."""
        for port, proc in self.processes.items():
            if proc.poll() is not None:
                continue
            client = redis.Redis(port=port, socket_connect_timeout=0.5)
            try:
                slot = int(client.cluster("keyslot", key))
                for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):  # type: ignore[no-untyped-call]
                    if start <= slot <= end:
                        return int(primary[1])
            except redis.RedisError:
                continue
            finally:
                client.close()
        raise RuntimeError(f"no live node knows who owns {key!r}")

    def kill(self, port: int) -> None:
        """SIGKILL one node's process (no shutdown, no failover handshake)."""
        proc = self.processes[port]
        proc.kill()
        proc.wait()

    def restart(self, port: int, timeout: float = 30.0) -> None:
        """Start a killed node again on its port and config; waits until the cluster is ok with
        every replica attached (a former primary comes back as a replica of its successor)."""
        self.start_node(port)
        self.wait_ok(time.monotonic() + timeout)

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.processes.clear()
