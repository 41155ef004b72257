"""Server-side numbers from /proc: which pids listen on a port, their RSS and CPU time.

Reading /proc works for servers the bench did not start (pass ``--server-pid`` or let it find
the listener of each node's port); it sees other users' processes only as root.
"""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LISTEN = "0A"


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def pids_listening(port: int) -> list[int]:
    """Every process holding a listening socket on ``port`` (uvicorn workers share one)."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not wanted:
        return []
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    found.append(int(entry.name))
                    break
        except OSError:
            continue
    return sorted(found)


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (resident memory, what the brief's per-socket figure divides)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time consumed by ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def total_rss_kib(pids: list[int]) -> int:
    return sum(rss_kib(p) for p in pids)


def total_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


def listen_drops() -> dict[str, int]:
    """The kernel's machine-wide ``ListenOverflows`` / ``ListenDrops`` counters (TcpExt).

    A SYN or a handshake's final ACK that found a listener's accept queue full is dropped and
    counted here; the client only sees a slow connect (SYN retransmitted after 1, 3, 7… s).
    """
    lines = [ln.split() for ln in Path("/proc/net/netstat").read_text().splitlines()]
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names and names[0] == "TcpExt:":
            row = dict(zip(names[1:], values[1:], strict=False))
            return {k: int(row.get(k, 0)) for k in ("ListenOverflows", "ListenDrops")}
    return {"ListenOverflows": 0, "ListenDrops": 0}
