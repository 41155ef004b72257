"""A lean WebSocket client on raw asyncio: one ``asyncio.Protocol`` per socket, no task per socket.

Why not the ``websockets`` client: on 2 shared cores, at 10,000 sockets and ~100k frames/s, the
client's own cost competes with the server it measures. Here server frames are parsed inside
``data_received`` and handed to a plain callback (no task wake-up per frame); client frames are
masked with ``websockets``' C speedup; pings are answered in place. Only what a benchmark needs:
no extensions (permessage-deflate is off on every target), no TLS.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import struct
from collections.abc import Callable, Iterable
from typing import Any, cast
from urllib.parse import urlsplit

try:  # websockets' C speedup (in its Linux wheels); its pure-Python masking otherwise
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask


GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
ABNORMAL = 1006

# on_message(socket, payload, is_text): text payloads stay UTF-8 bytes (orjson parses bytes).
MessageHandler = Callable[["WsClient", bytes, bool], None]


class HandshakeError(Exception):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status
        self.body = body


class WsClient(asyncio.Protocol):
    def __init__(self, request: bytes, key: bytes, on_message: MessageHandler | None) -> None:
        loop = asyncio.get_running_loop()
        self._request = request
        self._accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.open: asyncio.Future[str | None] = loop.create_future()  # → selected subprotocol
        self.closed: asyncio.Future[int] = loop.create_future()  # → close code received
        self.inbox: asyncio.Queue[tuple[bytes, bool]] = asyncio.Queue()  # used without on_message
        self.tag: object = None  # free slot for the caller (e.g. the node a socket landed on)
        self._buf = bytearray()
        self._upgraded = False
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._close_sent = False
        self._can_write: asyncio.Event = asyncio.Event()
        self._can_write.set()

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(
            asyncio.Transport, transport
        )  # uvloop's transports are not subclasses
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._upgraded and not self._handshake():
            return
        self._parse()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open.done():
            self.open.set_exception(ConnectionError("connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(ABNORMAL)
        self._can_write.set()

    # -- handshake ---------------------------------------------------------------------------
    def _handshake(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        body = bytes(self._buf[end + 4 :])
        del self._buf[: end + 4]
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status != 101:
            self._fail(HandshakeError(status, body))
            return False
        if headers.get("sec-websocket-accept", "").encode() != self._accept:
            self._fail(HandshakeError(status, b"bad Sec-WebSocket-Accept"))
            return False
        self._upgraded = True
        self.open.set_result(headers.get("sec-websocket-protocol"))
        return True

    def _fail(self, exc: Exception) -> None:
        if not self.open.done():
            self.open.set_exception(exc)
        assert self.transport is not None
        self.transport.close()

    # -- inbound frames (servers never mask) ---------------------------------------------------
    def _parse(self) -> None:
        buf, pos, size = self._buf, 0, len(self._buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            self._frame(b0 & 0x0F, bool(b0 & 0x80), payload)
        if pos:
            del buf[:pos]

    def _frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            if not fin:
                self._fragments, self._fragment_text = [payload], opcode == OP_TEXT
                return
            self._deliver(payload, opcode == OP_TEXT)
        elif opcode == OP_CONT:
            self._fragments.append(payload)
            if fin:
                self._deliver(b"".join(self._fragments), self._fragment_text)
                self._fragments = []
        elif opcode == OP_PING:
            self._write(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self.closed.done():
                self.closed.set_result(code)
            if not self._close_sent:
                self._write(OP_CLOSE, payload[:2])
                self._close_sent = True
            assert self.transport is not None
            self.transport.close()

    def _deliver(self, payload: bytes, is_text: bool) -> None:
        if self.on_message is not None:
            self.on_message(self, payload, is_text)
        else:
            self.inbox.put_nowait((payload, is_text))

    # -- outbound frames (clients always mask) -------------------------------------------------
    def _write(self, opcode: int, payload: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = random.getrandbits(32).to_bytes(4, "big")
        transport.writelines((head, mask, apply_mask(payload, mask)))

    def send_text(self, text: str | bytes) -> None:
        self._write(OP_TEXT, text.encode() if isinstance(text, str) else text)

    def send_binary(self, data: bytes) -> None:
        self._write(OP_BINARY, data)

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        await self._can_write.wait()

    async def recv(self, timeout: float | None = None) -> tuple[bytes, bool]:
        """Next message (inbox mode only); raises ConnectionError once the socket closed."""
        get = asyncio.ensure_future(self.inbox.get())
        waiters: set[asyncio.Future[Any]] = {get, self.closed}
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if get in done:
            return get.result()
        get.cancel()
        if self.closed.done():
            raise ConnectionError(f"socket closed with {self.closed.result()}")
        raise TimeoutError("no message")

    async def close(self, code: int = 1000, timeout: float = 5.0) -> int:
        """Close handshake; returns the peer's close code (1006 when it just vanished)."""
        if not self._close_sent:
            self._write(OP_CLOSE, code.to_bytes(2, "big"))
            self._close_sent = True
        try:
            return await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self.abort()
            return ABNORMAL

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect(
    url: str,
    *,
    subprotocols: Iterable[str] = (),
    headers: Iterable[tuple[str, str]] = (),
    on_message: MessageHandler | None = None,
    timeout: float = 10.0,
) -> WsClient:
    """Open ``url`` (ws://host:port/path?query) and finish the upgrade; raises HandshakeError."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    offered = list(subprotocols)
    if offered:
        lines.append("Sec-WebSocket-Protocol: " + ", ".join(offered))
    lines.extend(f"{name}: {value}" for name, value in headers)
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    loop = asyncio.get_running_loop()
    stage = "no TCP connection"
    try:
        async with asyncio.timeout(timeout):
            _, protocol = await loop.create_connection(
                lambda: WsClient(request, key, on_message), host, port
            )
            stage = "no upgrade"
            try:
                await protocol.open
            except BaseException:
                protocol.abort()
                raise
    except TimeoutError as exc:  # which half was stuck: the TCP handshake or the server's answer
        raise TimeoutError(f"{stage} in {timeout:g} s") from exc
    return protocol
