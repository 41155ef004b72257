"""In-process probes for servers under ``--profile``: GC pauses and a heap census.

``python -m bench.probe MODULE ARGS…`` runs MODULE as ``__main__`` with the probes installed
(the peers use it); ``bench.profiled_serve`` adds an event-loop lag watcher for synthia_rt.
A daemon thread rewrites ``$BENCH_PROFILE_OUT`` every second, because uvicorn re-raises SIGTERM
after its shutdown and atexit handlers never run on the normal way out.

* **GC pauses** — ``gc.callbacks`` times every collection, per generation: a full collection
  walks every tracked object, and while it runs no socket of the process is served;
* **stalls** — every GC pause or loop lag of 5 ms or more, with its wall-clock time, so a
  scenario can attribute them to its phases;
* **heap census** — on request (the bench creates ``$BENCH_PROFILE_OUT.census``, e.g. once all
  sockets are open), how many objects the collector tracks and the commonest types: the heap a
  full collection has to walk.
"""

from __future__ import annotations

import gc
import json
import os
import runpy
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

STALL = 0.005  # seconds; shorter pauses are only counted, not listed
LAG_KIND = -1  # stall kinds: the GC generation (0, 1, 2) or LAG_KIND for event-loop lag

pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
stalls: list[
    list[float]
] = []  # [wall-clock end, seconds, kind] of every pause >= STALL (for time windows)
census: dict[str, Any] = {}
extra_reports: list[Callable[[], dict[str, Any]]] = []  # more sections (profiled_serve's loop lag)
_started = 0.0


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
    else:
        took = time.perf_counter() - _started
        pauses[info["generation"]].append(took)
        if took >= STALL:
            stalls.append([round(time.time(), 4), round(took, 4), info["generation"]])


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "total_s": round(sum(ordered), 3),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


def take_census() -> None:
    objects = gc.get_objects()
    types = Counter(type(o).__qualname__ for o in objects)
    census.update(
        {
            "tracked_objects": len(objects),
            "frozen_objects": gc.get_freeze_count(),
            "top_types": types.most_common(20),
        }
    )
    del objects


def dump() -> None:
    out = os.environ.get("BENCH_PROFILE_OUT")
    if not out:
        return
    report: dict[str, Any] = {
        "gc": {f"gen{g}": summary(list(v)) for g, v in pauses.items()},
        "heap_census": census,
        "stalls": list(stalls),
    }
    for section in extra_reports:
        report.update(section())
    tmp = out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(report, fh, indent=1)
    os.replace(tmp, out)


def _reporter() -> None:
    out = os.environ.get("BENCH_PROFILE_OUT", "")
    while True:
        time.sleep(0.5)
        if out and os.path.exists(out + ".census"):
            take_census()
            dump()
            os.remove(out + ".census")
        dump()


def install() -> None:
    gc.callbacks.append(_on_gc)
    census["gc_threshold"] = list(gc.get_threshold())
    threading.Thread(target=_reporter, name="bench-probe", daemon=True).start()


def main() -> None:
    install()
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
