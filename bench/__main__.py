"""``python -m bench`` (from a source checkout): run the load scenarios and write the results.

Self-contained by default: it creates the ``synthia_bench`` database, starts synthia_rt nodes
(fresh ones per scenario), the peer servers and a fake Gemini, runs the scenarios, then writes
the raw results to ``bench/results/raw/<name>.json`` (git-ignored), their summary to
``bench/results/<name>.json`` (committed: the numbers docs/performance.md quotes) and
(``--report``) docs/performance.md with its plots, drawn from the summary.
``--node URL`` (repeatable) measures running synthia_rt nodes instead; see docs/performance.md.
Target ``synthia-cluster`` (idle and fanout): the same synthia_rt nodes with
``REDIS_URL=redis+cluster://…`` of a private Redis Cluster (3 primaries + 3 replicas, started once
per run from tests/redis_cluster.py and stopped at its end), compared with ``synthia`` on one Redis.

    python -m bench                       # the full run (about 10 minutes on 2 cores)
    python -m bench --smoke               # seconds: tiny numbers, no report
    python -m bench report bench/results/full.json   # redraw docs from a committed summary
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.targets import ALL_TARGETS

SCENARIOS = ("idle", "fanout", "upload", "analysis", "churn", "storm")
PEER_SCENARIOS = {"idle", "fanout"}  # the only ones the peers implement
REPO = Path(__file__).resolve().parent.parent


def _csv(
    kind: Callable[[str], Any], allowed: tuple[str, ...] | None = None
) -> Callable[[str], list[Any]]:
    def parse(raw: str) -> list[Any]:
        items = [kind(x.strip()) for x in raw.split(",") if x.strip()]
        if allowed is not None:
            unknown = [x for x in items if x not in allowed]
            if unknown:
                raise argparse.ArgumentTypeError(
                    f"unknown: {', '.join(map(str, unknown))} (choose from {', '.join(allowed)})"
                )
        return items

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--name",
        default="full",
        help="results name: bench/results/<name>.json (summary), bench/results/raw/<name>.json (raw)",
    )
    p.add_argument("--scenarios", type=_csv(str, SCENARIOS), default=list(SCENARIOS))
    p.add_argument(
        "--targets",
        type=_csv(str, ALL_TARGETS),
        default=list(ALL_TARGETS),
        help="synthia and the peers (peers run in idle, fanout and the storm's handshake rounds)",
    )
    p.add_argument("--smoke", action="store_true", help="tiny numbers for the test suite (seconds)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write docs/performance.md and docs/perf-*.png (default: on unless --smoke)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy every server the bench starts, GC/loop-lag probes in synthia_rt nodes; raw stacks in DIR",
    )
    p.add_argument(
        "--results-dir",
        type=Path,
        default=REPO / "bench" / "results",
        help="summaries go here, raw results in its raw/ subdirectory",
    )
    p.add_argument("--docs-dir", type=Path, default=REPO / "docs")
    g = p.add_argument_group("deployment")
    g.add_argument(
        "--node",
        action="append",
        help="a running synthia_rt node (http://host:port); repeat per node",
    )
    g.add_argument("--namespace", help="REDIS_NAMESPACE of the running nodes (with --node)")
    g.add_argument(
        "--server-pid",
        type=int,
        action="append",
        help="pid(s) of the --node server for RSS (default: by port)",
    )
    g.add_argument(
        "--model-port",
        type=int,
        default=0,
        help="with --node: serve the fake Gemini on this port (the nodes' GEMINI_BASE_URL)",
    )
    g.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    g.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    g.add_argument("--database", default="synthia_bench")
    g.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the bench's own synthia_rt nodes",
    )
    g.add_argument("--procs", type=int, default=2, help="client worker processes")
    g.add_argument("--sockets-per-user", type=int, default=2)
    g.add_argument(
        "--connect-concurrency",
        type=int,
        default=100,
        help="handshakes in flight per client process",
    )
    s = p.add_argument_group("scenarios")
    s.add_argument("--idle-sockets", type=int, default=10_000)
    s.add_argument("--fanout-subscribers", type=int, default=5_000)
    s.add_argument("--fanout-nodes", type=int, default=2)
    s.add_argument("--fanout-rate", type=float, default=2.0, help="events/s in the steady phase")
    s.add_argument(
        "--fanout-load-rate", type=float, default=10.0, help="events/s in the load phase"
    )
    s.add_argument("--fanout-seconds", type=float, default=10.0)
    s.add_argument("--fanout-burst", type=int, default=100, help="events published back to back")
    s.add_argument("--upload-sizes", type=_csv(float), default=[1, 2, 5, 10], help="MiB")
    s.add_argument("--upload-repeat", type=int, default=3)
    s.add_argument("--upload-concurrency", type=_csv(int), default=[1, 2, 4, 8])
    s.add_argument("--upload-window", type=int, default=4, help="chunks in flight per socket")
    s.add_argument("--analysis-count", type=int, default=100)
    s.add_argument("--cached-count", type=int, default=300)
    s.add_argument(
        "--model-latency-ms", type=float, default=200.0, help="fake Gemini's first-chunk latency"
    )
    s.add_argument("--churn-sockets", type=int, default=200)
    s.add_argument("--churn-seconds", type=float, default=15.0)
    s.add_argument(
        "--churn-rate", type=float, default=20.0, help="events/s published while sockets churn"
    )
    s.add_argument(
        "--storm-handshake-users",
        type=int,
        default=3000,
        help="distinct users (one socket each) per handshake round",
    )
    s.add_argument(
        "--storm-rounds", type=int, default=4, help="handshake rounds; the first fills the caches"
    )
    s.add_argument(
        "--storm-sockets", type=int, default=5000, help="sockets on node A when it is killed"
    )
    s.add_argument(
        "--storm-rate",
        type=float,
        default=5.0,
        help="events/s published through the storm (x sockets = B's deliveries/s once all are back)",
    )
    s.add_argument(
        "--storm-timeout",
        type=float,
        default=300.0,
        help="seconds the storm waits for all sockets on A, then for all back on B",
    )
    return p


SMOKE = {
    "idle_sockets": 40,
    "fanout_subscribers": 30,
    "fanout_rate": 20.0,
    "fanout_load_rate": 40.0,
    "fanout_seconds": 0.5,
    "fanout_burst": 10,
    "upload_sizes": [0.6],
    "upload_repeat": 1,
    "upload_concurrency": [2],
    "analysis_count": 2,
    "cached_count": 3,
    "model_latency_ms": 20.0,
    "churn_sockets": 6,
    "churn_seconds": 2.0,
    "churn_rate": 20.0,
    "procs": 1,
    "storm_handshake_users": 20,
    "storm_rounds": 2,
    "storm_sockets": 20,
    "connect_concurrency": 20,
}


def parse(argv: list[str]) -> argparse.Namespace:
    options = build_parser().parse_args(argv)
    if options.smoke:
        defaults = build_parser().parse_args([])
        for key, value in SMOKE.items():
            if getattr(options, key) == getattr(defaults, key):  # explicit flags still win
                setattr(options, key, value)
    if options.report is None:
        options.report = not options.smoke
    if options.node and not options.namespace:
        build_parser().error(
            "--node needs --namespace (the nodes' REDIS_NAMESPACE) for the publisher"
        )
    return options


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        from bench.report import main as report_main

        return report_main(argv[1:])
    options = parse(argv)
    from bench.runner import run

    return asyncio.run(run(options, argv))


if __name__ == "__main__":
    sys.exit(main())
