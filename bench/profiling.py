"""``--profile DIR``: py-spy on every server the bench starts, plus GC and loop-lag probes.

Each server gets ``py-spy record --format raw`` (collapsed stacks, 100 Hz, non-blocking: the
server is never paused) for the life of its deployment; synthia_rt nodes additionally run under
``bench.profiled_serve`` (GC pauses, event-loop lag). The results JSON keeps a summary — the
functions with the most inclusive and self samples — and DIR keeps the raw stacks
(``py-spy`` can turn them into flame graphs; ``speedscope`` opens them too).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any

RATE = 100


class PySpy:
    def __init__(self, pid: int, out: Path) -> None:
        self.pid, self.out = pid, out
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        exe = shutil.which("py-spy") or str(Path(__import__("sys").executable).with_name("py-spy"))
        self.process = await asyncio.create_subprocess_exec(
            exe,
            "record",
            "--pid",
            str(self.pid),
            "--format",
            "raw",
            "--output",
            str(self.out),
            "--rate",
            str(RATE),
            "--nonblocking",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def _name(frame: str) -> str:
    """``func (path/to/file.py:12)`` → ``func (file.py)`` with site-packages trimmed."""
    func, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif path.startswith("/"):  # our own files: keep package/module only
        parts = path.split("/")
        path = "/".join(parts[-2:])
    return f"{func} ({path})" if path else func


def summarize_raw(path: Path, top: int = 30) -> dict[str, Any]:
    """Share of samples per function: inclusive (anywhere on the stack) and self (on top)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return {"samples": 0}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_name(f) for f in stack.split(";") if f]
        for name in set(frames):
            inclusive[name] += n
        if frames:
            own[frames[-1]] += n

    def pct(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * v / total, 1)] for name, v in counter.most_common(top)]

    return {
        "samples": total,
        "seconds_on_cpu": round(total / RATE, 1),
        "inclusive_pct": pct(inclusive),
        "self_pct": pct(own),
    }


def read_probe(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}
