"""docs/performance.md and docs/perf-*.png from a run's summary JSON (matplotlib, Agg backend).

The document is generated whole — tables, plots, ratios, machine, versions, settings and the
command that reproduces it — except the analysis of missed targets, which is written by hand in
``bench/findings.md`` and inserted as is (it explains numbers, so it is kept next to them).

    python -m bench report bench/results/full.json [--docs-dir docs]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

from bench.stats import ratio  # noqa: E402
from bench.summary import handshake_targets, rows, targets  # noqa: E402
from bench.targets import SYNTHIA, SYNTHIA_CLUSTER  # noqa: E402

FINDINGS = Path(__file__).resolve().parent / "findings.md"
COLORS = {
    "synthia": "#2b6cb0",
    SYNTHIA_CLUSTER: "#805ad5",
    "socketio": "#dd6b20",
    "broadcaster": "#38a169",
    "websockets": "#718096",
}


def _table(header: list[str], body: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:,.1f}" if abs(v) >= 100 else f"{v:,.2f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in body]
    return "\n".join(lines)


def _bars(ax: Any, items: list[dict[str, Any]], value: Any, title: str, unit: str) -> None:
    names = [r["label"] for r in items]
    values = [value(r) or 0 for r in items]
    bars = ax.bar(names, values, color=[COLORS.get(r["target"], "#999") for r in items])
    ax.bar_label(bars, labels=[f"{v:,.1f}" for v in values], fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit)
    ax.tick_params(axis="x", labelrotation=15, labelsize=8)


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def plot_idle(idle: list[dict[str, Any]], docs: Path) -> str:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    _bars(
        a,
        idle,
        lambda r: r.get("rss_per_socket_kib"),
        "Server RSS per idle socket (lower is better)",
        "KiB",
    )
    a.axhline(32, color="red", linestyle="--", linewidth=1, label="target ≤ 32 KiB")
    a.legend(fontsize=8)
    _bars(b, idle, lambda r: r.get("connects_per_s"), "Connects/s (higher is better)", "sockets/s")
    b.axhline(1000, color="red", linestyle="--", linewidth=1, label="target ≥ 1000/s")
    b.legend(fontsize=8)
    return _save(fig, docs / "perf-idle.png")


def plot_fanout(fan: list[dict[str, Any]], docs: Path) -> list[str]:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, phase in zip(axes, ("steady", "load"), strict=True):
        for r in fan:
            cdf = r.get(phase, {}).get("delivery_cdf", [])
            if cdf:
                ax.plot(
                    [p[0] for p in cdf],
                    [p[1] for p in cdf],
                    label=r["label"],
                    color=COLORS.get(r["target"]),
                )
        rate = next((r.get(phase, {}).get("rate") for r in fan), None)
        ax.set_xscale("log")
        ax.set_xlabel("publish → delivery latency (ms, log scale)")
        ax.set_ylabel("fraction of deliveries")
        ax.set_title(f"Fan-out latency CDF, {phase} phase ({rate} events/s)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    first = _save(fig, docs / "perf-fanout-latency.png")
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for r in fan:
        series = r.get("load", {}).get("per_event_last_ms", [])
        a.plot(
            range(len(series)), series, label=r["label"], color=COLORS.get(r["target"]), linewidth=1
        )
    a.set_yscale("log")
    a.set_xlabel("event # in the load phase")
    a.set_ylabel("publish → last delivery (ms, log)")
    a.set_title("Per event, under load: stalls show as saw teeth", fontsize=10)
    a.legend(fontsize=8)
    _bars(
        b,
        fan,
        lambda r: r.get("burst", {}).get("deliveries_per_s_per_node"),
        "Deliveries/s per node (burst)",
        "deliveries/s",
    )
    return [first, _save(fig, docs / "perf-fanout-throughput.png")]


def plot_upload(up: dict[str, Any], docs: Path) -> str:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    single = up.get("single", [])
    a.plot(
        [s["mib"] for s in single],
        [s["mb_s_median"] for s in single],
        marker="o",
        color=COLORS["synthia"],
    )
    a.axhline(50, color="red", linestyle="--", linewidth=1, label="target ≥ 50 MB/s")
    a.set_xlabel("image size (MiB)")
    a.set_ylabel("MB/s")
    a.set_title("Upload, one socket (median)", fontsize=10)
    a.legend(fontsize=8)
    conc = up.get("concurrent", [])
    a2 = [c["sockets"] for c in conc]
    b.plot(
        a2,
        [c["aggregate_mb_s"] for c in conc],
        marker="o",
        label="aggregate",
        color=COLORS["synthia"],
    )
    b.plot(a2, [c["per_socket_mb_s"] for c in conc], marker="s", label="per socket", color="#999")
    b.set_xlabel("concurrent sockets")
    b.set_ylabel("MB/s")
    b.set_title("Upload, K sockets at once", fontsize=10)
    b.legend(fontsize=8)
    return _save(fig, docs / "perf-upload.png")


def plot_analysis(an: dict[str, Any], docs: Path) -> str:
    names = [
        "time to first partial",
        "time to result",
        "overhead (all but model)",
        "before model",
        "relay",
        "cached round trip",
        "cached → result",
    ]
    keys = [
        ("time_to_first_partial",),
        ("time_to_result",),
        ("first_chunk_overhead",),
        ("before_model",),
        ("relay",),
        ("cached", "round_trip"),
        ("cached", "to_result"),
    ]

    def get(path: tuple[str, ...], q: str) -> float:
        data: Any = an
        for k in path:
            data = data.get(k, {})
        return float(data.get(q, 0) or 0)

    fig, ax = plt.subplots(figsize=(9, 3.8))
    xs = range(len(names))
    ax.bar(
        [x - 0.2 for x in xs],
        [get(k, "p50_ms") for k in keys],
        width=0.4,
        label="p50",
        color=COLORS["synthia"],
    )
    ax.bar(
        [x + 0.2 for x in xs],
        [get(k, "p99_ms") for k in keys],
        width=0.4,
        label="p99",
        color="#90cdf4",
    )
    ax.set_xticks(list(xs), names, rotation=15, fontsize=8)
    ax.set_ylabel("ms")
    ax.set_title(
        f"Analysis with a fake model (first chunk after {an.get('model_first_chunk_latency_ms')} ms)",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    return _save(fig, docs / "perf-analysis.png")


def _ms(d: dict[str, Any] | None) -> list[Any]:
    d = d or {}
    return [d.get("p50_ms"), d.get("p90_ms"), d.get("p99_ms"), d.get("max_ms"), d.get("count")]


def cluster_vs_single(fan: list[dict[str, Any]]) -> list[str]:
    """The fan-out section's Redis Cluster vs one Redis table (empty without both targets)."""
    cluster = next((r for r in fan if r["target"] == SYNTHIA_CLUSTER), {})
    figures = cluster.get("ratio_to_single_redis")
    if not figures:
        return []
    return [
        f"**{cluster['label']} vs one Redis**: the same synthia_rt nodes and publisher (`RedisBroker`, "
        "one-slot script + SPUBLISH), with `REDIS_URL=redis+cluster://…` of a private cluster of 3 "
        "primaries and 3 replicas on this machine (`tests/redis_cluster.py`, started once per run; "
        "its six processes are the `redis` CPU group below). Ratio = cluster ÷ one Redis: above 1 "
        "is more deliveries/s, or a longer latency.",
        "",
        _table(
            ["figure", "one Redis", "Redis Cluster", "cluster ÷ one Redis"],
            [[k, v["single_redis"], v["cluster"], v["ratio"]] for k, v in figures.items()],
        ),
        "",
    ]


