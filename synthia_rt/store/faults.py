"""Telling "the database is unreachable" apart from a bug, and saying so the same way everywhere.

A lost or refused connection is an outage, not a defect: it becomes ``AppError(UNAVAILABLE)``
(HTTP 503 with ``Retry-After``, ``temporary: true`` on the socket) and one WARNING line, never
an ``internal`` error with a traceback. The REST exception handler, the token cutoff loader,
the analysis service and the pipeline all classify with :func:`is_unavailable`.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import asyncpg

from synthia_rt.errors import AppError, ErrorCode

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

RETRY_AFTER = 5.0  # seconds a client is told to wait
MESSAGE = "The database is unreachable; retry shortly."

# Connection-level failures. PostgresConnectionError is SQLSTATE class 08 (the connection
# does not exist / failed); OperatorInterventionError is class 57 (admin/crash shutdown,
# cannot connect now); InterfaceError covers a pool or connection closed under a query.
_ASYNCPG = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.InterfaceError,
)
_SQLITE_TRANSIENT = ("database is locked", "unable to open database", "disk i/o error")
_NET_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ETIMEDOUT,
    errno.EPIPE,
}
# The exception classes worth a handler; :func:`is_unavailable` decides for each instance.
CANDIDATES: tuple[type[BaseException], ...] = (*_ASYNCPG, sqlite3.OperationalError, OSError)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached right now (an outage)."""
    if isinstance(exc, _ASYNCPG):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return str(exc).lower().startswith(_SQLITE_TRANSIENT)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError):
        # asyncpg reports a failed connect to several addresses as one OSError("Multiple exceptions: …").
        return exc.errno in _NET_ERRNOS or str(exc).startswith("Multiple exceptions")
    return False


def describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def unavailable(exc: BaseException, what: str = "database call") -> AppError:
    """The client-facing error for an outage; logs one WARNING line (no traceback)."""
    log.warning("%s failed, database unavailable (%s)", what, describe(exc))
    return AppError(ErrorCode.UNAVAILABLE, MESSAGE, retry_after=RETRY_AFTER)


def guard(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate an async function: database outages leave it as ``AppError(UNAVAILABLE)``."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except AppError:
            raise
        except Exception as exc:
            if is_unavailable(exc):
                raise unavailable(exc, getattr(fn, "__qualname__", "database call")) from None
            raise

    return wrapper


async def retrying(
    call: Callable[[], Awaitable[T]],
    deadline: Callable[[], float],
    what: str,
    first_delay: float = 0.1,
    max_delay: float = 5.0,
) -> T:
    """``call()`` again and again while the database is unreachable, with doubling delays,
    until ``deadline()`` (``time.monotonic()``, asked at each failure so a caller can start
    the clock at the first one); then ``AppError(UNAVAILABLE)``.

    Only outages are retried: any other error propagates at once. One WARNING line when the
    outage is first seen and one when it is over (or given up on), not one per attempt.
    """
    delay = first_delay
    attempts = 0
    while True:
        try:
            value = await call()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            attempts += 1
            if time.monotonic() + delay > deadline():
                raise unavailable(exc, f"{what} (gave up after {attempts} attempts)") from None
            if attempts == 1:
                log.warning("%s: database unavailable (%s); retrying", what, describe(exc))
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)
            continue
        if attempts:
            log.warning("%s: database back after %d failed attempts", what, attempts)
        return value
