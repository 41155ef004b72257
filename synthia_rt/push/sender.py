"""Delivery of notifications by Web Push to users who have no open socket in the cluster.

``offer()`` never waits: it puts the notification on a bounded queue (full = dropped and
logged; the notification is still stored and listed by ``GET /notifications``). Worker tasks,
restarted if one ever dies, take it from there:

* the user's sockets are counted cluster-wide (``Presence``); any open socket = not pushed,
  the socket already showed it;
* each subscription gets the small JSON ``{kind, title, body, url?}`` encrypted for it
  (aes128gcm, RFC 8291, by ``pywebpush``) with a VAPID ``Authorization`` (RFC 8292, signed
  by ``py_vapid``), POSTed with ``httpx``;
* 404/410 = the browser unsubscribed: the row is deleted; 429, 5xx and network errors are
  retried ``PUSH_RETRIES`` times after ``PUSH_BACKOFF`` seconds doubling (capped at 60 s);
  any other answer is logged and dropped.

At shutdown (``stop``) no new push is taken; what is queued is delivered for up to
``STOP_GRACE`` seconds, and retries still waiting out their backoff are tried once more then
instead of being forgotten (as many as the queue holds). What is not delivered by then is
logged with its count (the notifications themselves stay stored and listed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from pywebpush import WebPusher

from synthia_rt import i18n
from synthia_rt.push import vapid as vapid_keys
from synthia_rt.store import push as store
from synthia_rt.store import users

if TYPE_CHECKING:
    from synthia_rt.runtime import Runtime

log = logging.getLogger(__name__)

WORKERS = 4
BACKOFF_CAP = 60.0
SEND_TIMEOUT = 10.0
GONE = frozenset({404, 410})
STOP_GRACE = 3.0  # seconds a stopping node keeps delivering what it queued (fits compose's 15 s)


@dataclass(frozen=True)
class Message:
    """A push. With ``translate`` the title and body are msgids, translated when it is sent
    into the recipient's saved locale, else ``locale``, else ``DEFAULT_LOCALE`` (system
    notices are built without a request context); otherwise they go as written (admin text)."""

    kind: str
    title: str
    body: str
    url: str | None = None
    translate: bool = False
    locale: str | None = None

    def localized(self, locale: str) -> Message:
        return replace(
            self,
            title=i18n.gettext(self.title, locale),
            body=i18n.gettext(self.body, locale),
            translate=False,
        )

    def encode(self) -> bytes:
        data: dict[str, str] = {"kind": self.kind, "title": self.title, "body": self.body[:500]}
        if self.url:
            data["url"] = self.url
        return json.dumps(data, separators=(",", ":")).encode()


@dataclass(frozen=True)
class _Job:
    user_id: str | None  # None = every subscribed user (a broadcast)
    message: Message


@dataclass(frozen=True)
class _Retry:
    target: store.Target
    data: bytes
    attempt: int


class Pusher:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.vapid = vapid_keys.load(settings.vapid_private_key)
        self.public_key = vapid_keys.public_key(self.vapid) if self.vapid is not None else None
        self._queue: asyncio.Queue[_Job | _Retry] = asyncio.Queue(
            maxsize=max(1, settings.push_queue_size)
        )
        self._workers: list[asyncio.Task[None]] = []
        self._timers: dict[asyncio.Task[None], _Retry] = {}  # retries waiting out a backoff
        self._client: httpx.AsyncClient | None = None
        self._stopping = False
        self._busy = 0  # items the workers are handling now

    @property
    def enabled(self) -> bool:
        return self.vapid is not None

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if not self.enabled:
            return
        self._client = httpx.AsyncClient(timeout=SEND_TIMEOUT)
        self._workers = [self._spawn_worker(i) for i in range(WORKERS)]

    def _spawn_worker(self, index: int) -> asyncio.Task[None]:
        task = asyncio.ensure_future(self._work())

        def supervise(t: asyncio.Task[None]) -> None:
            if self._stopping or t.cancelled():
                return
            log.error("push worker died; restarting it", exc_info=t.exception())
            self._workers[index] = self._spawn_worker(index)

        task.add_done_callback(supervise)
        return task

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Take no more pushes; deliver what is queued (waiting retries once more, now) for up
        to ``grace`` seconds; then stop the workers."""
        self._stopping = True
        waiting = list(self._timers.items())
        self._timers.clear()
        dropped = 0
        for timer, retry in waiting:
            if not timer.cancel():
                continue  # it already queued its retry
            try:
                self._queue.put_nowait(retry)
            except asyncio.QueueFull:
                dropped += 1
        if self._workers:
            try:
                async with asyncio.timeout(grace):
                    await self._queue.join()
            except TimeoutError:
                # Queued ones never started; those in a worker are cut off with it.
                dropped += self._queue.qsize() + self._busy
        if dropped:
            log.warning("push: %d pushes not delivered before shutdown", dropped)
        tasks = [*self._workers, *(timer for timer, _ in waiting)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def drained(self) -> None:
        """Wait until everything queued was handled (retries still waiting are not counted)."""
        await self._queue.join()

    # --- request path -------------------------------------------------------------------
    def offer(self, user_id: str | None, message: Message) -> bool:
        """Queue a push for ``user_id`` (None: everyone subscribed); never blocks."""
        if not self.enabled or self._stopping:
            return False
        try:
            self._queue.put_nowait(_Job(user_id, message))
            return True
        except asyncio.QueueFull:
            log.warning("push queue full; notification %r not pushed", message.kind)
            return False

    # --- workers ------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            self._busy += 1
            try:
                if isinstance(item, _Retry):
                    if not await store.exists(item.target.endpoint):
                        continue  # unsubscribed (or the account erased) meanwhile
                    await self._send(item.target, item.data, item.attempt)
                else:
                    await self._fan_out(item)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad delivery must not stop the others
                log.exception("push delivery failed")
            finally:
                self._busy -= 1
                self._queue.task_done()

    async def _online(self, user_id: str) -> bool:
        hub = self.runtime.hub
        return hub is not None and await hub.presence.count(user_id) > 0

    async def _payload(self, message: Message, user_id: str) -> bytes:
        """The encoded push for ``user_id``: a system notice in their saved language."""
        if not message.translate:
            return message.encode()
        try:
            saved = await users.saved_locale(user_id)
        except Exception:  # noqa: BLE001 - the database blinked: the run's language will do
            saved = None
        locale = (
            i18n.normalise(saved)
            or i18n.normalise(message.locale)
            or self.runtime.settings.default_locale
        )
        return message.localized(locale).encode()

    async def _fan_out(self, job: _Job) -> None:
        if job.user_id is not None:
            if await self._online(job.user_id):
                return
            targets = await store.of_user(job.user_id)
            if not targets:
                return
            data = await self._payload(job.message, job.user_id)
            await asyncio.gather(*(self._send(t, data, 0) for t in targets))
            return
        after: uuid.UUID | None = None
        online: dict[str, bool] = {}
        shared = None if job.message.translate else job.message.encode()
        while page := await store.everyone(after):
            after = page[-1][0]
            for _, target in page:
                if target.user_id not in online:
                    online[target.user_id] = await self._online(target.user_id)
                if not online[target.user_id]:
                    data = shared or await self._payload(job.message, target.user_id)
                    await self._send(target, data, 0)

    async def _send(self, target: store.Target, data: bytes, attempt: int) -> None:
        assert self.vapid is not None and self._client is not None
        settings = self.runtime.settings
        parts = urlsplit(target.endpoint)
        claims: dict[str, Any] = {
            "sub": settings.vapid_subject,
            "aud": f"{parts.scheme}://{parts.netloc}",
        }
        headers: dict[str, str] = dict(self.vapid.sign(claims))  # exp: now + 24 h by py_vapid
        body = WebPusher(target.info()).encode(data, "aes128gcm")["body"]
        headers.update({
            "Content-Encoding": "aes128gcm", "Content-Type": "application/octet-stream",
            "TTL": str(max(0, settings.push_ttl)), "Urgency": "normal",
        })  # fmt: skip
        try:
            response = await self._client.post(target.endpoint, content=body, headers=headers)
            status: int | None = response.status_code
        except httpx.HTTPError as exc:
            log.info("push to %s failed: %s", parts.netloc, type(exc).__name__)
            status = None
        if status is not None and status < 300:
            return
        if status in GONE:
            await store.forget(target.endpoint)
            log.info("push subscription gone (%s); removed", status)
            return
        if status is not None and status != 429 and status < 500:
            log.warning(
                "push service %s refused a notification with %s; dropped", parts.netloc, status
            )
            return
        if attempt >= settings.push_retries:
            log.warning(
                "push to %s still failing after %d attempts; dropped", parts.netloc, attempt + 1
            )
            return
        self._later(
            min(BACKOFF_CAP, settings.push_backoff * 2**attempt), _Retry(target, data, attempt + 1)
        )

    def _later(self, delay: float, retry: _Retry) -> None:
        if self._stopping:
            log.warning("push still failing at shutdown; not retried")
            return
        if len(self._timers) >= self._queue.maxsize:  # retries waiting are bounded like the queue
            log.warning("too many push retries waiting; one dropped")
            return

        async def wait_then_queue() -> None:
            await asyncio.sleep(delay)
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(retry)

        task = asyncio.ensure_future(wait_then_queue())
        self._timers[task] = retry
        task.add_done_callback(self._forget_timer)

    def _forget_timer(self, task: asyncio.Task[None]) -> None:
        self._timers.pop(task, None)
