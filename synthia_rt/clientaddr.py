"""The client's address, the same way for every rate limit, audit row and log line.

The TCP peer is the client unless it is a trusted proxy (``FORWARDED_ALLOW_IPS``: addresses or
CIDRs; empty = trust nobody). Behind trusted proxies the client is the rightmost address of
``X-Forwarded-For`` that is not itself a trusted proxy: each proxy appends the address it saw,
so everything left of the first untrusted hop may be forged by the client. Works on any ASGI
scope (HTTP or WebSocket).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=16)
def trusted_networks(spec: tuple[str, ...]) -> tuple[Network, ...]:
    """Parse ``FORWARDED_ALLOW_IPS`` entries; ``ValueError`` names a bad one."""
    networks: list[Network] = []
    for item in spec:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR: {item!r}") from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    """An address from a header entry: ``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:80`` or ``::1``."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, networks: Iterable[Network]) -> bool:
    return any(address in network for network in networks)


def client_address(scope: Scope, trusted: tuple[str, ...]) -> str | None:
    client = scope.get("client")
    peer: str | None = str(client[0]) if client else None
    if peer is None or not trusted:
        return peer
    networks = trusted_networks(trusted)
    peer_address = _address(peer)
    if peer_address is None or not _trusted(peer_address, networks):
        return peer
    hops = [
        entry
        for name, value in scope.get("headers", ())
        if name == b"x-forwarded-for"
        for entry in value.decode("latin-1").split(",")
        if entry.strip()
    ]
    closest = peer_address
    for entry in reversed(hops):
        address = _address(entry)
        if address is None:
            break  # a trusted proxy appends real addresses: the chain is broken here
        if not _trusted(address, networks):
            return str(address)
        closest = address
    return str(closest)
