"""Who runs an analysis, and who tells its client how it ended — each decided exactly once.

* ``run:<id>`` — the **lease**: the node running the analysis. Taken with ``set nx`` (so of two
  nodes that both want to run a fully uploaded analysis, one does), renewed by the running
  node's heartbeat every third of ``ANALYSIS_LEASE`` seconds, deleted when the run ends. A node
  that dies stops renewing: ``ANALYSIS_LEASE`` seconds later any node may take the analysis
  over (upload bytes still stored → it runs again; otherwise it is ended as ``unavailable``).
* ``ended:<id>`` — the **ending**: set with ``nx`` by whoever publishes the terminal event
  (``analysis.result`` or ``analysis.error``), holding the error it told. Normally the one
  that won the conditional UPDATE of the row sets it; while the database is unreachable for
  longer than ``DB_RETRY_WINDOW`` a run tells its client first and records the row later —
  then the ending is what another node's sweeper writes into the row, without publishing.
"""

from __future__ import annotations

import orjson

from synthia_rt.analysis import keys
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.kv.base import KeyValue


class Leases:
    def __init__(self, kv: KeyValue, node_id: str, ttl: float) -> None:
        self.kv = kv
        self.node = node_id.encode()
        self.ttl = ttl

    async def claim(self, analysis_id: str) -> bool:
        """Take the lease if nobody holds it; True when this node now runs the analysis."""
        return await self.kv.set(keys.lease(analysis_id), self.node, self.ttl, nx=True)

    async def renew(self, analysis_id: str) -> None:
        await self.kv.set(keys.lease(analysis_id), self.node, self.ttl)

    async def held(self, analysis_id: str) -> bool:
        return await self.kv.exists(keys.lease(analysis_id))

    async def release(self, analysis_id: str) -> None:
        await self.kv.delete(keys.lease(analysis_id))


class Endings:
    def __init__(self, kv: KeyValue, ttl: float) -> None:
        self.kv = kv
        self.ttl = ttl

    async def claim(self, analysis_id: str, error: AppError | None) -> bool:
        """True when the caller is the one to publish the terminal event (``error`` None: a result)."""
        # Its msgid and params: each reader gets it in their own locale.
        told = error.source() if error is not None else {"code": None}
        return await self.kv.set(keys.ending(analysis_id), orjson.dumps(told), self.ttl, nx=True)

    async def told(self, analysis_id: str) -> AppError | None:
        """The error already told to the client of an analysis whose row is still open, if any."""
        raw = await self.kv.get(keys.ending(analysis_id))
        if raw is None:
            return None
        told = orjson.loads(raw)
        if told.get("code") not in ErrorCode._value2member_map_:
            return None  # a result was told (code None), or a code this version does not know
        return AppError.restore(told)
