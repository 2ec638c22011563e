"""The webhook SSRF egress policy: URL checks, address tables, resolve-and-check."""

from __future__ import annotations

import ipaddress

import pytest

from mailgate.services.webhooks import egress
from mailgate.services.webhooks.egress import EgressRefused


@pytest.mark.parametrize(
    ("address", "default_ok", "private_blocked_ok"),
    [
        # public
        ("93.184.216.34", True, True),
        ("2606:2800:220:1:248:1893:25c8:1946", True, True),
        # loopback and private: allowed unless webhooksBlockPrivate
        ("127.0.0.1", True, False),
        ("127.8.9.10", True, False),
        ("::1", True, False),
        ("10.1.2.3", True, False),
        ("172.16.0.1", True, False),
        ("172.31.255.254", True, False),
        ("192.168.1.10", True, False),
        ("100.64.0.1", True, False),
        ("fd12:3456::1", True, False),
        ("::ffff:192.168.1.1", True, False),  # IPv4-mapped
        ("172.32.0.1", True, True),  # just outside 172.16/12
        # always refused
        ("169.254.169.254", False, False),  # metadata
        ("169.254.170.2", False, False),  # ECS metadata
        ("100.100.100.200", False, False),  # Alibaba metadata
        ("fd00:ec2::254", False, False),  # AWS IMDS IPv6
        ("169.254.1.1", False, False),  # link-local
        ("fe80::1", False, False),
        ("febf::1", False, False),
        ("224.0.0.1", False, False),  # multicast
        ("239.255.255.250", False, False),
        ("ff02::1", False, False),
        ("0.0.0.0", False, False),  # unspecified
        ("0.1.2.3", False, False),
        ("::", False, False),
        ("255.255.255.255", False, False),  # broadcast / reserved
        ("240.0.0.1", False, False),
        ("::ffff:169.254.169.254", False, False),  # mapped metadata
    ],
)
def test_address_table(address: str, default_ok: bool, private_blocked_ok: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert (egress.refusal(ip, block_private=False) is None) is default_ok
    assert (egress.refusal(ip, block_private=True) is None) is private_blocked_ok


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "example.com/hook",
        "http:///nohost",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.GOOGLE.INTERNAL./x",
        "http://example.com:99999/",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(EgressRefused):
        egress.check_url(url)


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("http://example.com/hook", "example.com", 80),
        ("HTTPS://Example.COM/hook?x=1", "example.com", 443),
        ("http://127.0.0.1:8080/", "127.0.0.1", 8080),
        ("http://[::1]:9000/x", "::1", 9000),
        ("https://user:pw@hooks.example.com/", "hooks.example.com", 443),
    ],
)
def test_good_urls_parse(url: str, host: str, port: int) -> None:
    target = egress.check_url(url)
    assert (target.host, target.port) == (host, port)


def _resolver(table: dict[str, list[str]]) -> egress.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


async def test_every_resolved_address_is_checked() -> None:
    resolver = _resolver(
        {
            "ok.test": ["93.184.216.34", "2606:2800:220:1::1"],
            "lan.test": ["192.168.1.5"],
            "rebind.test": ["93.184.216.34", "169.254.169.254"],
        }
    )
    got = await egress.resolve_checked(
        egress.check_url("http://ok.test/"), block_private=False, resolver=resolver
    )
    assert [str(a) for a in got] == ["93.184.216.34", "2606:2800:220:1::1"]
    lan = egress.check_url("http://lan.test/")
    assert await egress.resolve_checked(lan, block_private=False, resolver=resolver)
    with pytest.raises(EgressRefused, match="private"):
        await egress.resolve_checked(lan, block_private=True, resolver=resolver)
    with pytest.raises(EgressRefused, match="metadata"):
        await egress.resolve_checked(
            egress.check_url("http://rebind.test/"), block_private=False, resolver=resolver
        )
    with pytest.raises(OSError):  # resolution failure: transient, not a refusal
        await egress.resolve_checked(
            egress.check_url("http://nx.test/"), block_private=False, resolver=resolver
        )


async def test_ip_literals_are_not_resolved() -> None:
    resolver = _resolver({})
    got = await egress.resolve_checked(
        egress.check_url("http://[::1]:80/"), block_private=False, resolver=resolver
    )
    assert got == [ipaddress.ip_address("::1")]
    with pytest.raises(EgressRefused):
        await egress.resolve_checked(
            egress.check_url("http://169.254.169.254/"), block_private=False, resolver=resolver
        )


async def test_system_resolver_resolves_localhost() -> None:
    addresses = await egress.system_resolver("localhost", 80)
    assert addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses)
