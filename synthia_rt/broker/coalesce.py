"""History reads of one channel asked for at the same moment are read once.

A reconnect storm is thousands of sockets re-subscribing the same channels with ``since`` a
few events apart (a node died; its sockets all land on the survivors). Read one by one, each
costs a history script run and the parsing of the same Stream entries again: during a storm
that was most of a node's CPU (bench/findings.md). :class:`HistoryCoalescer` groups the
requests for one ``(channel, since.epoch)`` made in the same loop iteration into ONE read from
the smallest ``since`` of the group, and gives each caller the slice after its own ``since``
with ``recovered`` worked out for that caller (:mod:`synthia_rt.broker.replay`), exactly what
its own read would have returned.

* Only requests without a ``limit`` are grouped (a limited read is not a slice of another).
* A caller whose ``since`` is not a point of the history gets what its own read would: the
  whole history, ``recovered:false`` (its own read, when the group's read was a slice).
* One read's failure is every grouped caller's failure (``BrokerUnavailable``); a cancelled
  caller leaves the read running for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from synthia_rt.broker import replay
from synthia_rt.broker.base import History, Position

Read = Callable[[str, Position], Awaitable[History]]


@dataclass(eq=False)
class _Group:
    offsets: list[int] = field(default_factory=list)
    result: asyncio.Future[History] | None = None


class HistoryCoalescer:
    def __init__(self, read: Read) -> None:
        self._read = read
        self._open: dict[tuple[str, str], _Group] = {}  # groups not started yet
        self._tasks: set[asyncio.Task[None]] = set()
        self.reads = 0  # history reads sent, and requests served (tests, the bench)
        self.requests = 0

    async def history(self, channel: str, since: Position) -> History:
        key = (channel, since.epoch)
        group = self._open.get(key)
        loop = asyncio.get_running_loop()
        if group is None:
            group = self._open[key] = _Group(result=loop.create_future())
            loop.call_soon(self._start, key, group)
        group.offsets.append(since.offset)
        self.requests += 1
        assert group.result is not None
        whole = await asyncio.shield(group.result)
        if not replay.resumes(since, whole.position):
            if replay.resumes(Position(min(group.offsets), since.epoch), whole.position):
                # The group's read was a slice from its smallest since; this caller's own read
                # (an offset beyond the newest) is the whole history instead.
                self.reads += 1
                return await self._read(channel, since)
            return History(whole.events, whole.position, False)  # the same whole history
        events = [e for e in whole.events if e.offset > since.offset]
        return History(events, whole.position, replay.recovered(since, whole.position, events))

    def _start(self, key: tuple[str, str], group: _Group) -> None:
        if self._open.get(key) is group:
            del self._open[key]
        task = asyncio.ensure_future(self._run(key[0], Position(min(group.offsets), key[1]), group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, channel: str, since: Position, group: _Group) -> None:
        assert group.result is not None
        self.reads += 1
        try:
            group.result.set_result(await self._read(channel, since))
        except asyncio.CancelledError:  # shutdown
            group.result.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the group
            group.result.set_exception(exc)
            group.result.exception()  # retrieved: callers may all have been cancelled

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
