"""Resumable chunked uploads on the KeyValue seam (Redis in production).

Every byte lives in the shared store, so a client whose connection dropped can reconnect to
ANY node, ask ``upload.status`` and resume. Two keys per upload, both expiring
``upload_ttl`` seconds after the last accepted chunk:

* ``upload:<user>:<analysis>:meta`` — declared size, sha256, kind, and ``complete``;
* ``upload:<user>:<analysis>:data`` — the bytes, appended with ``append_at``, which writes
  only when the stored length equals the chunk's offset (atomic compare-and-append), so two
  nodes racing on the same offset cannot both write and a refused chunk changes nothing.

The user id is part of the key: another user's analysis id simply is not found (``bad_chunk``
without revealing that it exists), and erasing a user is one prefix scan.

Quotas (:mod:`synthia_rt.uploads.quota`): ``create`` charges the declared size to the user's
byte budget and the upload's end (``finish``/``discard``) refunds it; chunks being written
and complete uploads being decoded count against this process's in-flight bytes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import orjson

from synthia_rt import i18n
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.i18n import N_
from synthia_rt.kv.base import KeyValue
from synthia_rt.settings import Settings
from synthia_rt.uploads.quota import ProcessBytes, UserBytes
from synthia_rt.uploads.validate import Decoder, ValidatedImage


@dataclass(slots=True)
class UploadMeta:
    analysis_id: str
    user_id: str
    size: int
    sha256: str
    content_type: str | None
    kind: str
    created_at: float
    complete: bool = False
    # The uploader's language: a node that takes the run over answers in it. None in metas
    # written before it was stored (the run then uses the taking node's current locale).
    locale: str | None = None

    @classmethod
    def load(cls, raw: bytes) -> UploadMeta:
        """From its JSON; fields this version does not know (a newer node wrote it) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in orjson.loads(raw).items() if k in known})


def _bad_chunk(message: str, params: Mapping[str, object] | None = None) -> AppError:
    return AppError(ErrorCode.BAD_CHUNK, message, params=params)


class UploadStore:
    def __init__(self, kv: KeyValue, ttl: float, settings: Settings | None = None) -> None:
        s = settings or Settings()
        self.kv = kv
        self.ttl = ttl
        self.user_bytes = UserBytes(kv, s.upload_user_bytes, ttl)
        self.in_flight = ProcessBytes(s.upload_process_bytes)
        self.decoder = Decoder(s)

    async def validate(self, data: bytes) -> ValidatedImage:
        """Decode and clean a complete upload, holding its bytes against this process's cap."""
        with self.in_flight.hold(len(data)):
            return await self.decoder.validate(data)

    @staticmethod
    def _key(user_id: str, analysis_id: str, part: str) -> str:
        return f"upload:{user_id}:{analysis_id}:{part}"

    async def create(self, meta: UploadMeta) -> None:
        """Start an upload, charging its declared size to the user's byte budget."""
        await self.user_bytes.charge(meta.user_id, meta.size)
        try:
            await self._save(meta)
        except BaseException:
            await self.user_bytes.refund(meta.user_id, meta.size)
            raise

    async def _save(self, meta: UploadMeta) -> None:
        await self.kv.set(
            self._key(meta.user_id, meta.analysis_id, "meta"), orjson.dumps(asdict(meta)), self.ttl
        )

    async def meta(self, user_id: str, analysis_id: str) -> UploadMeta | None:
        raw = await self.kv.get(self._key(user_id, analysis_id, "meta"))
        return UploadMeta.load(raw) if raw else None

    async def offset(self, user_id: str, analysis_id: str) -> int:
        return await self.kv.strlen(self._key(user_id, analysis_id, "data"))

    async def append(
        self, user_id: str, analysis_id: str, offset: int, payload: bytes
    ) -> tuple[UploadMeta, int]:
        """Store ``payload`` at ``offset``; returns (meta, new durable length).

        Raises ``bad_chunk`` — having written nothing — for an unknown, foreign, finished or
        expired upload, a chunk past the declared size, or a wrong offset.
        """
        meta = await self.meta(user_id, analysis_id)
        if meta is None:
            raise _bad_chunk(N_("No upload in progress with this id."))
        if meta.complete:
            raise _bad_chunk(N_("This upload is already complete."))
        if offset < 0 or offset + len(payload) > meta.size:
            raise _bad_chunk(N_("The chunk ends past the declared size."))
        with self.in_flight.hold(len(payload)):
            length = await self.kv.append_at(
                self._key(user_id, analysis_id, "data"), offset, payload, self.ttl
            )
        if length < 0:
            raise _bad_chunk(
                N_("Wrong offset: the upload continues at {offset}."), {"offset": -length - 1}
            )
        await self.kv.expire(self._key(user_id, analysis_id, "meta"), self.ttl)
        return meta, length

    async def read(self, meta: UploadMeta) -> bytes | None:
        """The uploaded bytes, left in place (None if expired): until the run is over, another
        node can run the analysis again from them if this one dies."""
        return await self.kv.get(self._key(meta.user_id, meta.analysis_id, "data"))

    async def close(self, meta: UploadMeta) -> None:
        """The run is over: mark the upload complete (status keeps answering offset == size)
        and drop its bytes. An upload already forgotten (cancelled, erased) stays forgotten."""
        if await self.meta(meta.user_id, meta.analysis_id) is not None:
            meta.complete = True
            await self.create(meta)
        await self.kv.delete(self._key(meta.user_id, meta.analysis_id, "data"))

    async def finish(self, meta: UploadMeta) -> bytes | None:
        """Mark the upload complete and take its bytes out of the store (None if expired)."""
        data = await self.kv.get(self._key(meta.user_id, meta.analysis_id, "data"))
        meta.complete = True
        await self._save(meta)  # status keeps answering offset == size
        await self.kv.delete(self._key(meta.user_id, meta.analysis_id, "data"))
        await self.user_bytes.refund(meta.user_id, meta.size)
        return data

    async def discard_data(self, user_id: str, analysis_id: str) -> None:
        meta = await self.meta(user_id, analysis_id)
        if (
            await self.kv.delete(self._key(user_id, analysis_id, "data"))
            and meta is not None
            and not meta.complete
        ):
            await self.user_bytes.refund(user_id, meta.size)

    async def discard(self, user_id: str, analysis_id: str) -> None:
        meta = await self.meta(user_id, analysis_id)
        await self.kv.delete(
            self._key(user_id, analysis_id, "meta"), self._key(user_id, analysis_id, "data")
        )
        if meta is not None and not meta.complete:
            await self.user_bytes.refund(user_id, meta.size)

    async def erase_user(self, user_id: str) -> int:
        keys = [key async for key in self.kv.scan(f"upload:{user_id}:*")]
        await self.kv.delete(UserBytes._key(user_id))
        return await self.kv.delete(*keys) if keys else 0


def new_meta(
    analysis_id: str, user_id: str, size: int, sha256: str, content_type: str | None, kind: str
) -> UploadMeta:
    """A new upload's meta, in the current (the uploader's) locale."""
    return UploadMeta(
        analysis_id, user_id, size, sha256, content_type, kind, time.time(), locale=i18n.current()
    )
