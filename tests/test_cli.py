"""The command line: serve refuses workers on the embedded default; create-admin; migrate; bench is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg


def _run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "GEMINI_API_KEY", "JWT_SECRET_KEY"}}
    return subprocess.run(
        [sys.executable, "-m", "synthia_rt.cli", *args],
        env={**clean, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_workers_refused_on_the_embedded_default(tmp_path: Path) -> None:
    done = _run(["serve", "--workers", "2"], {"DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "--workers > 1 needs shared backends" in done.stderr
    assert "DATABASE_URL" in done.stderr


def test_bench_points_to_the_source_checkout() -> None:
    done = _run(["bench", "--smoke"], {})
    assert done.returncode == 2
    assert "python -m bench" in done.stderr and "source checkout" in done.stderr


def test_weak_secret_is_a_startup_error(node_env: dict[str, str]) -> None:
    done = _run(["serve"], {**node_env, "JWT_SECRET_KEY": "changeme"})
    assert done.returncode == 2 and "JWT_SECRET_KEY" in done.stderr
    assert "changeme" not in done.stderr  # the secret itself is never echoed


async def test_migrate_and_create_admin_from_stdin(node_env: dict[str, str], pg_url: str) -> None:
    assert _run(["migrate"], node_env).returncode == 0
    done = _run(["create-admin", "ops@example.com"], node_env, stdin="a long admin password\n")
    assert done.returncode == 0, done.stderr
    assert "a long admin password" not in done.stdout + done.stderr
    conn = await asyncpg.connect(pg_url)
    try:
        row = await conn.fetchrow("SELECT role, password_hash FROM users WHERE email = 'ops@example.com'")
    finally:
        await conn.close()
    assert row["role"] == "admin" and row["password_hash"].startswith("$argon2id$")
    assert _run(["create-admin", "x@example.com"], node_env, stdin="short\n").returncode == 1
