"""One analysis from its input to its published result: validate → cache → analyze → persist.

:meth:`Pipeline.run` never raises for an expected failure: it returns the payload of the
``analysis.result`` it published, or the :class:`AppError` it recorded and published as
``analysis.error``. Whatever happens — an error, a cancel, a shutdown — the row leaves
``running`` (``failed``/``cancelled``), the user's slot is released and the raw bytes are
gone. Cancellation is re-raised after that bookkeeping.

Exactly one terminal event: the row's terminal transition is a conditional UPDATE (only from
an open status), and only the caller that won it publishes — after also claiming the
analysis' ending (:class:`~synthia_rt.analysis.claims.Endings`). While the database is
unreachable the pipeline retries its writes with backoff for up to ``DB_RETRY_WINDOW``
seconds; past that it tells the client ``unavailable`` (temporary) and a background task
records the failure once the database is back (or another node's sweeper does, with the
same reason, without publishing again).

The run holds the analysis' lease (``run:<id>``); its watcher renews the lease and the user's
slot every third of ``ANALYSIS_LEASE`` seconds, and obeys the shared cancel flag.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from synthia_rt import i18n
from synthia_rt.analysis import keys, local
from synthia_rt.analysis.analyzer import Analyzer, AnalyzerOutput
from synthia_rt.analysis.cache import ResultCache
from synthia_rt.analysis.claims import Endings, Leases
from synthia_rt.analysis.events import AnalysisEvents
from synthia_rt.analysis.limits import ActiveSlots
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.kv.base import KeyValue
from synthia_rt.realtime import protocol as p
from synthia_rt.runtime import Runtime
from synthia_rt.store import analyses as store
from synthia_rt.store import faults
from synthia_rt.uploads.store import UploadMeta, UploadStore
from synthia_rt.uploads.validate import ValidatedImage, sha256_hex

log = logging.getLogger(__name__)

T = TypeVar("T")

CANCEL_POLL = 0.5  # seconds between checks of the shared cancel flag while running


@dataclass
class Job:
    analysis_id: uuid.UUID
    user_id: str
    kind: str  # facial | chromatic
    cache_key: str
    upload: UploadMeta | None = None  # facial, socket upload: bytes still in the upload store
    raw: bytes | None = None  # facial, REST upload: bytes not yet validated
    sha256: str | None = None  # declared/computed hash of ``raw``
    image: ValidatedImage | None = None  # facial, already validated (file_id)
    file_id: uuid.UUID | None = None  # the REST file the image came from, dropped afterwards
    answers: dict[str, str] = field(default_factory=dict)  # chromatic
    started: float = field(default_factory=time.monotonic)
    db_deadline: float | None = None  # when database retries stop (set at the first failure)
    locale: str = field(default_factory=i18n.current)  # the language of the texts it produces

    @property
    def id(self) -> str:
        return str(self.analysis_id)


class Pipeline:
    def __init__(
        self,
        runtime: Runtime,
        analyzer: Analyzer,
        cache: ResultCache,
        uploads: UploadStore,
        slots: ActiveSlots,
        leases: Leases,
        endings: Endings,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.kv: KeyValue = runtime.need_kv()
        self.analyzer = analyzer
        self.cache = cache
        self.uploads = uploads
        self.slots = slots
        self.leases = leases
        self.endings = endings
        self.recorders: set[asyncio.Task[None]] = (
            set()
        )  # failures to record once the database is back
        # The runs the owner cancelled (:meth:`cancel`); a run cancelled otherwise is a shutdown.
        self._cancelled: set[str] = set()
        self.metrics = runtime.metrics

    def cancel(self, analysis_id: str, runner: asyncio.Task[Any]) -> None:
        """End the run of ``analysis_id`` (its task ``runner``) as the owner's cancel: the row
        ends ``cancelled``. Cancelling the task directly instead records a shutdown."""
        self._cancelled.add(analysis_id)
        runner.cancel()

    async def run(self, job: Job) -> dict[str, Any] | AppError:
        i18n.use(job.locale)  # this task's context: analyzers write in the job's language
        events = AnalysisEvents(self.runtime.need_broker(), job.id, job.user_id, self.runtime.push)
        runner = asyncio.current_task()
        assert runner is not None
        watcher = asyncio.create_task(self._watch(job, runner), name=f"cancel-watch-{job.id}")
        in_flight = self.metrics.analyses_in_flight if self.metrics is not None else None
        if in_flight is not None:
            in_flight.inc()
        try:
            return await self._run(job, events)
        except AppError as err:
            await self._fail(job, events, err)
            return err
        except asyncio.CancelledError:
            if job.id in self._cancelled:
                ended = AppError(ErrorCode.CANCELLED)
            else:
                ended = AppError(
                    ErrorCode.UNAVAILABLE, "The server stopped during the analysis; start it again."
                )
            await self._fail(job, events, ended, patient=False)
            raise
        except Exception as exc:
            if faults.is_unavailable(exc):  # a database call outside the retried ones
                down = faults.unavailable(exc, f"analysis {job.id}")
                await self._fail(job, events, down)
                return down
            log.exception("analysis %s crashed", job.id)
            crashed = AppError(ErrorCode.INTERNAL)
            await self._fail(job, events, crashed)
            return crashed
        finally:
            watcher.cancel()
            self._cancelled.discard(job.id)
            if in_flight is not None:
                in_flight.dec()
            await self._cleanup(job)

    async def _run(self, job: Job, events: AnalysisEvents) -> dict[str, Any]:
        image = job.image
        if job.kind == "facial" and image is None:
            await events.progress("validating")
            image = await self._validate(job)
        await events.progress("queued")
        if await self.kv.exists(keys.cancel(job.id)):
            raise AppError(ErrorCode.CANCELLED)
        if not await self._db(job, lambda: store.mark_running(job.analysis_id), "start"):
            raise AppError(ErrorCode.CANCELLED)  # cancelled while queued
        await events.progress("analyzing")
        if job.kind == "facial":
            assert image is not None
            await self._check_face(image)
            output = await self.analyzer.facial(image, events.partial)
            if self.settings.image_retention > 0:
                await self.kv.set(
                    keys.image(job.user_id, job.id), image.data, self.settings.image_retention
                )
        else:
            output = await self.analyzer.chromatic(job.answers, events.partial)
        return await self._persist(job, events, output)

    async def _check_face(self, image: ValidatedImage) -> None:
        """The local face check before any model call: no face, several faces or a face that
        cannot be judged ends the run here (counted in ``model_calls_saved``)."""
        try:
            await asyncio.to_thread(local.check_image, image.data)
        except AppError as err:
            if self.metrics is not None and self.analyzer.model != local.MODEL:
                self.metrics.model_calls_saved.labels(str(err.code)).inc()
            raise

    async def _validate(self, job: Job) -> ValidatedImage:
        if job.upload is not None:
            data = await self.uploads.read(
                job.upload
            )  # kept until the run ends: another node may rerun it
            if data is None or len(data) != job.upload.size:
                raise AppError(
                    ErrorCode.INVALID_IMAGE, "The upload expired before it could be checked."
                )
            expected: str | None = job.upload.sha256
        else:
            data, expected = job.raw, job.sha256
            job.raw = None
        assert data is not None
        if expected is not None and sha256_hex(data) != expected:
            raise AppError(ErrorCode.HASH_MISMATCH)
        return await self.uploads.validate(data)  # bounded decode, in a thread

    async def _persist(
        self, job: Job, events: AnalysisEvents, output: AnalyzerOutput
    ) -> dict[str, Any]:
        await events.progress("persisting")
        duration_ms = int((time.monotonic() - job.started) * 1000)
        done = await self._db(
            job,
            lambda: store.mark_done(
                job.analysis_id,
                result=output.result,
                usage=output.usage,
                duration_ms=duration_ms,
                model=output.model,
            ),
            "record the result",
        )
        if not done:
            raise AppError(ErrorCode.CANCELLED)  # a cancel (or a sweeper) won the race to the row
        await self.cache.set(
            "analysis",
            job.cache_key,
            {"result": output.result, "model": output.model, "usage": output.usage},
        )
        event = p.AnalysisResult.model_validate(
            {
                "analysis_id": job.id,
                "kind": job.kind,
                "result": output.result,
                "cached": False,
                "model": output.model,
                "usage": output.usage,
                "duration_ms": duration_ms,
            }
        )
        if await self.endings.claim(job.id, None):
            await events.result(event)
        self._count(job.kind, "done", output.usage)
        return event.payload()

    async def _db(self, job: Job, call: Callable[[], Awaitable[T]], what: str) -> T:
        """A database write of this run, retried through an outage until the run's deadline."""

        def give_up_at() -> float:
            if job.db_deadline is None:
                job.db_deadline = time.monotonic() + self.settings.db_retry_window
            return job.db_deadline

        return await faults.retrying(call, give_up_at, f"analysis {job.id}: {what}")

    async def _fail(
        self, job: Job, events: AnalysisEvents, err: AppError, *, patient: bool = True
    ) -> None:
        """Record ``err`` on the row and, if this call ended the analysis, publish it.

        ``patient=False`` (cancel, shutdown): one attempt, no retrying through an outage.
        """
        status = "cancelled" if err.code == ErrorCode.CANCELLED else "failed"

        def mark() -> Awaitable[bool]:
            return store.mark_failed(job.analysis_id, status=status, error=err)

        if not patient:
            job.db_deadline = time.monotonic()
        try:
            changed = await self._db(job, mark, f"record {err.code}")
        except Exception as exc:  # noqa: BLE001 - AppError: still unreachable after the window
            if not isinstance(exc, AppError):
                log.exception("could not record the failure of analysis %s", job.id)
            # Tell the client now, record the row when the database is back.
            if await self.endings.claim(job.id, err):
                await events.error(err)
                self._count(job.kind, status, {})
            self._record_later(job.id, mark)
            return
        if changed and await self.endings.claim(job.id, err):
            await events.error(err)
            self._count(job.kind, status, {})

    def _record_later(self, analysis_id: str, mark: Callable[[], Awaitable[bool]]) -> None:
        async def record() -> None:
            try:
                await faults.retrying(
                    mark,
                    lambda: math.inf,
                    f"analysis {analysis_id}: record the failure later",
                    first_delay=1.0,
                    max_delay=10.0,
                )
            except Exception:  # noqa: BLE001 - the sweeper ends it (with the told reason)
                log.warning("analysis %s: could not record its failure", analysis_id, exc_info=True)

        task = asyncio.create_task(record(), name=f"analysis-record-{analysis_id}")
        self.recorders.add(task)
        task.add_done_callback(self.recorders.discard)

    async def stop(self) -> None:
        """Stop recording failures in the background (another node's sweeper takes over)."""
        for task in list(self.recorders):
            task.cancel()
        if self.recorders:
            await asyncio.wait(list(self.recorders), timeout=1.0)

    async def _cleanup(self, job: Job) -> None:
        """Release the slot and the lease, drop inputs; runs even when cancelled, errors only logged."""
        try:
            await self.slots.release(job.user_id, job.id)
            if job.upload is not None:
                await self.uploads.close(job.upload)  # before the lease goes: nobody reruns it
            await self.leases.release(job.id)
            if job.file_id is not None:
                await self.kv.delete(keys.file(job.user_id, job.file_id))
                await store.delete_image(job.file_id)
        except Exception as exc:  # noqa: BLE001 - TTLs bound what a failed cleanup leaves behind
            log.warning("cleanup of analysis %s incomplete (%s)", job.id, faults.describe(exc))

    async def _watch(self, job: Job, runner: asyncio.Task[Any]) -> None:
        """Renew the lease and the slot (heartbeat); cancel this node's run when the owner
        cancelled it from any node (a kv flag)."""
        beat_every = max(1, int(self.settings.analysis_lease / 3 / CANCEL_POLL))
        ticks = 0
        while True:
            await asyncio.sleep(CANCEL_POLL)
            ticks += 1
            try:
                if ticks % beat_every == 0:
                    await asyncio.gather(
                        self.leases.renew(job.id), self.slots.renew(job.user_id, job.id)
                    )
                flagged = await self.kv.exists(keys.cancel(job.id))
            except Exception as exc:  # noqa: BLE001 - keep watching through a blip
                log.warning(
                    "analysis %s: heartbeat or cancel check failed (%s)",
                    job.id,
                    faults.describe(exc),
                )
                continue
            if flagged:
                self.cancel(job.id, runner)
                return

    def _count(self, kind: str, status: str, usage: dict[str, Any]) -> None:
        if self.metrics is None:
            return
        self.metrics.analyses.labels(kind, status).inc()
        if usage.get("prompt_tokens"):
            self.metrics.tokens_used.labels("prompt").inc(usage["prompt_tokens"])
        if usage.get("output_tokens"):
            self.metrics.tokens_used.labels("candidates").inc(usage["output_tokens"])
