"""The analysis service: the one object the socket session and the REST shim call.

It checks each request, then hands over to the parts: the upload store (chunks), the
:class:`~synthia_rt.analysis.launcher.Launcher` (cache, slot, row, supervised task), the
:class:`~synthia_rt.analysis.pipeline.Pipeline` (validate → analyze → persist → publish) and
the :class:`~synthia_rt.analysis.quiz_flow.QuizFlow`. Every piece of state a second node
might need — upload bytes, quiz answers, cancel flags, owners, slots, cache — is in the
shared store; only the running tasks are local.

Every public method maps a database outage to ``AppError(UNAVAILABLE)``
(:func:`synthia_rt.store.faults.guard`): the socket session and REST both answer it as a
temporary refusal, never as ``internal``.

Any node can finish what another started: a fully uploaded analysis that no node runs (its
node died after the last chunk) is claimed — through its lease — by ``upload.status`` on any
node or by the sweeper, which runs every couple of seconds on every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from synthia_rt import i18n
from synthia_rt.analysis import keys, quiz
from synthia_rt.analysis.analyzer import Analyzer
from synthia_rt.analysis.cache import ResultCache
from synthia_rt.analysis.claims import Endings, Leases
from synthia_rt.analysis.events import ending_of
from synthia_rt.analysis.launcher import Launcher, report
from synthia_rt.analysis.limits import UPLOAD_IDLE, ActiveSlots
from synthia_rt.analysis.pipeline import Job, Pipeline
from synthia_rt.analysis.quiz_flow import QuizFlow
from synthia_rt.analysis.quiz_store import QuizStore
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode, counted
from synthia_rt.limiter import rule
from synthia_rt.realtime import protocol as p
from synthia_rt.realtime.channels import analysis_channel, analysis_id_of
from synthia_rt.runtime import Runtime
from synthia_rt.settings import Settings
from synthia_rt.store import analyses as store
from synthia_rt.store import faults
from synthia_rt.store.ids import as_uuid
from synthia_rt.store.tables import utcnow
from synthia_rt.uploads.store import UploadMeta, UploadStore, new_meta
from synthia_rt.uploads.validate import MIME, ValidatedImage, sha256_hex

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
SWEEP_INTERVAL = 2.0  # mean seconds between sweeps (jittered): orphans are taken over this fast
LEASE_POLL = 0.25  # seconds between looks at a lease this node waits for
FULL_SWEEP_EVERY = 30  # sweeps; the others only look at rows younger than an upload's lifetime


def _bad(field: str, message: str) -> AppError:
    return AppError(ErrorCode.BAD_REQUEST, message, field=field)


def _parse_id(value: object, field: str = "analysis_id") -> uuid.UUID:
    parsed = as_uuid(value if not isinstance(value, uuid.UUID) else str(value))
    if parsed is None:
        raise _bad(field, f"{field} must be a UUID.")
    return parsed


def create_analyzer(settings: Settings, metrics: Any = None) -> Analyzer:
    """The analyzer ``settings.effective_analyzer`` names (imported only when chosen)."""
    if settings.effective_analyzer == "gemini":
        from synthia_rt.analysis.gemini import GeminiAnalyzer

        return GeminiAnalyzer(settings, metrics)
    from synthia_rt.analysis.local import LocalAnalyzer

    return LocalAnalyzer(settings)


class AnalysisService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.analyzer: Analyzer = create_analyzer(self.settings, runtime.metrics)
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False
        self._suspects: set[str] = set()  # open rows seen without a lease by the last sweep
        self._awaiting: set[str] = set()  # uploads whose lease this node waits to lapse
        self._watchers: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        kv = self.runtime.need_kv()
        s = self.settings
        self.cache = ResultCache(kv, s, self.runtime.metrics)
        self.uploads = UploadStore(kv, s.upload_ttl, s)
        self.upload_rule = rule(s.upload_rate_limit)
        self.slots = ActiveSlots(kv, s.max_analyses_per_user, s.analysis_lease)
        self.leases = Leases(kv, self.runtime.node_id, s.analysis_lease)
        self.endings = Endings(kv, keys.record_ttl(s))
        self.pipeline = Pipeline(
            self.runtime,
            self.analyzer,
            self.cache,
            self.uploads,
            self.slots,
            self.leases,
            self.endings,
        )
        self.launch = Launcher(self.runtime, self.analyzer, self.cache, self.slots, self.pipeline)
        self.quiz = QuizFlow(self.launch, QuizStore(kv, s.history_ttl))
        await self.analyzer.start()
        self.runtime.erase_user_hooks.append(self.erase_user)
        self.runtime.final_events["analysis"] = self.final_event_of_channel
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="analysis-sweeper")
        self._sweeper.add_done_callback(report)

    async def stop(self) -> None:
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for watcher in list(self._watchers):
            watcher.cancel()
        if hasattr(self, "launch"):  # start() may have failed before building it
            await self.launch.stop()
        await self.analyzer.close()

    def _refuse_when_stopping(self) -> None:
        if self._stopping:
            raise AppError(
                ErrorCode.UNAVAILABLE, "This node is shutting down; reconnect and retry."
            )

    # -- facial analysis over the socket -------------------------------------------------------
    @faults.guard
    async def start_analysis(
        self,
        user: Principal,
        *,
        kind: str,
        content_type: str | None,
        size: int | None,
        sha256: str | None,
        file_id: str | None,
    ) -> dict[str, Any]:
        self._refuse_when_stopping()
        if kind != "facial":
            raise _bad("kind", 'kind must be "facial" (chromatic analyses start with quiz.start).')
        if file_id is not None:
            return await self._start_from_file(user, file_id)
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise _bad("size", "size must be a positive integer (bytes).")
        if size > self.settings.max_image_bytes:
            raise AppError(ErrorCode.TOO_LARGE, field="size")
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise _bad("sha256", "sha256 must be 64 hexadecimal characters.")
        if content_type is not None and (
            not isinstance(content_type, str) or len(content_type) > 100
        ):
            raise _bad("content_type", "content_type must be a short string.")
        sha = sha256.lower()
        inputs = {"size": size, "sha256": sha, "content_type": content_type}
        aid = uuid.uuid4()
        reply = {"analysis_id": str(aid), "channel": analysis_channel(str(aid))}
        if await self.launch.from_cache(user, "facial", sha, inputs, aid) is not None:
            return {**reply, "cached": True}
        await self.launch.open(user, aid, "facial", inputs, sha, lifetime=UPLOAD_IDLE)
        try:
            await self.uploads.create(
                new_meta(str(aid), user.user_id, size, sha, content_type, "facial")
            )
        except BaseException:
            await self.slots.release(user.user_id, str(aid))
            raise
        await self.launch.events(str(aid), user.user_id).progress("uploading", 0)
        return {**reply, "upload": {"offset": 0, "max_chunk_bytes": self.settings.max_chunk_bytes}}

    async def _start_from_file(self, user: Principal, file_id: str) -> dict[str, Any]:
        aid = uuid.uuid4()
        reply = {"analysis_id": str(aid), "channel": analysis_channel(str(aid))}
        cached, _ = await self._launch_file(user, file_id, aid)
        return {**reply, "cached": cached is not None}

    async def _launch_file(
        self, user: Principal, file_id: str, aid: uuid.UUID
    ) -> tuple[dict[str, Any] | None, asyncio.Task[Any] | None]:
        """Start analysing a kept upload: ``(cached payload, None)`` or ``(None, running task)``."""
        record = await store.get_image(user.user_id, file_id) if isinstance(file_id, str) else None
        data = (
            await self.runtime.need_kv().get(keys.file(user.user_id, file_id)) if record else None
        )
        if record is None or data is None:
            raise AppError(
                ErrorCode.NOT_FOUND, "No such uploaded file (it may have expired).", field="file_id"
            )
        sha = record["sha256"]
        inputs = {"file_id": str(record["id"]), "sha256": sha}
        cached = await self.launch.from_cache(user, "facial", sha, inputs, aid)
        if cached is not None:
            return cached, None
        fmt = next(f for f, mime in MIME.items() if mime == record["content_type"])
        image = ValidatedImage(data, fmt, 0, 0)
        task = await self.launch.start_job(
            user, aid, "facial", inputs, sha, image=image, file_id=record["id"]
        )
        await self.uploads.user_bytes.refund(user.user_id, len(data))  # the run deletes the file
        return None, task

    @faults.guard
    async def upload_chunk(
        self, user: Principal, analysis_id: uuid.UUID, offset: int, payload: bytes
    ) -> dict[str, Any]:
        """Store one chunk; returns the ``upload.progress`` fields for the uploading socket.

        Not published on the channel: the broker owns ``offset`` in channel events (it would
        overwrite the byte offset), and the acknowledgement concerns only the uploader —
        other sockets ask ``upload.status``. The session sends it as a direct event.
        """
        self._refuse_when_stopping()  # a completed upload must not start a run stop() cannot see
        if len(payload) == 0 or len(payload) > self.settings.max_chunk_bytes:
            raise AppError(ErrorCode.BAD_CHUNK, "A chunk carries 1 to max_chunk_bytes bytes.")
        aid = str(analysis_id)
        meta, length = await self.uploads.append(user.user_id, aid, offset, payload)
        complete = length == meta.size
        await self.slots.renew(user.user_id, aid, None if complete else UPLOAD_IDLE)
        if (
            complete
        ):  # append_at is atomic: exactly one chunk completes an upload; the lease, one run
            await self.launch.run_claimed(self._upload_job(user.user_id, aid, meta))
        return {"analysis_id": aid, "offset": length, "size": meta.size}

    def _upload_job(self, user_id: str, aid: str, meta: UploadMeta) -> Job:
        """The run of a complete upload, in its uploader's locale (stored in the meta): a node
        taking it over (sweeper, ``upload.status``) answers in it, not in its own context's."""
        with i18n.using(meta.locale or i18n.current()):
            return Job(
                uuid.UUID(aid),
                user_id,
                "facial",
                self.launch.key(user_id, "facial", meta.sha256),
                upload=meta,
            )

    @faults.guard
    async def upload_status(self, user: Principal, analysis_id: uuid.UUID | str) -> dict[str, int]:
        """Where the upload stands; a complete upload that no node runs is started here."""
        aid = str(_parse_id(analysis_id))
        meta = await self.uploads.meta(user.user_id, aid)
        if meta is None:
            raise AppError(
                ErrorCode.NOT_FOUND,
                "No upload with this id (it may have expired).",
                field="analysis_id",
            )
        offset = meta.size if meta.complete else await self.uploads.offset(user.user_id, aid)
        if (
            offset == meta.size
            and not meta.complete
            and not self._stopping
            and aid not in self._awaiting
        ):
            if not await self._take_over(user.user_id, aid, meta):
                self._await_lease(user.user_id, aid, meta)
        return {"offset": offset, "size": meta.size}

    def _await_lease(self, user_id: str, aid: str, meta: UploadMeta) -> None:
        """Its client is back and asking: take the analysis over the moment its lease lapses
        (if its node is alive the lease is renewed and this gives up), not at the next sweep."""

        async def watch() -> None:
            try:
                give_up = asyncio.get_running_loop().time() + 2 * self.settings.analysis_lease
                while await self.leases.held(aid):
                    if asyncio.get_running_loop().time() > give_up:
                        return
                    await asyncio.sleep(LEASE_POLL)
                await self._take_over(user_id, aid, meta)
            except Exception as exc:  # noqa: BLE001 - the sweeper is still there
                log.warning("analysis %s: take-over failed (%s)", aid, faults.describe(exc))
            finally:
                self._awaiting.discard(aid)

        self._awaiting.add(aid)
        task = asyncio.create_task(watch(), name=f"analysis-await-{aid}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _take_over(self, user_id: str, aid: str, meta: UploadMeta) -> bool:
        """Run a fully uploaded analysis whose node is gone (its lease lapsed); True if started here."""
        if aid in self.launch.tasks or not await self.leases.claim(aid):
            return False
        row = await store.get(aid)
        if row is None or row["status"] not in store.OPEN:  # it ended meanwhile
            await self.leases.release(aid)
            return False
        await self.slots.renew(user_id, aid)  # its slot, held again by this node's heartbeat
        log.info("analysis %s: taken over by this node (its node stopped)", aid)
        self.launch.spawn(self._upload_job(user_id, aid, meta))
        return True

    @faults.guard
    async def cancel(self, user: Principal, analysis_id: uuid.UUID | str) -> None:
        aid = _parse_id(analysis_id)
        key = str(aid)
        if await self.owner_of(key) != user.user_id:
            raise AppError(ErrorCode.NOT_FOUND, "No such analysis.", field="analysis_id")
        row = await store.get(aid)
        if row is None or row["status"] in store.TERMINAL:
            return  # a quiz not yet submitted, or already over: nothing to stop
        await self.runtime.need_kv().set(keys.cancel(key), b"1", self.settings.history_ttl)
        if self.launch.cancel_local(key):
            return
        # Not running here. Still uploading? Then nothing runs anywhere: end it now. Else the
        # node running it sees the flag within CANCEL_POLL seconds.
        meta = await self.uploads.meta(user.user_id, key)
        if meta is not None and not meta.complete:
            await self.uploads.discard(user.user_id, key)
            await self._end_unstarted(aid, user.user_id, AppError(ErrorCode.CANCELLED), "cancelled")

    async def _end_unstarted(
        self, aid: uuid.UUID, user_id: str, err: AppError, status: str
    ) -> bool:
        """End an analysis no node runs; only the caller whose UPDATE ended it, and that is
        first to claim its ending, publishes (one terminal event per analysis)."""
        if not await store.mark_failed(aid, status=status, error=err):
            return False
        await self.slots.release(user_id, str(aid))
        if await self.endings.claim(str(aid), err):
            await self.launch.events(str(aid), user_id).error(err)
        return True

    # -- the colour quiz (state and scoring in quiz_flow) ----------------------------------------
    @faults.guard
    async def quiz_start(self, user: Principal, locale: str | None = None) -> dict[str, Any]:
        self._refuse_when_stopping()
        return await self.quiz.start(user, locale)

    @faults.guard
    async def quiz_answer(
        self, user: Principal, quiz_id: str, question: str, answer: str
    ) -> dict[str, Any]:
        return await self.quiz.answer(user, quiz_id, question, answer)

    @faults.guard
    async def quiz_submit(self, user: Principal, quiz_id: str) -> dict[str, Any]:
        self._refuse_when_stopping()
        return await self.quiz.submit(user, quiz_id)

    # -- REST compatibility: the same pipeline, awaited -------------------------------------------
    @faults.guard
    async def analyze_image_now(self, user: Principal, data: bytes) -> dict[str, Any]:
        """Validate and analyse ``data``; returns the ``analysis.result`` payload or raises."""
        self._refuse_when_stopping()
        if len(data) > self.settings.max_image_bytes:
            raise AppError(ErrorCode.TOO_LARGE)
        sha = sha256_hex(data)
        inputs = {"size": len(data), "sha256": sha, "via": "rest"}
        aid = uuid.uuid4()
        cached = await self.launch.from_cache(user, "facial", sha, inputs, aid)
        if cached is not None:
            return cached
        task = await self.launch.start_job(user, aid, "facial", inputs, sha, raw=data, sha256=sha)
        return _outcome(await asyncio.shield(task))

    @faults.guard
    async def analyze_file_now(self, user: Principal, file_id: str) -> dict[str, Any]:
        """Analyse an image kept by ``POST /files/upload``; the ``analysis.result`` payload."""
        self._refuse_when_stopping()
        cached, task = await self._launch_file(user, file_id, uuid.uuid4())
        if cached is not None:
            return cached
        assert task is not None
        return _outcome(await asyncio.shield(task))

    @faults.guard
    async def analyze_answers_now(self, user: Principal, answers: dict[str, str]) -> dict[str, Any]:
        self._refuse_when_stopping()
        for question, answer in answers.items():
            quiz.check_answer(question, answer)
        if len(answers) < quiz.MIN_ANSWERS:
            raise counted(
                ErrorCode.VALIDATION_ERROR,
                "Answer at least {n} question.",
                "Answer at least {n} questions.",
                quiz.MIN_ANSWERS,
                field="answers",
            )
        aid = uuid.uuid4()
        task = await self.quiz.start_chromatic(user, aid, answers)
        if task is None:
            row = await store.get(aid)
            ending = ending_of(row) if row is not None else None
            assert isinstance(ending, p.AnalysisResult), "a cached quiz analysis is a finished row"
            return ending.payload()
        return _outcome(await asyncio.shield(task))

    @contextlib.asynccontextmanager
    async def file_upload(self, user: Principal, body_bytes: int) -> AsyncIterator[uuid.UUID]:
        """Admit one ``POST /files/upload`` before its body is read: the per-user upload rate,
        an analysis slot (an upload being checked counts like a running analysis) and
        ``body_bytes`` of this process's in-flight budget, held until the request ends.
        Yields the new file's id."""
        self._refuse_when_stopping()
        await self.runtime.need_limiter().hit(
            self.upload_rule, "upload", user.user_id, message="Too many uploads; try again later."
        )
        file_id = uuid.uuid4()
        await self.slots.acquire(user.user_id, str(file_id), UPLOAD_IDLE)
        try:
            with self.uploads.in_flight.hold(body_bytes):
                yield file_id
        finally:
            await self.slots.release(user.user_id, str(file_id))

    @faults.guard
    async def store_file(
        self, user: Principal, data: bytes, file_id: uuid.UUID | None = None
    ) -> dict[str, Any]:
        """Validate an image uploaded over REST and keep it (cleaned) for a later analysis."""
        s = self.settings
        image = await self.uploads.decoder.validate(data)
        file_id = file_id or uuid.uuid4()
        expires = utcnow() + timedelta(seconds=s.upload_ttl)
        await self.uploads.user_bytes.charge(user.user_id, len(image.data))
        try:
            await self.runtime.need_kv().set(
                keys.file(user.user_id, file_id), image.data, s.upload_ttl
            )
        except BaseException:
            await self.uploads.user_bytes.refund(user.user_id, len(image.data))
            raise
        sha = sha256_hex(
            data
        )  # of the original bytes: the same image over the socket hits the cache
        await store.add_image(
            file_id,
            user.user_id,
            sha256=sha,
            content_type=image.mime,
            size=len(data),
            expires_at=expires,
        )
        return {
            "file_id": str(file_id),
            "sha256": sha,
            "size": len(data),
            "content_type": image.mime,
            "expires_at": expires.isoformat(),
        }

    # -- what the session and the rest of the house ask -------------------------------------------
    @faults.guard
    async def owner_of(self, analysis_id: str) -> str | None:
        raw = await self.runtime.need_kv().get(keys.owner(analysis_id))
        if raw is not None:
            return raw.decode()
        return await store.owner(analysis_id)

    @faults.guard
    async def final_event(self, analysis_id: str) -> p.AnalysisResult | p.AnalysisError | None:
        """The outcome of a finished analysis, from the database, for re-delivery on subscribe:
        its ``analysis.result``, an ``analysis.error`` for a failed or cancelled one, or None
        while it is still open or unknown."""
        row = await store.get(analysis_id)
        return ending_of(row) if row is not None else None

    async def final_event_of_channel(
        self, channel: str
    ) -> p.AnalysisResult | p.AnalysisError | None:
        """:meth:`final_event` of an ``analysis:<id>`` channel (None for a malformed id)."""
        analysis_id = analysis_id_of(channel)
        return await self.final_event(analysis_id) if analysis_id is not None else None

    async def cache_stats(self) -> dict[str, dict[str, float]]:
        return await self.cache.stats()

    async def erase_user(self, user_id: str) -> None:
        """Forget a user's images, uploads, quiz answers and cached results (rows go with the user)."""
        self.launch.cancel_user(user_id)
        kv = self.runtime.need_kv()
        await self.uploads.erase_user(user_id)
        await self.quiz.store.erase_user(user_id)
        await self.cache.delete_prefix("analysis", f"{user_id}:")
        for pattern in keys.user_patterns(user_id):
            found = [k async for k in kv.scan(pattern)]
            if found:
                await kv.delete(*found)
        await kv.delete(keys.active(user_id))
        await store.delete_user_images(user_id)

    # -- housekeeping ---------------------------------------------------------------------------
    async def sweep_abandoned(self, older_than: float | None = None, full: bool = True) -> int:
        """End or take over open analyses that no node runs (no lease, not running here).

        * fully uploaded, not running anywhere → run it here (``_take_over``);
        * still uploading → left alone; its upload expired → ``cancelled``;
        * its node died (running, or a queued REST/quiz run) → ``failed`` ``unavailable``, or
          with the reason its client was already told (without publishing again).

        A running row is acted on only when the previous sweep also saw it without a lease
        (a Redis restart loses every lease for a moment; heartbeats restore them). A given
        ``older_than`` (tests, operators) skips every grace period. ``full=False`` only looks
        at rows younger than an upload's lifetime (the frequent sweep).
        """
        s = self.settings
        forced = older_than is not None
        now = utcnow()
        expired_before = now - timedelta(
            seconds=s.upload_ttl + 60 if older_than is None else older_than
        )
        created_before = now - timedelta(seconds=0 if forced else s.analysis_lease)
        created_after = None if full else now - timedelta(seconds=s.upload_ttl + 600)
        suspects, self._suspects = self._suspects, set()
        swept = 0
        for row in await store.open_rows(created_before, created_after):
            aid, user_id = str(row["id"]), str(row["user"])
            if aid in self.launch.tasks or await self.leases.held(aid):
                continue
            meta = await self.uploads.meta(user_id, aid)
            if meta is not None and not meta.complete:
                if await self.uploads.offset(user_id, aid) != meta.size:
                    continue  # still uploading (the client resumes on any node)
                if row["status"] == "queued" or forced or aid in suspects:
                    swept += await self._take_over(user_id, aid, meta)
                else:
                    self._suspects.add(aid)
                continue
            if row["status"] == "queued" and meta is None and _socket_upload(row):
                if row["created_at"] < expired_before:
                    err = AppError(ErrorCode.CANCELLED, "The upload expired before it completed.")
                    swept += await self._end_unstarted(row["id"], user_id, err, "cancelled")
                continue
            if not forced and aid not in suspects:
                self._suspects.add(aid)
                continue
            err = await self.endings.told(aid) or AppError(
                ErrorCode.UNAVAILABLE, "The node running this analysis stopped; start it again."
            )
            swept += await self._end_unstarted(
                row["id"],
                user_id,
                err,
                "cancelled" if err.code == ErrorCode.CANCELLED else "failed",
            )
        return swept

    async def _sweep_loop(self) -> None:
        rounds = 0
        failing = False
        while True:
            await asyncio.sleep(SWEEP_INTERVAL * (0.5 + random.random()))  # noqa: S311 - jitter only
            rounds += 1
            try:
                await self.sweep_abandoned(full=rounds % FULL_SWEEP_EVERY == 0)
            except Exception as exc:  # noqa: BLE001 - try again next round
                if not failing:
                    log.warning(
                        "sweep for abandoned analyses failed (%s); retrying every few seconds",
                        faults.describe(exc),
                    )
                failing = True
            else:
                if failing:
                    log.warning("sweep for abandoned analyses works again")
                failing = False


def _socket_upload(row: dict[str, Any]) -> bool:
    inputs = row["inputs"] if isinstance(row["inputs"], dict) else {}
    return "size" in inputs and "via" not in inputs


def _outcome(result: dict[str, Any] | AppError) -> dict[str, Any]:
    if isinstance(result, AppError):
        raise result
    return result
