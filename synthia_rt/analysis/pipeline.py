"""One analysis from its input to its published result: validate → cache → analyze → persist.

:meth:`Pipeline.run` never raises for an expected failure: it returns the payload of the
``analysis.result`` it published, or the :class:`AppError` it recorded and published as
``analysis.error``. Whatever happens — an error, a cancel, a shutdown — the row leaves
``running`` (``failed``/``cancelled``), the user's slot is released and the raw bytes are
gone. Cancellation is re-raised after that bookkeeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from synthia_rt.analysis.analyzer import Analyzer, AnalyzerOutput
from synthia_rt.analysis.cache import ResultCache
from synthia_rt.analysis.events import AnalysisEvents
from synthia_rt.analysis.limits import ActiveSlots
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.kv.base import KeyValue
from synthia_rt.runtime import Runtime
from synthia_rt.store import analyses as store
from synthia_rt.uploads.store import UploadMeta, UploadStore
from synthia_rt.uploads.validate import ValidatedImage, sha256_hex

log = logging.getLogger(__name__)

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

    @property
    def id(self) -> str:
        return str(self.analysis_id)


def cancel_key(analysis_id: str) -> str:
    return f"cancel:{analysis_id}"


class Pipeline:
    def __init__(
        self,
        runtime: Runtime,
        analyzer: Analyzer,
        cache: ResultCache,
        uploads: UploadStore,
        slots: ActiveSlots,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.kv: KeyValue = runtime.need_kv()
        self.analyzer = analyzer
        self.cache = cache
        self.uploads = uploads
        self.slots = slots
        # Why a run was cancelled, set by whoever cancels it: "cancelled" (the owner asked);
        # a run cancelled with no reason recorded is a shutdown.
        self.reasons: dict[str, str] = {}
        self.metrics = runtime.metrics

    async def run(self, job: Job) -> dict[str, Any] | AppError:
        events = AnalysisEvents(self.runtime.need_broker(), job.id, job.user_id)
        runner = asyncio.current_task()
        assert runner is not None
        watcher = asyncio.create_task(self._watch_cancel(job.id, runner), name=f"cancel-watch-{job.id}")
        in_flight = self.metrics.analyses_in_flight if self.metrics is not None else None
        if in_flight is not None:
            in_flight.inc()
        try:
            return await self._run(job, events)
        except AppError as err:
            await self._fail(job, events, err)
            return err
        except asyncio.CancelledError:
            if self.reasons.pop(job.id, "shutdown") == "cancelled":
                ended = AppError(ErrorCode.CANCELLED)
            else:
                ended = AppError(ErrorCode.UNAVAILABLE, "The server stopped during the analysis; start it again.")
            await self._fail(job, events, ended)
            raise
        except Exception:
            log.exception("analysis %s crashed", job.id)
            crashed = AppError(ErrorCode.INTERNAL)
            await self._fail(job, events, crashed)
            return crashed
        finally:
            watcher.cancel()
            if in_flight is not None:
                in_flight.dec()
            await self._cleanup(job)

    async def _run(self, job: Job, events: AnalysisEvents) -> dict[str, Any]:
        image = job.image
        if job.kind == "facial" and image is None:
            await events.progress("validating")
            image = await self._validate(job)
        await events.progress("queued")
        if await self.kv.exists(cancel_key(job.id)):
            raise AppError(ErrorCode.CANCELLED)
        if not await store.mark_running(job.analysis_id):
            raise AppError(ErrorCode.CANCELLED)  # cancelled while queued
        await events.progress("analyzing")
        if job.kind == "facial":
            assert image is not None
            output = await self.analyzer.facial(image, events.partial)
            if self.settings.image_retention > 0:
                await self.kv.set(f"image:{job.user_id}:{job.id}", image.data, self.settings.image_retention)
        else:
            output = await self.analyzer.chromatic(job.answers, events.partial)
        return await self._persist(job, events, output)

    async def _validate(self, job: Job) -> ValidatedImage:
        if job.upload is not None:
            data = await self.uploads.finish(job.upload)
            if data is None or len(data) != job.upload.size:
                raise AppError(ErrorCode.INVALID_IMAGE, "The upload expired before it could be checked.")
            expected: str | None = job.upload.sha256
        else:
            data, expected = job.raw, job.sha256
            job.raw = None
        assert data is not None
        if expected is not None and sha256_hex(data) != expected:
            raise AppError(ErrorCode.HASH_MISMATCH)
        return await self.uploads.validate(data)  # bounded decode, in a thread

    async def _persist(self, job: Job, events: AnalysisEvents, output: AnalyzerOutput) -> dict[str, Any]:
        await events.progress("persisting")
        duration_ms = int((time.monotonic() - job.started) * 1000)
        done = await store.mark_done(
            job.analysis_id, result=output.result, usage=output.usage, duration_ms=duration_ms, model=output.model
        )
        if not done:
            raise AppError(ErrorCode.CANCELLED)  # a cancel won the race to the row
        await self.cache.set("analysis", job.cache_key, {"result": output.result, "model": output.model, "usage": output.usage})
        row = await store.get(job.analysis_id)
        assert row is not None
        payload = store.result_payload(row)
        await events.result(payload)
        self._count(job.kind, "done", output.usage)
        return payload

    async def _fail(self, job: Job, events: AnalysisEvents, err: AppError) -> None:
        status = "cancelled" if err.code == ErrorCode.CANCELLED else "failed"
        try:
            changed = await store.mark_failed(job.analysis_id, status=status, code=str(err.code), message=err.message)
        except Exception:  # noqa: BLE001 - the database may be the reason we are failing
            log.exception("could not record the failure of analysis %s", job.id)
            changed = True  # still tell the client
        if changed:
            await events.error(err)
            self._count(job.kind, status, {})

    async def _cleanup(self, job: Job) -> None:
        """Release the slot and drop inputs; runs even when cancelled, errors only logged."""
        try:
            await self.slots.release(job.user_id, job.id)
            if job.upload is not None:
                await self.uploads.discard_data(job.user_id, job.id)
            if job.file_id is not None:
                await self.kv.delete(f"file:{job.user_id}:{job.file_id}")
                await store.delete_image(job.file_id)
        except Exception:  # noqa: BLE001 - TTLs bound what a failed cleanup leaves behind
            log.warning("cleanup of analysis %s incomplete", job.id, exc_info=True)

    async def _watch_cancel(self, analysis_id: str, runner: asyncio.Task[Any]) -> None:
        """Cancel this node's run when the owner cancelled it from any node (a kv flag)."""
        while True:
            await asyncio.sleep(CANCEL_POLL)
            try:
                flagged = await self.kv.exists(cancel_key(analysis_id))
            except Exception:  # noqa: BLE001 - keep watching through a blip
                log.warning("cancel flag check failed", exc_info=True)
                continue
            if flagged:
                self.reasons[analysis_id] = "cancelled"
                runner.cancel()
                return

    def _count(self, kind: str, status: str, usage: dict[str, Any]) -> None:
        if self.metrics is None:
            return
        self.metrics.analyses.labels(kind, status).inc()
        if usage.get("prompt_tokens"):
            self.metrics.tokens_used.labels("prompt").inc(usage["prompt_tokens"])
        if usage.get("output_tokens"):
            self.metrics.tokens_used.labels("candidates").inc(usage["output_tokens"])
