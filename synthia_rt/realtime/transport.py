"""What the ASGI interface cannot say: aborting a socket's TCP connection, and uvicorn's log noise.

**Abort.** ASGI has no way to drop a connection: ``websocket.close`` waits until uvicorn can
write the close frame, and uvicorn's ``transport.close()`` keeps the connection open until its
send buffer drains. A client that stopped reading (TCP window zero) drains nothing, so the
connection stayed ESTABLISHED for minutes with megabytes queued. :func:`abort_later` aborts the
transport (RST, buffer discarded) once a close has had ``CLOSE_TIMEOUT`` seconds to complete;
a closed transport is left alone. The transport is reached through the ASGI ``send`` callable
uvicorn hands the ``/ws`` fast path: a bound method of uvicorn's protocol object (all three of
its WebSocket implementations keep the asyncio transport in ``.transport``). Elsewhere (a
wrapped ``send``, another server) nothing is found and nothing is aborted.

**Logs.** Refusals are expected traffic, not errors. uvicorn logs two of them at ERROR:
"ASGI callable returned without completing handshake." after every HTTP denial response (its
sans-io implementation never marks that handshake complete) and "Invalid UTF-8 sequence
received from client." with a traceback (it then closes with 1007, as it should). Both are the
client's doing; :func:`quiet_uvicorn_refusals` rewrites them to INFO without a traceback.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
import termios

from starlette.websockets import WebSocket

_QUIET = frozenset(
    {
        "ASGI callable returned without completing handshake.",
        "Invalid UTF-8 sequence received from client.",
    }
)


class _RefusalsAreInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.msg in _QUIET:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


_FILTER = _RefusalsAreInfo()


def quiet_uvicorn_refusals() -> None:
    """Install the filter on uvicorn's error logger (idempotent)."""
    logging.getLogger("uvicorn.error").addFilter(_FILTER)


def transport_of(websocket: WebSocket) -> asyncio.Transport | None:
    owner = getattr(websocket._send, "__self__", None)
    transport = getattr(owner, "transport", None)
    return transport if isinstance(transport, asyncio.Transport) else None


def abort_later(websocket: WebSocket, delay: float) -> asyncio.TimerHandle | None:
    """Abort the socket's TCP connection in ``delay`` seconds unless it has closed by then."""
    transport = transport_of(websocket)
    if transport is None:
        return None
    return asyncio.get_running_loop().call_later(max(0.0, delay), _abort, transport)


def abort_now(websocket: WebSocket) -> None:
    transport = transport_of(websocket)
    if transport is not None:
        _abort(transport)


_LINGER_OFF = struct.pack("ii", 1, 0)


def _abort(transport: asyncio.Transport) -> None:
    if (
        transport.is_closing()
        and transport.get_write_buffer_size() == 0
        and _unsent(transport) == 0
    ):
        return  # closed, or closing with everything handed to the peer
    try:
        # Linger 0: the kernel resets the connection and drops its send queue. Without it an
        # abort only closes the descriptor and the kernel keeps the orphaned connection in
        # FIN-WAIT-1, still holding the megabytes the peer never read.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_OFF)
        transport.abort()  # a no-op once the connection is lost
    except OSError:  # already torn down
        pass


def _unsent(transport: asyncio.Transport) -> int:
    """Bytes the kernel still holds for the peer (Linux ``SIOCOUTQ``; 0 where unknown)."""
    sock = transport.get_extra_info("socket")
    if sock is None or not hasattr(termios, "TIOCOUTQ"):
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])
