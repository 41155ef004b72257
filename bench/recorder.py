"""Worker-side bookkeeping of broadcast deliveries: cheap enough to run inside ``data_received``.

Per delivery it appends (seq, receive time, node index) to flat arrays; per socket it keeps a
bitmap of the seqs seen, so loss and duplicates are exact; for synthia it also checks that
channel offsets advance by exactly one (a gap is a lost event even if a later replay fills it).
"""

from __future__ import annotations

import time
from array import array
from typing import Any

import numpy as np

from bench.client import WsClient
from bench.targets import parse_event


class SocketState:
    __slots__ = ("node", "seen", "last_offset", "epoch", "received")

    def __init__(self, node: int, max_events: int) -> None:
        self.node = node
        self.seen = bytearray(max_events)
        self.last_offset: int | None = None
        self.epoch: str | None = None
        self.received = 0


class Recorder:
    def __init__(self, target: str, max_events: int) -> None:
        self.target = target
        self.max_events = max_events
        self.seqs = array("i")
        self.times = array("d")
        self.nodes = array("b")
        self.duplicates = 0
        self.offset_gaps = 0
        self.total = 0
        self.sockets: list[SocketState] = []

    def attach(self, ws: WsClient, node: int) -> SocketState:
        """Route ``ws``'s frames here from now on (frames already queued are replayed first)."""
        state = SocketState(node, self.max_events)
        self.sockets.append(state)
        ws.tag = state
        while not ws.inbox.empty():
            payload, is_text = ws.inbox.get_nowait()
            self.on_message(ws, payload, is_text)
        ws.on_message = self.on_message
        return state

    def on_message(self, ws: WsClient, payload: bytes, is_text: bool) -> None:
        now = time.time()
        if not is_text:
            return
        event = parse_event(self.target, ws, payload)
        if event is None:
            return
        state: SocketState = ws.tag  # type: ignore[assignment]
        seq = event["seq"]
        offset = event.get("offset")
        if offset is not None:
            epoch = event.get("epoch")
            if (
                state.last_offset is not None
                and epoch == state.epoch
                and offset != state.last_offset + 1
            ):
                self.offset_gaps += 1
            state.last_offset, state.epoch = offset, epoch
        if state.seen[seq]:
            self.duplicates += 1
            return
        state.seen[seq] = 1
        state.received += 1
        self.total += 1
        self.seqs.append(seq)
        self.times.append(now)
        self.nodes.append(state.node)

    def missing(self, first: int, last: int) -> int:
        """Deliveries of seqs ``first``..``last-1`` not (yet) seen, over every socket."""
        width = last - first
        return sum(width - sum(s.seen[first:last]) for s in self.sockets)

    def export(self) -> dict[str, Any]:
        return {
            "seqs": np.frombuffer(self.seqs, dtype=np.int32).copy(),
            "times": np.frombuffer(self.times, dtype=np.float64).copy(),
            "nodes": np.frombuffer(self.nodes, dtype=np.int8).copy(),
            "duplicates": self.duplicates,
            "offset_gaps": self.offset_gaps,
        }
