"""Per-user limit on concurrent analyses, shared by every node (a sorted set in the store).

Each running analysis is a member of ``active:<user>`` scored with the instant it stops
counting: a lease of ``ANALYSIS_LEASE`` seconds that the running node's heartbeat renews (an
upload in progress: ``UPLOAD_IDLE`` seconds, renewed by each chunk). A node that died stops
renewing, so its slots are free again seconds later: expired members are pruned when counting. Acquire is add-then-count, so two
racing starts can at worst both be refused — never both admitted past the limit.
"""

from __future__ import annotations

import time

from synthia_rt.analysis import keys
from synthia_rt.errors import ErrorCode, counted
from synthia_rt.kv.base import KeyValue

RETRY_AFTER = 5.0  # seconds; a typical analysis is done by then
# An upload holds its slot only while chunks keep coming: each chunk renews it for this long,
# so abandoned uploads stop blocking new analyses after two idle minutes (not after UPLOAD_TTL).
UPLOAD_IDLE = 120.0


class ActiveSlots:
    def __init__(self, kv: KeyValue, limit: int, lifetime: float) -> None:
        self.kv = kv
        self.limit = limit
        self.lifetime = lifetime

    @staticmethod
    def _key(user_id: str) -> str:
        return keys.active(user_id)

    @property
    def _key_ttl(self) -> float:
        return max(self.lifetime, UPLOAD_IDLE)  # the longest any member can count

    async def acquire(self, user_id: str, analysis_id: str, lifetime: float | None = None) -> None:
        key = self._key(user_id)
        now = time.time()
        await self.kv.zadd(key, analysis_id, now + (lifetime or self.lifetime), ttl=self._key_ttl)
        if await self.kv.zcount_above(key, now) > self.limit:
            await self.kv.zrem(key, analysis_id)
            raise counted(
                ErrorCode.RATE_LIMITED,
                "At most {n} analysis may run at once; wait for it to finish.",
                "At most {n} analyses may run at once; wait for one to finish.",
                self.limit,
                retry_after=RETRY_AFTER,
            )

    async def renew(self, user_id: str, analysis_id: str, lifetime: float | None = None) -> None:
        """Keep holding a slot for ``lifetime`` more seconds (one lease period when None)."""
        await self.kv.zadd(
            self._key(user_id),
            analysis_id,
            time.time() + (lifetime or self.lifetime),
            ttl=self._key_ttl,
        )

    async def release(self, user_id: str, analysis_id: str) -> None:
        await self.kv.zrem(self._key(user_id), analysis_id)

    async def active(self, user_id: str) -> int:
        return await self.kv.zcount_above(self._key(user_id), time.time())
