"""A local Web Push service on 127.0.0.1 that checks what a real one relies on.

For each POST it verifies the VAPID header (RFC 8292: ``vapid t=<ES256 JWT>,k=<public key>``,
``aud`` = the endpoint's origin, ``exp`` in the future, ``sub`` present) and decrypts the body
(RFC 8291 aes128gcm) with the subscription's private key and auth secret — the keys a browser
would hold, generated here with cryptography's P-256.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """One browser's push subscription: its ECDH key pair and auth secret."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription(self) -> dict[str, Any]:
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)},
        }


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    claims: dict[str, Any]
    vapid_key: str
    message: dict[str, Any]


class PushService:
    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.browsers: dict[str, Browser] = {}  # path → browser
        self.received: asyncio.Queue[Received] = asyncio.Queue()
        self.attempts: dict[str, int] = {}
        self.answers: dict[str, list[int]] = {}  # path → statuses to answer, in order (then 201)
        self.errors: list[str] = []

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def browser(self, name: str) -> Browser:
        path = f"/push/{name}"
        self.browsers[path] = Browser(self.origin + path)
        return self.browsers[path]

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def next(self, timeout: float = 10.0) -> Received:
        return await asyncio.wait_for(self.received.get(), timeout)

    def _check(self, path: str, headers: dict[str, str], body: bytes) -> Received:
        scheme, _, params = headers["authorization"].partition(" ")
        assert scheme == "vapid", headers["authorization"]
        fields = dict(part.strip().split("=", 1) for part in params.split(","))
        raw_key = unb64url(fields["k"])
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw_key)
        claims: dict[str, Any] = jwt.decode(
            fields["t"], public, algorithms=["ES256"], audience=self.origin,
            options={"require": ["exp", "sub", "aud"]},
        )  # fmt: skip
        assert claims["exp"] > time.time() and claims["sub"], claims
        assert headers["content-encoding"] == "aes128gcm" and int(headers["ttl"]) >= 0
        browser = self.browsers[path]
        plain = http_ece.decrypt(
            body, private_key=browser.key, auth_secret=browser.auth, version="aes128gcm"
        )
        return Received(path, headers, claims, fields["k"], json.loads(plain))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = (await reader.readline()).decode("latin-1").strip()
                if not line:
                    return
                method, path, _ = line.split(" ", 2)
                headers: dict[str, str] = {}
                while h := (await reader.readline()).decode("latin-1").strip():
                    name, _, value = h.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.attempts[path] = self.attempts.get(path, 0) + 1
                planned = self.answers.get(path) or []
                status = planned.pop(0) if planned else 201
                if status == 201:
                    try:
                        assert method == "POST"
                        self.received.put_nowait(self._check(path, headers, body))
                    except Exception as exc:  # noqa: BLE001 - reported by the test
                        self.errors.append(repr(exc))
                        status = 400
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % status)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
