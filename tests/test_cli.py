"""The command line: serve refuses workers on the embedded default; create-admin; migrate; bench is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg


def _run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "GEMINI_API_KEY", "JWT_SECRET_KEY"}
    }
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
        row = await conn.fetchrow(
            "SELECT role, password_hash FROM users WHERE email = 'ops@example.com'"
        )
    finally:
        await conn.close()
    assert row["role"] == "admin" and row["password_hash"].startswith("$argon2id$")
    assert _run(["create-admin", "x@example.com"], node_env, stdin="short\n").returncode == 1


# -- operator errors: one line, a distinct exit code, no traceback --------------------------------
def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the probe is closed


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_unknown_url_schemes_name_the_variable_and_the_accepted_ones(tmp_path: Path) -> None:
    base = {"DATA_DIR": str(tmp_path)}
    done = _run(["migrate"], {**base, "DATABASE_URL": "mysql://u:hunter2@db/x"})
    line = _one_line(done)
    assert done.returncode == 2
    assert (
        "DATABASE_URL" in line
        and "'mysql'" in line
        and "postgresql://" in line
        and "sqlite://" in line
    )
    assert "hunter2" not in line  # the URL (and its password) is never echoed
    done = _run(["serve"], {**base, "REDIS_URL": "kafka://broker:9092"})
    line = _one_line(done)
    assert done.returncode == 2
    for scheme in ("REDIS_URL", "redis://", "rediss://", "redis+cluster://", "memory://"):
        assert scheme in line


def test_redis_cluster_scheme_is_a_known_one() -> None:
    from synthia_rt.settings import Settings

    settings = Settings.from_env({"REDIS_URL": "redis+cluster://r1:7000", "JWT_SECRET_KEY": JWT})
    assert settings.effective_redis_url.startswith("redis+cluster://")


JWT = "kX9v2QmZr7tY4wLp8sNcB3dF6gH1jK5eR0uI9oPaZxCvBnMqWs"


def test_unreachable_postgres_is_one_line_per_command(tmp_path: Path) -> None:
    port = _closed_port()
    env = {
        "DATABASE_URL": f"postgresql://synthia:pw@127.0.0.1:{port}/synthia",
        "JWT_SECRET_KEY": JWT,
        "DATA_DIR": str(tmp_path),
    }
    for args in (["migrate"], ["create-admin", "ops@example.com"], ["serve", "--port", "0"]):
        done = _run(args, env, stdin="a long admin password\n")
        line = _one_line(done)
        assert done.returncode == 3, (args, done.stderr)
        assert (
            line
            == f"synthia-rt: cannot reach PostgreSQL at 127.0.0.1:{port} (DATABASE_URL): connection refused"
        )


def test_unreachable_redis_at_serve_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    port = _closed_port()
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "JWT_SECRET_KEY": JWT,
        "DATA_DIR": str(tmp_path),
    }
    done = _run(["serve", "--port", "0"], env)
    assert done.returncode == 3
    assert (
        _one_line(done)
        == f"synthia-rt: cannot reach Redis at 127.0.0.1:{port} (REDIS_URL): connection refused"
    )
    debug = _run(["serve", "--debug", "--port", "0"], env)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_create_admin_validates_the_email_like_register(tmp_path: Path) -> None:
    for bad in ("not-an-email", "two@@example.com", "a b@example.com"):
        done = _run(
            ["create-admin", bad], {"DATA_DIR": str(tmp_path)}, stdin="a long admin password\n"
        )
        assert done.returncode == 2
        assert "not a valid email address" in _one_line(done)


def test_version_and_plain_help_with_defaults() -> None:
    from synthia_rt import __version__

    version = _run(["--version"], {})
    assert version.returncode == 0 and version.stdout.strip() == f"synthia-rt {__version__}"
    top = _run(["--help"], {})
    serve = _run(["serve", "--help"], {})
    for done in (top, serve):
        assert done.returncode == 0
        assert "``" not in done.stdout and ":mod:" not in done.stdout  # no reStructuredText
    assert "(default: 8000)" in serve.stdout and "(default: 127.0.0.1)" in serve.stdout
    assert "create-admin" in top.stdout and "Exit codes" in top.stdout
