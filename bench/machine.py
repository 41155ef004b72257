"""What the numbers were measured on: CPU, RAM, kernel, versions, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("uvicorn", "starlette", "websockets", "uvloop", "httptools", "redis", "asyncpg", "orjson",
            "python-socketio", "python-engineio", "broadcaster", "synthia-rt")


def _run(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_model() -> str:
    for line in _run("lscpu").splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def describe(redis_url: str) -> dict[str, Any]:
    redis_version = ""
    for line in _run("redis-cli", "-u", redis_url, "info", "server").splitlines():
        if line.startswith("redis_version:"):
            redis_version = line.split(":", 1)[1].strip()
    repo = Path(__file__).resolve().parent.parent
    return {
        "cpu": _cpu_model(),
        "nproc": os.cpu_count(),
        "ram_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis": redis_version,
        "postgres": _run("psql", "--version").replace("psql (PostgreSQL) ", ""),
        "packages": {p: _version(p) for p in PACKAGES},
        "git_commit": _run("git", "-C", str(repo), "rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_run("git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no")),
    }
