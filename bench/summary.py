"""What a run leaves in git: the summary JSON (``bench/results/<name>.json``) and the headline table.

A run writes its raw results to ``bench/results/raw/<name>.json`` (git-ignored: error samples,
per-node counts, every CDF and per-event series, profile paths, log paths). :func:`summarize`
keeps what docs/performance.md quotes or plots — percentiles, rates, ratios, counts, the
down-sampled delivery CDFs of the steady and load phases and the load phase's per-event series —
so ``python -m bench report bench/results/<name>.json`` redraws the document and its plots from it.
"""

from __future__ import annotations

import json
from typing import Any

from bench.targets import SYNTHIA, SYNTHIA_CLUSTER


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def targets(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-target results of a side-by-side scenario, synthia first."""
    rows = [v for k, v in scenario.items() if not k.startswith("_") and isinstance(v, dict)]
    return sorted(rows, key=lambda r: r.get("target") != SYNTHIA)


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, value, target, verdict) rows; verdict is met / MISSED / blank."""
    s = results.get("scenarios", {})
    out: list[tuple[str, str, str, str]] = []

    def add(figure: str, value: Any, goal: str = "", ok: bool | None = None) -> None:
        out.append((figure, _fmt(value), goal, "" if ok is None else ("met" if ok else "MISSED")))

    for r in targets(s.get("idle", {})):
        label = r["label"]
        kib, cps = r.get("rss_per_socket_kib"), r.get("connects_per_s")
        syn = r["target"] == SYNTHIA
        add(f"idle {label}: sockets", r.get("sockets"))
        add(
            f"idle {label}: RSS KiB/socket",
            kib,
            "<= 32" if syn else "",
            (kib is not None and kib <= 32) if syn else None,
        )
        add(
            f"idle {label}: connects/s",
            cps,
            ">= 1000" if syn else "",
            (cps is not None and cps >= 1000) if syn else None,
        )
    fan = targets(s.get("fanout", {}))
    syn_fan = next((r for r in fan if r["target"] == SYNTHIA), None)
    for r in fan:
        label, syn = r["label"], r["target"] == SYNTHIA
        p99 = _get(r, "steady", "last_delivery_latency", "p99_ms")
        dps = _get(r, "burst", "deliveries_per_s_per_node")
        add(
            f"fanout {label}: p99 publish→last delivery ms",
            p99,
            "<= 100" if syn else "",
            (p99 is not None and p99 <= 100) if syn else None,
        )
        add(f"fanout {label}: p50 delivery ms", _get(r, "steady", "delivery_latency", "p50_ms"))
        add(
            f"fanout {label}: p99 publish→last delivery under load ms",
            _get(r, "load", "last_delivery_latency", "p99_ms"),
        )
        add(f"fanout {label}: deliveries/s per node (burst)", dps)
        add(
            f"fanout {label}: lost / duplicates",
            f"{r.get('lost')} / {r.get('duplicates')}",
            "0" if syn else "",
            (r.get("lost") == 0 and r.get("duplicates") == 0) if syn else None,
        )
        if r["target"] == SYNTHIA_CLUSTER:
            _cluster_rows(r, add)
        elif syn_fan is not None and not syn:
            base = _get(syn_fan, "burst", "deliveries_per_s_per_node")
            ratio = base / dps if base and dps else None
            goal = (
                ">= 2"
                if r["target"] == "socketio"
                else (">= 0.5" if r["target"] == "websockets" else "")
            )
            verdict = None
            if ratio is not None and goal:
                verdict = ratio >= (2 if r["target"] == "socketio" else 0.5)
            add(f"fanout synthia_rt / {label} deliveries/s", ratio, goal, verdict)
    up = s.get("upload", {})
    one = _get(up, "single_socket_mb_s")
    if one is not None:
        add("upload one socket MB/s (best size)", one, ">= 50", one >= 50)
        for c in up.get("concurrent", []):
            add(f"upload {c['sockets']} sockets aggregate MB/s", c.get("aggregate_mb_s"))
    an = s.get("analysis", {})
    if an:
        cached = _get(an, "cached", "round_trip", "p50_ms")
        over = _get(an, "first_chunk_overhead", "p50_ms")
        add("analysis cached round trip p50 ms", cached, "<= 5", cached is not None and cached <= 5)
        add("analysis first-chunk overhead p50 ms", over, "<= 10", over is not None and over <= 10)
        add("analysis time to first partial p50 ms", _get(an, "time_to_first_partial", "p50_ms"))
        add("analysis time to result p50 ms", _get(an, "time_to_result", "p50_ms"))
    ch = s.get("churn", {})
    if ch:
        add("churn reconnects", ch.get("reconnects"))
        add("churn events missed after recovery", ch.get("missed"), "0", ch.get("missed") == 0)
    st = s.get("storm", {})
    for r in handshake_targets(st):
        label, syn = r.get("label", "synthia_rt"), r.get("target", SYNTHIA) == SYNTHIA
        wall = r.get("per_s_median")
        add(
            f"storm {label}: handshakes/s (wall, median)",
            wall,
            ">= 1000" if syn else "",
            (wall is not None and wall >= 1000) if syn else None,
        )
        add(f"storm {label}: server CPU ms/handshake", r.get("server_cpu_ms_per_handshake"))
        per_cpu = r.get("per_server_cpu_s")
        add(
            f"storm {label}: handshakes per server CPU s",
            per_cpu,
            ">= 1000" if syn else "",
            (per_cpu is not None and per_cpu >= 1000) if syn else None,
        )
        if not syn:
            add(f"storm {label} / synthia_rt handshakes/s", r.get("per_s_ratio_to_synthia"))
            add(
                f"storm {label} / synthia_rt handshakes per server CPU s",
                r.get("per_server_cpu_s_ratio_to_synthia"),
            )
    storm = st.get("storm")
    if isinstance(storm, dict):
        n = storm.get("sockets")
        add(
            f"storm {n} sockets: s from kill -9 to all reconnected",
            storm.get("seconds_to_all_reconnected"),
        )
        add(f"storm {n} sockets: reconnects/s", storm.get("reconnects_per_s"))
        for key, figure in (
            ("unauthorised", "unauthorised"),
            ("lost", "events lost"),
            ("not_reconnected", "not reconnected"),
        ):
            value = storm.get(key)
            add(f"storm {n} sockets: {figure}", value, "0", value == 0)
        add(f"storm {n} sockets: retries", storm.get("retries"))
    return out


# The Redis Cluster ÷ one Redis figures the headline shows (the report's fan-out section has all).
CLUSTER_HEADLINE = (
    "deliveries/s per node (burst)",
    "p50 delivery ms (steady)",
    "p99 delivery ms (steady)",
)


def _cluster_rows(cluster: dict[str, Any], add: Any) -> None:
    """Only when synthia ran on one Redis in the same run (fanout's ``ratio_to_single_redis``)."""
    figures = cluster.get("ratio_to_single_redis") or {}
    for figure in CLUSTER_HEADLINE if figures else ():
        add(f"fanout Redis Cluster ÷ one Redis: {figure}", _get(figures, figure, "ratio"))


def handshake_targets(storm: dict[str, Any]) -> list[dict[str, Any]]:
    """The storm's handshake rounds per target, synthia first (older results: synthia only)."""
    base = storm.get("handshakes")
    rows = [base] if isinstance(base, dict) else []
    return rows + list(storm.get("handshake_peers", {}).values())


def summary_table(results: dict[str, Any]) -> str:
    table = [("figure", "value", "target", "")] + rows(results)
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


_DROP = {
    "error_samples",
    "per_node",
    "profiles",
    "log",
}  # raw detail docs/performance.md never shows
_PLOTTED = {
    "delivery_cdf": ("steady", "load"),
    "per_event_last_ms": ("load",),
}  # series the plots draw


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """The numbers the report uses, without raw samples (see the module docstring)."""

    def keep(value: Any, phase: str | None = None) -> Any:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if key in _DROP or (key in _PLOTTED and phase not in _PLOTTED[key]):
                    continue
                out[key] = keep(item, key if key in ("steady", "load", "burst") else phase)
            return out
        if isinstance(value, list):
            return [keep(item, phase) for item in value]
        return value

    return dict(keep(results))


def dumps(summary: dict[str, Any]) -> str:
    """JSON with one key per line, but every list of numbers on one line (a CDF is one line, not 400)."""

    def dump(value: Any, indent: int) -> str:
        pad = " " * (indent + 1)
        if isinstance(value, dict) and value:
            body = ",\n".join(
                f"{pad}{json.dumps(k)}: {dump(v, indent + 1)}" for k, v in value.items()
            )
            return "{\n" + body + "\n" + " " * indent + "}"
        if isinstance(value, list) and any(isinstance(v, dict) for v in value):
            return (
                "[\n"
                + ",\n".join(pad + dump(v, indent + 1) for v in value)
                + "\n"
                + " " * indent
                + "]"
            )
        return json.dumps(value, ensure_ascii=False, default=str)

    return dump(summary, 0) + "\n"
