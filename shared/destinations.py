"""Where a webhook may be sent: public addresses only, unless an operator allow-lists a host.

A webhook URL is chosen by whoever holds a key, so without this check leadflow would POST
to its own loopback, the cluster's private network or a cloud metadata endpoint on their
behalf. The rules are pure (values in, a refusal or None out) and apply twice: to the URL
at registration, and to every address its host resolves to at delivery time
(`shared.webhook_transport`), so a DNS name that points inward is caught as well.

Host literals are read the way C's `inet_aton` and browsers read them, so `2130706433`,
`0x7f.1` and `0177.0.0.1` are all 127.0.0.1; IPv6 addresses that carry an IPv4 one
(mapped, compatible, NAT64, 6to4, Teredo) are judged by the IPv4 address inside.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HEX, _OCTAL, _DECIMAL = (
    re.compile(r"0[xX][0-9a-fA-F]*"),
    re.compile(r"0[0-7]+"),
    re.compile(r"0|[1-9][0-9]*"),
)
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


@dataclass(frozen=True)
class Refusal:
    """Why a destination is refused: `rule` is machine-readable (`loopback`), `message` says more."""

    rule: str
    message: str


@dataclass(frozen=True)
class AllowList:
    """Destinations an operator lets through despite the rules: host names and IP networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """From `LEADFLOW_WEBHOOK_ALLOWED_HOSTS` entries: `hooks.internal`, `127.0.0.1`, `10.1.0.0/16`."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(_normalize_name(entry))
        return cls(frozenset(hosts), tuple(networks))

    def admits_host(self, host: str) -> bool:
        return _normalize_name(host) in self.hosts

    def admits_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def address_refusal(address: IPAddress) -> Refusal | None:
    """Why leadflow must not connect to `address`, or None for a public unicast address."""
    embedded = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if embedded is not None:
        refusal = address_refusal(embedded)
        return None if refusal is None else Refusal(refusal.rule, f"{address} carries {refusal.message}")
    for rule, applies in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link_local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not_global", not address.is_global),  # e.g. 100.64.0.0/10, shared carrier-grade NAT
    ):
        if applies:
            return Refusal(rule, f"{rule.replace('_', '-')} address {address}")
    return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for, if it is of a kind that carries one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    packed = int(address)
    if address in _NAT64 or (packed >> 32 == 0 and packed > 1):  # NAT64, or IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return None


def host_literal(host: str) -> IPAddress | None:
    """The address a URL host spells out, in any encoding `inet_aton` accepts; None for a name."""
    host = host.strip().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        try:
            return ipaddress.IPv6Address(host[1:-1].split("%", 1)[0])
        except ValueError:
            return None
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    return _inet_aton(host)


def url_refusal(url: str, allow: AllowList = AllowList()) -> Refusal | None:
    """Why a webhook URL cannot be registered, judged on its text alone (no DNS)."""
    if len(url) > MAX_URL_LENGTH:
        return Refusal("too_long", f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        return Refusal("invalid_url", f"not a URL: {exc}")
    if parts.scheme.lower() not in SCHEMES:
        return Refusal("scheme", "only http and https URLs can receive webhooks")
    if not host:
        return Refusal("invalid_url", "the URL has no host")
    return host_refusal(host, allow)


def host_refusal(host: str, allow: AllowList = AllowList()) -> Refusal | None:
    """Why a host is refused before any lookup: an inward address literal, or a local name."""
    if allow.admits_host(host):
        return None
    address = host_literal(host)
    if address is not None:
        return None if allow.admits_address(address) else address_refusal(address)
    name = _normalize_name(host)
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return Refusal("loopback", f"{name} names this machine")
    return None


def resolved_refusal(host: str, addresses: Iterable[IPAddress], allow: AllowList) -> Refusal | None:
    """Why a host whose name resolved to `addresses` is refused: the first inward address found."""
    if allow.admits_host(host):
        return None
    for address in addresses:
        if allow.admits_address(address):
            continue
        refusal = address_refusal(address)
        if refusal is not None:
            return Refusal(refusal.rule, f"{host} resolves to {refusal.message}")
    return None


def _normalize_name(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """IPv4 in inet_aton's forms: a, a.b, a.b.c, a.b.c.d, each part decimal, octal (0...) or hex (0x...)."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    try:
        numbers = [_inet_number(part) for part in parts]
    except ValueError:
        return None
    *leading, last = numbers
    if any(n > 0xFF for n in leading) or last >= 1 << (8 * (5 - len(parts))):
        return None
    value = last
    for index, number in enumerate(leading):
        value |= number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _inet_number(part: str) -> int:
    if _HEX.fullmatch(part):
        return int(part[2:] or "0", 16)
    if _OCTAL.fullmatch(part):
        return int(part, 8)
    if _DECIMAL.fullmatch(part):
        return int(part)
    raise ValueError(part)
