"""Publishing one analysis' events on its channel (protocol section 5).

The events are the typed models of :mod:`synthia_rt.realtime.protocol`. Progress and partials
are best effort: if the broker is down they are logged and dropped, because the durable outcome
is the database row and a subscriber re-reads it (:func:`ending_of` the row). Result
events are also published on the owner's ``user:<id>`` channel, so every socket of that user
learns the outcome.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from synthia_rt import i18n
from synthia_rt.broker.base import Broker
from synthia_rt.errors import AppError
from synthia_rt.i18n import N_
from synthia_rt.realtime import protocol as p
from synthia_rt.realtime.channels import analysis_channel, user_channel
from synthia_rt.store.analyses import OPEN

if TYPE_CHECKING:
    from synthia_rt.push.sender import Pusher

log = logging.getLogger(__name__)


# The push sent when an analysis ends (msgids: the push worker translates them for the user).
DONE_TITLE = N_("Your analysis is ready")
DONE_BODY = {
    "facial": N_("Your face analysis has finished."),
    "chromatic": N_("Your colour analysis has finished."),
}


class AnalysisEvents:
    def __init__(
        self, broker: Broker, analysis_id: str, user_id: str, push: Pusher | None = None
    ) -> None:
        self.broker = broker
        self.push = push  # the result also goes by Web Push when the user has no socket
        self.analysis_id = analysis_id
        self.user_id = user_id
        self.channel = analysis_channel(analysis_id)
        self.seq = 0

    async def _publish(self, channel: str, event: p.ChannelEvent) -> bool:
        try:
            await self.broker.publish(channel, event.payload())
            return True
        except Exception:  # noqa: BLE001 - BrokerUnavailable or a dead connection: see module doc
            log.warning("could not publish %s on %s", event.event, channel, exc_info=True)
            return False

    async def progress(self, stage: p.Stage, pct: float | None = None) -> None:
        fields: dict[str, Any] = {"analysis_id": self.analysis_id, "stage": stage}
        if pct is not None:  # left out, not null, when unknown
            fields["pct"] = pct
        await self._publish(self.channel, p.AnalysisProgress.model_validate(fields))

    async def partial(self, delta: str, partial: dict[str, Any]) -> None:
        self.seq += 1
        event = p.AnalysisPartial(
            analysis_id=self.analysis_id, seq=self.seq, delta=delta, partial=partial
        )
        await self._publish(self.channel, event)

    async def result(self, event: p.AnalysisResult) -> None:
        """Publish the outcome (its row is committed)."""

        # Order matters within analysis:<id> (done, then the result); the user's channel is
        # independent, so its copy goes out at the same time.
        async def on_analysis_channel() -> None:
            await self.progress("done", 100)
            await self._publish(self.channel, event)

        await asyncio.gather(
            on_analysis_channel(), self._publish(user_channel(self.user_id), event)
        )
        if self.push is not None:
            from synthia_rt.push.sender import Message

            # Built here without a request context: the worker translates it into the user's
            # saved locale, else the run's (the language the user asked in).
            self.push.offer(self.user_id, Message(
                "analysis.done", DONE_TITLE, DONE_BODY.get(event.kind, DONE_BODY["facial"]),
                url=f"/?analysis={self.analysis_id}", translate=True, locale=i18n.current(),
            ))  # fmt: skip

    async def error(self, err: AppError) -> None:
        await self._publish(self.channel, p.AnalysisError.of(self.analysis_id, err))

    async def quiz_estimate(self, event: p.QuizEstimate) -> None:
        await self._publish(self.channel, event)


def ending_of(row: dict[str, Any]) -> p.AnalysisResult | p.AnalysisError | None:
    """The final event of an analysis row (``store.analyses.get``): its result when done, its
    error when failed or cancelled, None while it is still open."""
    if row["status"] in OPEN:
        return None
    if row["status"] == "done":
        return p.AnalysisResult(
            analysis_id=str(row["id"]),
            kind=row["kind"],
            result=row["result"],
            cached=bool(row["cached"]),
            model=row["model"],
            usage=row["usage"] or {},
            duration_ms=row["duration_ms"] or 0,
        )
    error = AppError.restore(row["error_source"], row["error_code"], row["error_message"])
    return p.AnalysisError.of(str(row["id"]), error)
