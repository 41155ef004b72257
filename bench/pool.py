"""Client worker processes: each runs a uvloop event loop holding its share of the sockets.

The coordinator starts a *job* — a worker coroutine named ``"module:function"`` — on every worker
with per-worker arguments; the job and the coordinator then talk in *phases* over the worker's
pipe (``ctl.send`` / ``await ctl.recv()``), so one job can connect, report, wait for a go,
measure and report again while its sockets stay open. Progress ticks flow back separately and
drive the coordinator's tqdm bar.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import queue
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from bench.limits import raise_nofile

ProgressCallback = Callable[[int], None]


class WorkerError(RuntimeError):
    """A worker job raised; the message carries its traceback."""


class _PipeReader:
    """Await messages from a pipe on the running loop (``add_reader`` on its fd)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        while self.conn.poll():
            try:
                self.queue.put_nowait(self.conn.recv())
            except EOFError:
                self._loop.remove_reader(self.conn.fileno())
                self.queue.put_nowait(("error", "worker pipe closed"))
                return

    def close(self) -> None:
        self._loop.remove_reader(self.conn.fileno())


class Control:
    """The worker side of a job's conversation with the coordinator.

    Inbound messages come through the worker's reader thread (``inbox``): uvloop's
    ``add_reader`` would switch the pipe to non-blocking mode, and a large ``send`` (a
    scenario's samples) must be able to block until the coordinator has read it.
    """

    def __init__(self, conn: Connection, index: int, inbox: queue.Queue[Any]) -> None:
        self.index = index
        self._conn = conn
        self._inbox = inbox

    def send(self, message: Any) -> None:
        self._conn.send(("msg", message))

    def progress(self, n: int = 1) -> None:
        self._conn.send(("progress", n))

    async def recv(self) -> Any:
        return await asyncio.to_thread(self._inbox.get)


def _resolve(name: str) -> Callable[..., Any]:
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def _read_forever(conn: Connection, inbox: queue.Queue[Any]) -> None:
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = None
        inbox.put(message)
        if message is None:
            return


def _worker_main(conn: Connection, index: int) -> None:
    raise_nofile()
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        runner = asyncio.run
    inbox: queue.Queue[Any] = queue.Queue()
    threading.Thread(target=_read_forever, args=(conn, inbox), daemon=True).start()
    while True:
        request = inbox.get()
        if request is None:
            return
        name, args = request

        async def job(name: str = name, args: Any = args) -> Any:
            return await _resolve(name)(args, Control(conn, index, inbox))

        try:
            result = runner(job())
        except BaseException:  # noqa: BLE001 - reported to the coordinator, which fails the run
            conn.send(("error", traceback.format_exc()))
        else:
            conn.send(("done", result))


class Job:
    """The coordinator side of one job running on every worker."""

    def __init__(self, readers: list[_PipeReader], conns: list[Connection]) -> None:
        self._readers = readers
        self._conns = conns
        self.on_progress: ProgressCallback | None = None
        self.results: list[Any] | None = None

    async def _next(self, i: int) -> tuple[str, Any]:
        while True:
            kind, payload = await self._readers[i].queue.get()
            if kind == "progress":
                if self.on_progress is not None:
                    self.on_progress(payload)
                continue
            if kind == "error":
                raise WorkerError(f"worker {i} failed:\n{payload}")
            return kind, payload

    async def recv_all(self) -> list[Any]:
        """One phase message from every worker (in worker order)."""
        got = await asyncio.gather(*(self._next(i) for i in range(len(self._readers))))
        for kind, _ in got:
            if kind != "msg":
                raise WorkerError(f"expected a phase message, the job ended ({kind})")
        return [payload for _, payload in got]

    def send_all(self, message: Any) -> None:
        for conn in self._conns:
            conn.send(message)

    def send_each(self, messages: list[Any]) -> None:
        for conn, message in zip(self._conns, messages, strict=True):
            conn.send(message)

    async def finish(self) -> list[Any]:
        """Every worker's return value; the job's pipes go back to idle."""
        got = await asyncio.gather(*(self._next(i) for i in range(len(self._readers))))
        for reader in self._readers:
            reader.close()
        for kind, _ in got:
            if kind != "done":
                raise WorkerError(f"a worker sent a phase message after its last phase ({kind})")
        self.results = [payload for _, payload in got]
        return self.results


class Pool:
    def __init__(self, size: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # no inherited event loop, threads or sockets
        self.size = size
        self._conns: list[Connection] = []
        self._procs: list[multiprocessing.process.BaseProcess] = []
        for index in range(size):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main, args=(child, index), daemon=True, name=f"bench-worker-{index}"
            )
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def start(self, name: str, args: list[Any]) -> Job:
        """Run ``name`` (``"module:function"``, ``async def f(args, ctl)``) on every worker."""
        if len(args) != self.size:
            raise ValueError("one argument per worker")
        for conn, arg in zip(self._conns, args, strict=True):
            conn.send((name, arg))
        return Job([_PipeReader(c) for c in self._conns], self._conns)

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """``items`` dealt round-robin into ``parts`` lists (so nodes/users spread evenly)."""
    return [items[i::parts] for i in range(parts)]
