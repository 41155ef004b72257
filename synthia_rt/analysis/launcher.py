"""Starting analysis runs and keeping track of them on this node.

Every way into the pipeline (socket upload, REST file, quiz, REST direct) goes through here:
answer from the cache if possible (a finished row, committed, then published), else take a
slot of the user's concurrency limit, insert the ``queued`` row, record the owner, take the
analysis' lease (:mod:`~synthia_rt.analysis.claims`) and run the
:class:`~synthia_rt.analysis.pipeline.Pipeline` in a supervised task that ``stop()`` cancels
(the pipeline then records the shutdown on the row).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from synthia_rt import i18n
from synthia_rt.analysis import keys
from synthia_rt.analysis.analyzer import Analyzer
from synthia_rt.analysis.cache import ResultCache, analysis_key
from synthia_rt.analysis.events import AnalysisEvents
from synthia_rt.analysis.limits import ActiveSlots
from synthia_rt.analysis.pipeline import Job, Pipeline
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError
from synthia_rt.realtime import protocol as p
from synthia_rt.runtime import Runtime
from synthia_rt.store import analyses as store
from synthia_rt.store import plans

log = logging.getLogger(__name__)

STOP_GRACE = 10.0  # seconds stop() waits for cancelled runs to record their end


class Launcher:
    def __init__(
        self,
        runtime: Runtime,
        analyzer: Analyzer,
        cache: ResultCache,
        slots: ActiveSlots,
        pipeline: Pipeline,
    ) -> None:
        self.runtime = runtime
        self.analyzer = analyzer
        self.cache = cache
        self.slots = slots
        self.pipeline = pipeline
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.jobs: dict[str, Job] = {}

    def version(self) -> str:
        """The prompt version with the current locale: results in one language are never
        served in another (part of the cache key and stored on the row)."""
        return f"{self.analyzer.prompt_version}+{i18n.current()}"

    def key(self, user_id: str, kind: str, digest: str) -> str:
        return analysis_key(user_id, kind, digest, self.analyzer.model, self.version())

    def events(self, analysis_id: str, user_id: str) -> AnalysisEvents:
        return AnalysisEvents(self.runtime.need_broker(), analysis_id, user_id, self.runtime.push)

    async def set_owner(self, some_id: str, user_id: str) -> None:
        """Who may follow ``analysis:<some_id>`` (an analysis or a quiz), for any node."""
        ttl = keys.record_ttl(self.runtime.settings)
        await self.runtime.need_kv().set(keys.owner(some_id), user_id.encode(), ttl)

    async def from_cache(
        self,
        user: Principal,
        kind: str,
        digest: str,
        inputs: dict[str, Any],
        analysis_id: uuid.UUID,
    ) -> dict[str, Any] | None:
        """If cached: record a finished row, publish its result, return the payload."""
        hit = await self.cache.get("analysis", self.key(user.user_id, kind, digest))
        if hit is None:
            return None
        # The row (committed before anyone is told) and the owner record go out together, and
        # the payload is built from what was just written rather than read back.
        await asyncio.gather(
            store.create_cached(
                analysis_id,
                user.user_id,
                kind,
                inputs=inputs,
                image_sha256=digest if kind == "facial" else None,
                model=hit["model"],
                prompt_version=self.version(),
                result=hit["result"],
                usage={},
            ),
            self.set_owner(str(analysis_id), user.user_id),
        )
        event = p.AnalysisResult.model_validate(
            {
                "analysis_id": str(analysis_id),
                "kind": kind,
                "result": hit["result"],
                "cached": True,
                "model": hit["model"],
                "usage": {},
                "duration_ms": 0,
            }
        )
        await self.events(str(analysis_id), user.user_id).result(event)
        return event.payload()

    async def acquire(
        self, user: Principal, analysis_id: str, lifetime: float | None = None
    ) -> None:
        try:
            await self.slots.acquire(user.user_id, analysis_id, lifetime)
        except AppError:
            if self.runtime.metrics is not None:
                self.runtime.metrics.rate_limited.labels("analysis").inc()
            raise

    async def open(
        self,
        user: Principal,
        aid: uuid.UUID,
        kind: str,
        inputs: dict[str, Any],
        sha: str | None,
        lifetime: float | None = None,
    ) -> None:
        """Take a slot, charge the quota and insert the queued row (both given back if it fails)."""
        await self.acquire(user, str(aid), lifetime)
        try:
            # The plan's monthly quota (store/plans.py): charged here, refunded if the row fails.
            async with plans.charged(
                user.user_id, self.analyzer.model, self.runtime.settings.free_analyses_per_month
            ):
                await store.create(
                    aid,
                    user.user_id,
                    kind,
                    inputs=inputs,
                    image_sha256=sha,
                    model=self.analyzer.model,
                    prompt_version=self.version(),
                )
                await self.set_owner(str(aid), user.user_id)
        except BaseException:
            await self.slots.release(user.user_id, str(aid))
            raise

    async def start_job(
        self,
        user: Principal,
        aid: uuid.UUID,
        kind: str,
        inputs: dict[str, Any],
        digest: str,
        **job: Any,
    ) -> asyncio.Task[Any]:
        await self.open(user, aid, kind, inputs, digest if kind == "facial" else None)
        task = await self.run_claimed(
            Job(aid, user.user_id, kind, self.key(user.user_id, kind, digest), **job)
        )
        assert task is not None, "a new analysis id has no lease yet"
        return task

    async def run_claimed(self, job: Job) -> asyncio.Task[Any] | None:
        """Run ``job`` here if this node takes its lease; None when another node holds it."""
        return self.spawn(job) if await self.pipeline.leases.claim(job.id) else None

    def spawn(self, job: Job) -> asyncio.Task[Any]:
        task = asyncio.create_task(self.pipeline.run(job), name=f"analysis-{job.id}")
        self.tasks[job.id] = task
        self.jobs[job.id] = job

        def done(t: asyncio.Task[Any]) -> None:
            self.tasks.pop(job.id, None)
            self.jobs.pop(job.id, None)
            report(t)

        task.add_done_callback(done)
        return task

    def cancel_local(self, analysis_id: str) -> bool:
        """Cancel the run if it is on this node (as the owner's cancel); False if not here."""
        task = self.tasks.get(analysis_id)
        if task is None:
            return False
        self.pipeline.cancel(analysis_id, task)
        return True

    def cancel_user(self, user_id: str) -> None:
        for key, job in list(self.jobs.items()):
            if job.user_id == user_id:
                self.cancel_local(key)

    async def stop(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()  # no reason recorded: the pipeline reports a shutdown
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
            if pending:
                log.error("%d analyses did not finish their shutdown bookkeeping", len(pending))
        await self.pipeline.stop()


def report(task: asyncio.Task[Any]) -> None:
    """Supervision: a background task that dies of an unexpected error is logged loudly."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background task %s died", task.get_name(), exc_info=exc)
