"""A private PostgreSQL server for tests that stop and restart the database.

Never the shared server: outage tests own this one, in a temporary directory, on a free port,
TCP on 127.0.0.1 only (no Unix socket), trust authentication, and tuned to start fast
(``fsync=off``, small buffers; commits are still written before they return, so an
immediate stop loses nothing committed). :meth:`PgServer.stop` is an immediate shutdown (like a crash:
every connection drops at once); :meth:`PgServer.start` brings it back on the same port with
its data, the way a database restarted by its supervisor comes back.

PostgreSQL refuses to run as root. Tests run as root in CI, so the cluster is created and run
as the unprivileged ``postgres`` user when it exists (the distribution's package creates it),
else ``nobody``; the data directory belongs to that user. Run as non-root, it is the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from tests.nodes import free_port

BIN = Path(os.environ.get("TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
fsync = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 40
max_wal_senders = 0
wal_level = minimal
logging_collector = off
"""


def _run_as() -> list[str]:
    """The prefix that runs a command as an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return [shutil.which("runuser") or "/usr/sbin/runuser", "-u", name, "--"]
    raise RuntimeError("no unprivileged user to run PostgreSQL as")


def _owner() -> tuple[int, int] | None:
    prefix = _run_as()
    if not prefix:
        return None
    entry = pwd.getpwnam(prefix[2])
    return entry.pw_uid, entry.pw_gid


async def _exec(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *_run_as(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(
            f"{args[0]} failed ({process.returncode}): {out.decode(errors='replace')}"
        )
    return out.decode(errors="replace")


@dataclass
class PgServer:
    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="synthia-pg-")))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def init(self) -> None:
        owner = _owner()
        self.root.chmod(0o755)
        if owner is not None:
            os.chown(self.root, *owner)
        await _exec(
            str(BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(_CONF.format(port=self.port))

    async def start(self, timeout: float = 30.0) -> None:
        """Start (again) on ``self.port``; returns once it accepts connections."""
        await _exec(
            str(BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        )
        async with asyncio.timeout(timeout):
            while True:
                with contextlib.suppress(OSError, asyncpg.PostgresError):
                    conn = await asyncpg.connect(self.admin_url, timeout=2)
                    await conn.close()
                    return
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Immediate shutdown: every backend quits at once, nothing is flushed (a crash)."""
        if (self.data / "postmaster.pid").exists():
            await _exec(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    async def create_database(self, name: str) -> str:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    def log_text(self) -> str:
        path = self.root / "log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.asynccontextmanager
async def private_pg() -> AsyncIterator[PgServer]:
    server = PgServer()
    try:
        await server.init()
        await server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            await server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
