"""Posting one webhook safely: only to public addresses, no redirects, a few KB of answer at most.

The URL was checked at registration, but a name can resolve anywhere and resolve differently
a second later. So the HTTP client's network backend resolves each host itself, refuses the
connection when any address is inward (`shared.destinations`), and connects to the address
it checked: a DNS rebind between check and connect has nothing to work with. Because the
check sits under httpcore, the URL keeps its name, so the Host header, TLS SNI and
certificate checks are the receiver's, and pooled connections are keyed by name as usual.

Receivers are not trusted to answer briefly: the answer is streamed, at most
`MAX_ANSWER_BYTES` of it read (one network read of up to 64 KB, in practice) and none of it
kept; an attempt summarises itself as "HTTP 503" or "connect error", never with the body.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpcore
import httpx

from shared.destinations import AllowList, IPAddress, Refusal, host_literal, resolved_refusal, url_refusal

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
MAX_ANSWER_BYTES = 4096
TIMEOUT = httpx.Timeout(5.0)
ATTEMPT_TIMEOUT_S = 15.0  # the whole attempt, so a receiver trickling bytes cannot hold it


class DestinationRefused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


@dataclass(frozen=True)
class Answer:
    """What one attempt came to: a status code (None when there was no answer) and a summary."""

    status_code: int | None
    summary: str | None  # None for a 2xx; else "HTTP 500", "timeout", "refused: loopback", ...
    bytes_read: int = 0

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, as the system resolver says."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos))


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses that pass the destination rules."""

    def __init__(self, allow: AllowList, resolve: Resolver) -> None:
        self.allow = allow
        self.resolve = resolve
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await self.checked_address(host, port)
        return await self.inner.connect_tcp(
            str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def checked_address(self, host: str, port: int) -> IPAddress:
        """The address to connect to: every one `host` resolves to must be allowed."""
        literal = host_literal(host)
        addresses = [literal] if literal is not None else await self.resolve(host, port)
        if not addresses:
            raise OSError(f"{host} resolves to no address")
        refusal = resolved_refusal(host, addresses, self.allow)
        if refusal is not None:
            raise DestinationRefused(refusal)
        return addresses[0]

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def make_client(allow: AllowList, resolve: Resolver = system_resolver) -> httpx.AsyncClient:
    """The client webhooks are posted with: checked connections, no proxy from the environment."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx builds its connection pool without a way to pass the backend; the pool takes one.
    transport._pool._network_backend = CheckedBackend(allow, resolve)
    return httpx.AsyncClient(transport=transport, timeout=TIMEOUT, follow_redirects=False, trust_env=False)


async def post_once(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow: AllowList,
    max_answer_bytes: int = MAX_ANSWER_BYTES,
) -> Answer:
    """POST `body` to `url` once and read at most `max_answer_bytes` of the answer (and keep none)."""
    refusal = url_refusal(url, allow)
    if refusal is not None:
        return Answer(None, f"refused: {refusal.rule}")
    try:
        async with asyncio.timeout(ATTEMPT_TIMEOUT_S):
            return await _stream(client, url, body, headers, max_answer_bytes)
    except DestinationRefused as exc:
        return Answer(None, f"refused: {exc.refusal.rule}")
    except (TimeoutError, httpx.TimeoutException):
        return Answer(None, "timeout")
    except socket.gaierror:
        return Answer(None, "DNS error")
    except (httpx.ConnectError, OSError):
        return Answer(None, "connect error")
    except httpx.HTTPError as exc:
        return Answer(None, f"transport error ({type(exc).__name__})")


async def _stream(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], max_answer_bytes: int
) -> Answer:
    async with client.stream("POST", url, content=body, headers=headers) as response:
        async for _ in response.aiter_raw():  # raw: a compressed answer is not inflated either
            if response.num_bytes_downloaded >= max_answer_bytes:
                break
        status = response.status_code
        read = response.num_bytes_downloaded
    return Answer(status, None if 200 <= status < 300 else f"HTTP {status}", read)