def render_storm(st: dict[str, Any]) -> list[str]:
    hs = handshake_targets(st)
    storm = st["storm"]
    out = [
        "## 6. Handshakes and a reconnect storm",
        "",
        "Handshakes: ONE server process, rounds of N sockets opened at once "
        "(`--connect-concurrency` in flight per client process) until the last ready frame, "
        "the median of the rounds after the first. synthia_rt sockets are distinct users with "
        "a fresh access token each (token check, revocation lookups, presence, session start); "
        "peers only accept and send a ready frame. The server's CPU seconds are read from /proc "
        "for each round: client and server share the 2 cores, so the wall rate is a floor and "
        "handshakes per second of server CPU is what one process does with a core to itself.",
        "",
        _table(
            [
                "target",
                "sockets × rounds",
                "first round /s",
                "handshakes/s",
                "× synthia_rt",
                "server CPU ms/handshake",
                "handshakes per server CPU s",
                "× synthia_rt",
                "errors",
            ],
            [
                [
                    r.get("label", "synthia_rt"),
                    f"{r.get('sockets', r.get('users'))} × {len(r.get('rounds', []))}",
                    r.get("cold_per_s"),
                    r.get("per_s_median"),
                    ratio(r.get("per_s_median"), hs[0].get("per_s_median")),
                    r.get("server_cpu_ms_per_handshake"),
                    r.get("per_server_cpu_s"),
                    ratio(r.get("per_server_cpu_s"), hs[0].get("per_server_cpu_s")),
                    r.get("errors"),
                ]
                for r in hs
            ],
        ),
        "",
        f"Storm: {storm.get('sockets')} sockets on node A, {storm.get('events')} events "
        "published through it; A is killed with SIGKILL and every socket reconnects at once to "
        "B with `subscribe broadcast since=<its position>`. Temporary refusals are retried after "
        "`retry_after` (jittered); sockets not back within `--storm-timeout` are counted.",
        "",
        _table(
            [
                "s to all reconnected",
                "reconnects/s",
                "reconnect p50/p99 ms",
                "unauthorised",
                "lost",
                "retries",
                "not reconnected",
                "B CPU %",
            ],
            [
                [
                    storm.get("seconds_to_all_reconnected"),
                    storm.get("reconnects_per_s"),
                    f"{_get_ms(storm, 'p50_ms')} / {_get_ms(storm, 'p99_ms')}",
                    storm.get("unauthorised"),
                    storm.get("lost"),
                    storm.get("retries"),
                    storm.get("not_reconnected"),
                    storm.get("node_b_cpu_pct"),
                ]
            ],
        ),
        "",
    ]
    causes = storm.get("retry_causes") or {}
    if causes:
        out += [
            "Retries by cause: " + ", ".join(f"{k} {v}" for k, v in causes.items()) + ".",
            "",
        ]
    return out


