"""Running callbacks and background loops that must not die quietly.

A handler that raises is logged and skipped (one bad event must not stop fan-out, the habit
python-socketio has).  A background loop that fails is logged and restarted with capped,
jittered exponential backoff, so subscribers never hang silently behind a dead task.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_BASE = 0.1
BACKOFF_CAP = 5.0


def backoff_delay(attempt: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Delay before retry ``attempt`` (0-based): exponential, capped, with 50–100 % jitter."""
    return min(cap, base * float(1 << min(attempt, 16))) * random.uniform(0.5, 1.0)  # noqa: S311


async def invoke(handler: Callable[[T], Awaitable[None] | None], arg: T, what: str) -> None:
    """Call a broker handler (sync or async); its failure is logged, never propagated."""
    try:
        result: Any = handler(arg)
        if inspect.isawaitable(result):
            await result
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("broker %s handler failed; continuing", what)


def really_cancelled(stopping: bool) -> bool:
    """Whether a CancelledError seen by a loop is its own cancellation (vs a stray one raised
    by a handler), in which case it must propagate."""
    task = asyncio.current_task()
    return stopping or task is None or task.cancelling() > 0


async def supervise(
    name: str,
    body: Callable[[Callable[[], None]], Awaitable[None]],
    stopping: Callable[[], bool],
    expected: tuple[type[BaseException], ...] = (),
    on_failure: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run ``body`` forever, restarting it after any failure.

    ``body`` receives ``mark_healthy`` and calls it once it works again, which resets the
    backoff.  ``expected`` failures (e.g. connection loss) are logged as warnings; anything else
    is logged with its traceback as a crash.  ``on_failure`` cleans up before the retry.
    """
    attempt = 0

    def mark_healthy() -> None:
        nonlocal attempt
        attempt = 0

    while not stopping():
        try:
            await body(mark_healthy)
            if stopping():
                return
            log.error("%s returned unexpectedly; restarting it", name)
        except asyncio.CancelledError:
            if really_cancelled(stopping()):
                raise
            log.error("%s got a stray CancelledError; restarting it", name)
        except expected as exc:
            log.warning("%s lost its connection (%s); reconnecting", name, type(exc).__name__)
        except Exception:
            log.exception("%s crashed; restarting it", name)
        if on_failure is not None:
            try:
                await on_failure()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s cleanup failed", name)
        delay = backoff_delay(attempt)
        attempt += 1
        await asyncio.sleep(delay)


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a supervised loop and wait until it has ended; its CancelledError is expected."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
