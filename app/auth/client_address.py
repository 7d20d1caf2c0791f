"""Which client a request comes from, for sign-in throttles and lockouts.

X-Forwarded-For is written by whoever sends the request, so it is believed only when the
peer is one of STRATA_TRUSTED_PROXIES; otherwise anyone could claim a fresh address per
guess."""

import ipaddress
from collections.abc import Mapping
from functools import lru_cache

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.request_address import set_request_address
from app.core.settings import get_settings

# An IPv6 user gets a whole /64 from their provider: counting single addresses would give
# an attacker 2**64 fresh ones.
IPV6_SOURCE_PREFIX = 64
MAX_SOURCE_LENGTH = 64

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _trusted_networks(trusted_proxies: str) -> tuple[Network, ...]:
    networks = []
    for entry in trusted_proxies.split(","):
        if entry.strip():
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
    return tuple(networks)


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
        return parsed.ipv4_mapped
    return parsed


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    parsed = _parse(address)
    return parsed is not None and any(parsed in network for network in networks)


def client_address(*, peer: str, forwarded_for: str, trusted_proxies: str) -> str:
    """The peer's address, or, when the peer is a trusted proxy, the nearest address in
    X-Forwarded-For that is not one (the proxies append, so the client is left of them)."""
    networks = _trusted_networks(trusted_proxies)
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


def source_of(address: str) -> str:
    """The unit sign-in limits count: an IPv4 address, an IPv6 /64, or the raw text of
    something that is not an address (a test client, a Unix socket)."""
    parsed = _parse(address)
    if parsed is None:
        return (address or "unknown")[:MAX_SOURCE_LENGTH]
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_SOURCE_PREFIX}", strict=False))
    return str(parsed)


def address_of_handshake(headers: Mapping[str, str]) -> str:
    """The client address of a Reflex websocket, from its handshake's headers (Reflex keeps
    the connection's peer as 'asgi-scope-client'), by the same trusted-proxy rules."""
    return client_address(
        peer=headers.get("asgi-scope-client", ""),
        forwarded_for=headers.get("x-forwarded-for", ""),
        trusted_proxies=get_settings().trusted_proxies,
    )


class RememberClientAddress:
    """ASGI middleware: each request's client address, for the audit entries its work writes
    (app/core/request_address.py)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            forwarded_for = ",".join(v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for")
            peer = scope["client"][0] if scope.get("client") else ""
            set_request_address(
                client_address(peer=peer, forwarded_for=forwarded_for, trusted_proxies=get_settings().trusted_proxies)
            )
        await self.app(scope, receive, send)