def _get_ms(storm: dict[str, Any], key: str) -> Any:
    return (storm.get("reconnect_after_kill") or {}).get(key)


def render(results: dict[str, Any], docs: Path) -> str:
    s = results.get("scenarios", {})
    m = results.get("machine", {})
    out = [
        "# Performance",
        "",
        "Generated by `python -m bench report` from `bench/results/"
        + f"{results.get('name')}.json`; do not edit "
        "by hand (the analysis comes from `bench/findings.md`). All figures come from ONE run: same client, "
        "same machine, targets one after another on fresh server processes.",
        "",
        "Reproduce:",
        "",
        "```",
        results.get("command", ""),
        "```",
        "",
        f"Run of {results.get('started')}, {results.get('wall_seconds')} s wall time.",
        "",
        "## Headline",
        "",
        _table(["figure", "value", "target", "verdict"], [list(r) for r in rows(results)]),
        "",
    ]
    idle = targets(s.get("idle", {}))
    if idle:
        base = next((r for r in idle if r["target"] == SYNTHIA), {})
        out += [
            "## 1. Idle sockets",
            "",
            "N sockets opened and held on ONE server process; RSS growth per socket after warm-up; connects/s "
            "over the whole ramp. synthia_rt sockets are authenticated (JWT + revocation check + presence cap) "
            "and joined to `user:<id>` and `broadcast`; peers only accept and send a ready frame.",
            "",
            _table(
                [
                    "target",
                    "sockets",
                    "RSS KiB/socket",
                    "× synthia_rt",
                    "connects/s",
                    "× synthia_rt",
                    "errors",
                ],
                [
                    [
                        r["label"],
                        r["sockets"],
                        r["rss_per_socket_kib"],
                        ratio(r["rss_per_socket_kib"], base.get("rss_per_socket_kib")),
                        r["connects_per_s"],
                        ratio(r["connects_per_s"], base.get("connects_per_s")),
                        r["connect_errors"],
                    ]
                    for r in idle
                ],
            ),
            "",
            f"![idle]({plot_idle(idle, docs)})",
            "",
        ]
    fan = targets(s.get("fanout", {}))
    if fan:
        synthia = next((r for r in fan if r["target"] == SYNTHIA), {})
        bd = synthia.get("burst", {}).get("deliveries_per_s_per_node")
        out += [
            "## 2. Fan-out",
            "",
            "M subscribers of one channel over the nodes. *Steady*: a low publish rate, how long one event "
            "takes to reach every subscriber. *Load*: a rate close to what the machine carries. *Burst*: events "
            "back to back; deliveries/s per node = deliveries on the node ÷ (its last delivery − first publish). "
            "Latencies are measured by the client on the publisher's clock (one machine).",
            "",
            _table(
                [
                    "target",
                    "phase",
                    "events/s",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "last-delivery p50 ms",
                    "last-delivery p99 ms",
                ],
                [
                    [
                        r["label"],
                        ph,
                        r[ph].get("rate"),
                        r[ph]["delivery_latency"].get("p50_ms"),
                        r[ph]["delivery_latency"].get("p99_ms"),
                        r[ph]["delivery_latency"].get("max_ms"),
                        r[ph]["last_delivery_latency"].get("p50_ms"),
                        r[ph]["last_delivery_latency"].get("p99_ms"),
                    ]
                    for r in fan
                    for ph in ("steady", "load")
                    if ph in r
                ],
            ),
            "",
            _table(
                [
                    "target",
                    "subscribers",
                    "nodes",
                    "burst deliveries/s/node",
                    "synthia_rt ÷ this",
                    "lost",
                    "duplicates",
                    "offset gaps",
                    "connect errors",
                ],
                [
                    [
                        r["label"],
                        r["subscribers"],
                        r["nodes"],
                        r["burst"]["deliveries_per_s_per_node"],
                        ratio(bd, r["burst"]["deliveries_per_s_per_node"]),
                        r["lost"],
                        r["duplicates"],
                        r["offset_gaps"],
                        r["connect_errors"],
                    ]
                    for r in fan
                ],
            ),
            "",
            *cluster_vs_single(fan),
            "CPU per process group (% of one core) and, with `--profile`, what stalled each server's event "
            "loop during the phase (GC pauses ≥ 5 ms, of which full collections; loop lags > 100 ms):",
            "",
            _table(
                [
                    "target",
                    "phase",
                    "duration s",
                    "CPU %",
                    "server stalls (per node)",
                    "client loop lag p99/max ms",
                ],
                [
                    [
                        r["label"],
                        ph,
                        r[ph].get("duration_s"),
                        ", ".join(f"{k} {v}" for k, v in r[ph].get("cpu_pct", {}).items()),
                        "; ".join(
                            f"GC {x['gc_pauses']}× {x['gc_total_ms']} ms (full {x.get('gc_full', '?')}× "
                            f"{x.get('gc_full_total_ms', '?')} ms), lags>100ms {x['lags_over_100ms']}, max {x['lag_max_ms']} ms"
                            for x in r[ph].get("server_stalls") or []
                        )
                        or "–",
                        " / ".join(
                            f"{c['loop_lag_p99_ms']}/{c['loop_lag_max_ms']}"
                            for c in r.get("client_workers", [])
                        ),
                    ]
                    for r in fan
                    for ph in ("steady", "load", "burst")
                    if ph in r
                ],
            ),
            "",
        ]
        out += [f"![fan-out]({name})" for name in plot_fanout(fan, docs)] + [""]
    up = s.get("upload")
    if up and "single" in up:
        out += [
            "## 3. Upload",
            "",
            f"Chunks of {up['chunk_bytes']:,} bytes, up to {up['window']} in flight per socket, timed from the "
            "first chunk to the acknowledgement of the last (bytes durably in Redis). MB = 10^6 bytes.",
            "",
            _table(
                ["size MiB", "median MB/s", "runs"],
                [
                    [p["mib"], p["mb_s_median"], ", ".join(map(str, p["runs"]))]
                    for p in up["single"]
                ],
            ),
            "",
            _table(
                ["sockets", "MiB each", "aggregate MB/s", "per socket MB/s"],
                [
                    [c["sockets"], c["mib_each"], c["aggregate_mb_s"], c["per_socket_mb_s"]]
                    for c in up["concurrent"]
                ],
            ),
            "",
            f"Analyses after the uploads ended with: {up.get('analysis_outcomes')}.",
            "",
            f"![upload]({plot_upload(up, docs)})",
            "",
        ]
    an = s.get("analysis")
    if an and "cached" in an:
        out += [
            "## 4. Analysis",
            "",
            f"A fake Gemini (tests/fake_gemini.py) streams a valid result in 4 chunks, the first "
            f"{an['model_first_chunk_latency_ms']} ms after the request. {an['fresh']} fresh analyses one at a "
            f"time ({an['failed']} failed), then {an['cached']['count']} cached round trips.",
            "",
            _table(
                ["figure", "p50 ms", "p90 ms", "p99 ms", "max ms", "n"],
                [
                    [
                        "time to first partial (last chunk sent → first analysis.partial)",
                        *_ms(an["time_to_first_partial"]),
                    ],
                    [
                        "time to result (last chunk sent → analysis.result)",
                        *_ms(an["time_to_result"]),
                    ],
                    [
                        "overhead added to the first chunk (all but the model's latency)",
                        *_ms(an["first_chunk_overhead"]),
                    ],
                    [
                        "… before the model (hash, decode, re-encode, queue, DB, request)",
                        *_ms(an["before_model"]),
                    ],
                    ["… relay (model chunk written → partial on the socket)", *_ms(an["relay"])],
                    *[
                        [f"… … {name.replace('_', ' ')}", *_ms(v)]
                        for name, v in an.get("stages", {}).items()
                    ],
                    [
                        "cached: analysis.start → reply cached:true",
                        *_ms(an["cached"]["round_trip"]),
                    ],
                    ["cached: analysis.start → analysis.result", *_ms(an["cached"]["to_result"])],
                ],
            ),
            "",
            f"![analysis]({plot_analysis(an, docs)})",
            "",
        ]
    ch = s.get("churn")
    if ch and "sockets" in ch:
        out += [
            "## 5. Churn",
            "",
            f"{ch['sockets']} sockets over 2 nodes, each living 0.3–2 s then dropping (half cleanly, half by "
            f"vanishing), reconnecting to a random node and re-subscribing with `since`, while {ch['events']} "
            "events were published.",
            "",
            _table(
                [
                    "reconnects",
                    "failed reconnects",
                    "expected deliveries",
                    "missed",
                    "offset gaps",
                    "duplicates",
                    "not recovered",
                    "reconnect p50/p99 ms",
                    "catch-up p50/p99 ms",
                ],
                [
                    [
                        ch["reconnects"],
                        ch["failures"],
                        ch["expected_deliveries"],
                        ch["missed"],
                        ch["gaps"],
                        ch["duplicates"],
                        ch["not_recovered"],
                        f"{ch['reconnect'].get('p50_ms')} / {ch['reconnect'].get('p99_ms')}",
                        f"{ch['catch_up'].get('p50_ms')} / {ch['catch_up'].get('p99_ms')}",
                    ]
                ],
            ),
            "",
        ]
    st = s.get("storm")
    if st and "storm" in st:
        out += render_storm(st)
    if FINDINGS.exists():
        out += [FINDINGS.read_text().strip(), ""]
    logs = results.get("server_logs", [])
    if logs:
        out += [
            "## Server logs during the run",
            "",
            _table(
                ["target", "port", "WARNING lines", "ERROR lines", "tracebacks"],
                [
                    [lg["target"], lg["port"], lg["warning"], lg["error"], lg["traceback"]]
                    for lg in logs
                ],
            ),
            "",
        ]
    packages = m.get("packages", {})
    out += [
        "## Machine, versions, settings",
        "",
        _table(
            ["", ""],
            [
                [
                    "CPU",
                    f"{m.get('cpu')} × {m.get('nproc')} (shared by servers, Redis, PostgreSQL and the client)",
                ],
                ["RAM", f"{m.get('ram_gib')} GiB"],
                ["kernel", m.get("kernel")],
                ["Python", m.get("python")],
                ["Redis", m.get("redis")],
                ["PostgreSQL", m.get("postgres")],
                ["git", f"{m.get('git_commit')}{' (dirty)' if m.get('git_dirty') else ''}"],
                ["client fd limit", m.get("client_nofile")],
            ],
        ),
        "",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in packages.items()),
        "",
        "Bench settings: `"
        + json.dumps(
            {k: v for k, v in results.get("settings", {}).items() if k not in {"quiet", "report"}}
        )
        + "`",
        "",
        "Environment of the bench's synthia_rt nodes (besides `DATABASE_URL` and a random `JWT_SECRET_KEY`): `"
        + json.dumps(results.get("server_env", {}))
        + "`",
        "",
    ]
    return "\n".join(out)


def write_report(results: dict[str, Any], docs: Path) -> Path:
    docs.mkdir(parents=True, exist_ok=True)
    path = docs / "performance.md"
    path.write_text(render(results, docs))
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench report")
    parser.add_argument("results", type=Path)
    parser.add_argument(
        "--docs-dir", type=Path, default=Path(__file__).resolve().parent.parent / "docs"
    )
    args = parser.parse_args(argv)
    print(write_report(json.loads(args.results.read_text()), args.docs_dir))
    return 0
