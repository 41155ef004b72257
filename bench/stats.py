"""Percentiles and small summaries over latency samples (seconds in, milliseconds out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def ms_summary(seconds: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """count, p50, p90, p99, max and mean of ``seconds``, reported in milliseconds."""
    data = np.asarray(seconds, dtype=np.float64)
    if data.size == 0:
        return {"count": 0}
    p50, p90, p99 = np.percentile(data, [50, 90, 99]) * 1000
    return {
        "count": int(data.size),
        "p50_ms": round(float(p50), 3),
        "p90_ms": round(float(p90), 3),
        "p99_ms": round(float(p99), 3),
        "max_ms": round(float(data.max()) * 1000, 3),
        "mean_ms": round(float(data.mean()) * 1000, 3),
    }


def cdf_points(seconds: np.ndarray, points: int = 200) -> list[list[float]]:
    """A down-sampled CDF ([ms, fraction] pairs) small enough to keep in the results JSON."""
    data = np.sort(np.asarray(seconds, dtype=np.float64))
    if data.size == 0:
        return []
    fractions = np.linspace(0, 1, num=min(points, data.size))
    values = np.quantile(data, fractions) * 1000
    return [
        [round(float(v), 3), round(float(f), 4)] for v, f in zip(values, fractions, strict=True)
    ]


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return round(value / reference, 3)
