"""Publishing one analysis' events on its channel (protocol section 5).

Progress and partials are best effort: if the broker is down they are
logged and dropped, because the durable outcome is the database row and a subscriber
re-reads it (``final_result``). Result and error events are also published on the owner's
``user:<id>`` channel (results only), so every socket of that user learns the outcome.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from synthia_rt.broker.base import Broker
from synthia_rt.errors import AppError

if TYPE_CHECKING:
    from synthia_rt.push.sender import Pusher

log = logging.getLogger(__name__)

STAGES = ("uploading", "validating", "queued", "analyzing", "persisting", "done")


def channel_of(analysis_id: str) -> str:
    return f"analysis:{analysis_id}"


def error_payload(analysis_id: str, err: AppError) -> dict[str, Any]:
    return {
        "event": "analysis.error",
        "analysis_id": analysis_id,
        "code": str(err.code),
        "message": err.message,
        "temporary": bool(err.temporary),
    }


class AnalysisEvents:
    def __init__(
        self, broker: Broker, analysis_id: str, user_id: str, push: Pusher | None = None
    ) -> None:
        self.broker = broker
        self.push = push  # the result also goes by Web Push when the user has no socket
        self.analysis_id = analysis_id
        self.user_id = user_id
        self.channel = channel_of(analysis_id)
        self.seq = 0

    async def _publish(self, channel: str, payload: dict[str, Any]) -> bool:
        try:
            await self.broker.publish(channel, payload)
            return True
        except Exception:  # noqa: BLE001 - BrokerUnavailable or a dead connection: see module doc
            log.warning("could not publish %s on %s", payload["event"], channel, exc_info=True)
            return False

    async def progress(self, stage: str, pct: float | None = None) -> None:
        assert stage in STAGES
        payload: dict[str, Any] = {"event": "analysis.progress", "analysis_id": self.analysis_id, "stage": stage}
        if pct is not None:
            payload["pct"] = pct
        await self._publish(self.channel, payload)

    async def partial(self, delta: str, partial: dict[str, Any]) -> None:
        self.seq += 1
        payload = {
            "event": "analysis.partial",
            "analysis_id": self.analysis_id,
            "seq": self.seq,
            "delta": delta,
            "partial": partial,
        }
        await self._publish(self.channel, payload)

    async def result(self, payload: dict[str, Any]) -> None:
        """``payload`` from :func:`synthia_rt.store.analyses.result_payload` (row committed)."""
        # Order matters within analysis:<id> (done, then the result); the user's channel is
        # independent, so its copy goes out at the same time.
        async def on_analysis_channel() -> None:
            await self.progress("done", 100)
            await self._publish(self.channel, payload)

        await asyncio.gather(on_analysis_channel(), self._publish(f"user:{self.user_id}", payload))
        if self.push is not None:
            from synthia_rt.push.sender import Message

            kind = str(payload.get("kind") or "")
            self.push.offer(self.user_id, Message(
                "analysis.done", "Your analysis is ready", f"The {kind} analysis has finished.".replace("  ", " "),
                url=f"/?analysis={self.analysis_id}",
            ))  # fmt: skip

    async def error(self, err: AppError) -> None:
        await self._publish(self.channel, error_payload(self.analysis_id, err))

    async def quiz_estimate(self, fields: dict[str, Any]) -> None:
        await self._publish(self.channel, {"event": "quiz.estimate", **fields})
