"""Where webhooks may go: public addresses only, in whatever encoding a URL spells an address,
unless the operator allow-lists the host; and the same rules on what a name resolves to."""

from __future__ import annotations

import ipaddress

import pytest

from shared.destinations import (
    MAX_URL_LENGTH,
    AllowList,
    address_refusal,
    host_literal,
    resolved_refusal,
    url_refusal,
)

INWARD_URLS = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://localhost:8080/hook", "loopback"),
    ("http://LOCALHOST./hook", "loopback"),
    ("http://api.localhost/hook", "loopback"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://0/hook", "unspecified"),
    ("http://2130706433/hook", "loopback"),  # decimal
    ("http://0x7f000001/hook", "loopback"),  # hex
    ("http://0177.0.0.1/hook", "loopback"),  # octal
    ("http://0x7f.1/hook", "loopback"),  # short form, mixed
    ("http://127.1/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://[::]/hook", "unspecified"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4-mapped IPv6
    ("http://[::ffff:a9fe:a9fe]/hook", "link_local"),  # mapped 169.254.169.254
    ("http://[64:ff9b::a00:1]/hook", "private"),  # NAT64 of 10.0.0.1
    ("http://[2002:7f00:1::]/hook", "loopback"),  # 6to4 of 127.0.0.1
    ("http://10.0.0.1/hook", "private"),
    ("http://10.255.255.255/hook", "private"),
    ("http://172.16.3.4/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link_local"),
    ("http://[fe80::1]/hook", "link_local"),
    ("http://[fc00::1]/hook", "private"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://[ff02::1]/hook", "multicast"),
    ("http://240.0.0.1/hook", "reserved"),
    ("http://100.64.0.1/hook", "not_global"),  # carrier-grade NAT
]


@pytest.mark.parametrize(("url", "rule"), INWARD_URLS)
def test_inward_destinations_are_refused_by_name_of_the_rule(url: str, rule: str) -> None:
    refusal = url_refusal(url)
    assert refusal is not None and refusal.rule == rule, url


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "https://example.com:8443/hooks?x=1",
        "http://8.8.8.8/hook",
        "http://[2606:4700:4700::1111]/hook",
        "http://134744072/hook",  # 8.8.8.8, decimal: public is public in any spelling
    ],
)
def test_public_destinations_are_accepted(url: str) -> None:
    assert url_refusal(url) is None


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.2", "10.1.0.2"),
        ("[::1]", "::1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
    ],
)
def test_host_literals_are_read_as_inet_aton_reads_them(text: str, address: str) -> None:
    assert host_literal(text) == ipaddress.ip_address(address)


@pytest.mark.parametrize("name", ["example.com", "1.2.3.4.5", "08.1.1.1", "256.1.1.1.1", "hooks-1.io"])
def test_names_are_not_mistaken_for_addresses(name: str) -> None:
    assert host_literal(name) is None


def test_a_url_longer_than_the_cap_is_refused_before_anything_else() -> None:
    url = "https://example.com/" + "a" * MAX_URL_LENGTH
    refusal = url_refusal(url)
    assert refusal is not None and refusal.rule == "too_long"
    assert url_refusal("https://example.com/" + "a" * (MAX_URL_LENGTH - 100)) is None


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/"])
def test_only_http_and_https_are_accepted(url: str) -> None:
    refusal = url_refusal(url)
    assert refusal is not None and refusal.rule == "scheme"


def test_an_operator_allow_list_admits_hosts_and_networks() -> None:
    allow = AllowList.parse(["hooks.internal", "127.0.0.1", "10.20.0.0/16", " "])
    assert url_refusal("http://127.0.0.1:8080/hook", allow) is None
    assert url_refusal("http://10.20.3.4/hook", allow) is None
    assert url_refusal("http://HOOKS.internal./hook", allow) is None
    assert url_refusal("http://10.21.0.1/hook", allow) is not None
    assert url_refusal("http://127.0.0.2/hook", allow) is not None
    assert url_refusal("http://localhost/hook", allow) is not None  # a name is not its address


def test_a_name_is_refused_when_any_address_it_resolves_to_is_inward() -> None:
    public, loopback = ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("127.0.0.1")
    refusal = resolved_refusal("hooks.example.com", [public, loopback], AllowList())
    assert refusal is not None and refusal.rule == "loopback"
    assert "hooks.example.com resolves to" in refusal.message
    assert resolved_refusal("hooks.example.com", [ipaddress.ip_address("8.8.4.4")], AllowList()) is None
    allowed = AllowList.parse(["127.0.0.0/8"])
    assert resolved_refusal("hooks.example.com", [loopback], allowed) is None
    assert resolved_refusal("hooks.example.com", [loopback], AllowList.parse(["hooks.example.com"])) is None


def test_documentation_and_benchmark_ranges_count_as_not_public() -> None:
    for text in ("192.0.2.1", "198.18.0.1", "2001:db8::1"):
        assert address_refusal(ipaddress.ip_address(text)) is not None, text
