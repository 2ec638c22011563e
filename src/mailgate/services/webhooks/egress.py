"""SSRF egress policy for webhook targets: pure checks plus an async resolve-and-check.

Refused always: schemes other than http/https, URLs with no host, cloud metadata endpoints (by
name and by address), link-local (169.254.0.0/16, fe80::/10), multicast, unspecified
(0.0.0.0/8, ::), reserved (240.0.0.0/4, broadcast) addresses. Allowed by default: loopback and
private ranges, because self-hosted users post to services on the same machine or LAN; the
``webhooksBlockPrivate`` setting refuses them too (loopback, RFC 1918, CGNAT 100.64.0.0/10,
IPv6 ULA fc00::/7). IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.

Every address a host name resolves to is checked, and the delivery then connects to one of the
checked addresses (pinned), so DNS rebinding between check and connect does not get through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

ALLOWED_SCHEMES = frozenset({"http", "https"})
METADATA_HOSTS = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)
ALWAYS_BLOCKED_NETS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network", includes the unspecified address
        "169.254.0.0/16",  # IPv4 link-local
        "224.0.0.0/4",  # IPv4 multicast
        "240.0.0.0/4",  # reserved, includes 255.255.255.255
        "::/128",  # IPv6 unspecified
        "fe80::/10",  # IPv6 link-local
        "ff00::/8",  # IPv6 multicast
    )
)
PRIVATE_NETS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # carrier-grade NAT
        "::1/128",
        "fc00::/7",  # unique local
    )
)


class EgressRefused(Exception):
    """The target is not allowed by the egress policy (a permanent delivery failure)."""


@dataclass(frozen=True)
class Target:
    """A parsed webhook URL: ``host`` without brackets, ``port`` always set."""

    scheme: str
    host: str
    port: int
    parts: SplitResult


def check_url(url: str) -> Target:
    """Parse and check the URL's scheme and host name; raise :class:`EgressRefused`."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise EgressRefused(f"invalid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise EgressRefused(f"scheme {scheme or '(none)'!r} is not allowed (http or https only)")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise EgressRefused("the URL has no host")
    if host in METADATA_HOSTS:
        raise EgressRefused(f"{host} is a cloud metadata endpoint")
    return Target(scheme, host, port or (443 if scheme == "https" else 80), parts)


def parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def refusal(address: IPAddress, *, block_private: bool) -> str | None:
    """Why the address is refused, or None when it is allowed."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    for net in ALWAYS_BLOCKED_NETS:
        if address.version == net.version and address in net:
            return f"{address} is in {net} (link-local, multicast, unspecified or reserved)"
    if block_private:
        for net in PRIVATE_NETS:
            if address.version == net.version and address in net:
                return f"{address} is in the private range {net} (webhooksBlockPrivate is on)"
    return None


def check_address(address: IPAddress, *, block_private: bool) -> None:
    reason = refusal(address, block_private=block_private)
    if reason is not None:
        raise EgressRefused(reason)


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (asyncio getaddrinfo), in the resolver's order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = str(sockaddr[0])
        if addr not in out:
            out.append(addr)
    return out


async def resolve_checked(
    target: Target, *, block_private: bool, resolver: Resolver = system_resolver
) -> list[IPAddress]:
    """The target's addresses, all of them allowed; raise :class:`EgressRefused` when any is
    refused. Resolution failures (``OSError``) propagate: they are transient, not a refusal."""
    literal = parse_ip(target.host)
    if literal is not None:
        check_address(literal, block_private=block_private)
        return [literal]
    addresses = [a for a in (parse_ip(r) for r in await resolver(target.host, target.port)) if a]
    if not addresses:
        raise OSError(f"{target.host} did not resolve to any address")
    for address in addresses:
        check_address(address, block_private=block_private)
    return addresses
