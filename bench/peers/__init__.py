"""Minimal peer servers for side-by-side runs; each is ``python -m bench.peers.<kind>``.

All take ``--port``, ``--redis`` and ``--channel`` (the Redis-side name of the broadcast
channel, unique per run) and honour the bench's minimal contract: accept a socket, send a ready
frame, deliver every broadcast event published through Redis (see ``bench/targets.py``). They
run under the same server stack as synthia_rt where one applies (uvicorn with uvloop, httptools
and the websockets-sansio protocol, permessage-deflate off, 20 s pings).
"""

from __future__ import annotations

import argparse
from typing import Any

PEER_MODULES = {
    "socketio": "bench.peers.socketio_peer",
    "broadcaster": "bench.peers.broadcaster_peer",
    "websockets": "bench.peers.websockets_peer",
}


def peer_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--channel", required=True)
    return parser.parse_args()


def run_uvicorn(app: Any, host: str, port: int) -> None:
    """uvicorn configured like ``synthia-rt serve`` (minus its app-specific frame limit)."""
    import uvicorn

    from bench.limits import raise_nofile

    raise_nofile()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        lifespan="on",
    )
