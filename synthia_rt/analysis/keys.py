"""Every key the analysis side keeps in the shared key-value store, spelled once.

| key                          | holds                                                        |
|------------------------------|--------------------------------------------------------------|
| ``owner:<id>``               | who may follow ``analysis:<id>`` (an analysis or a quiz)     |
| ``run:<id>``                 | the node running the analysis (its lease, claims.py)         |
| ``ended:<id>``               | how the analysis ended, as told to its client (claims.py)    |
| ``cancel:<id>``              | the owner asked to cancel (the running node polls it)        |
| ``active:<user>``            | the user's running analyses, scored by expiry (limits.py)    |
| ``file:<user>:<file id>``    | an image uploaded over REST, cleaned, until it is analysed   |
| ``image:<user>:<id>``        | an analysed image kept for ``IMAGE_RETENTION``               |

Quiz answers (``quiz:…``), the result cache (``cache:…``) and upload chunks (``upload:…``,
``upload-bytes:…``) are each spelled in the one module that owns them.
"""

from __future__ import annotations

from synthia_rt.settings import Settings


def record_ttl(settings: Settings) -> float:
    """How long the records of one analysis id (owner, ending) live: while its upload may still
    arrive, and while its channel's history may still be replayed."""
    return max(settings.history_ttl, settings.upload_ttl)


def owner(some_id: str) -> str:
    return f"owner:{some_id}"


def lease(analysis_id: str) -> str:
    return f"run:{analysis_id}"


def ending(analysis_id: str) -> str:
    return f"ended:{analysis_id}"


def cancel(analysis_id: str) -> str:
    return f"cancel:{analysis_id}"


def active(user_id: str) -> str:
    return f"active:{user_id}"


def file(user_id: str, file_id: object) -> str:
    return f"file:{user_id}:{file_id}"


def image(user_id: str, analysis_id: str) -> str:
    return f"image:{user_id}:{analysis_id}"


def user_patterns(user_id: str) -> tuple[str, ...]:
    """Scan patterns of every per-item key of ``user_id`` (files and kept images)."""
    return (f"file:{user_id}:*", f"image:{user_id}:*")
