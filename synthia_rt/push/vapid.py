"""The server's VAPID key pair (RFC 8292): loaded from ``VAPID_PRIVATE_KEY``, or generated."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid

from synthia_rt.settings import SettingsError


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def load(private_key: str) -> Vapid | None:
    """``None`` when unset (push disabled); a malformed key is a configuration error."""
    text = private_key.strip()
    if not text:
        return None
    try:
        if "-----BEGIN" in text:
            return Vapid.from_pem(text.encode())
        return Vapid.from_string(text)
    except Exception:  # noqa: BLE001 - py_vapid raises several kinds; the message names the setting
        raise SettingsError(
            "VAPID_PRIVATE_KEY is not a P-256 private key (base64url raw 32 bytes, DER or PEM)"
        ) from None


def public_key(vapid: Vapid) -> str:
    """The ``applicationServerKey`` browsers subscribe with: uncompressed point, base64url."""
    point: bytes = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(point)


def generate() -> tuple[str, str]:
    """(private key as base64url raw scalar for VAPID_PRIVATE_KEY, public applicationServerKey)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return private, b64url(point)
