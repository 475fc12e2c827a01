"""The load generator: a minimal HTTP/1.1 client on asyncio streams, closed-loop (`hammer`, for
throughput) and open-loop (`fixed_rate`, for latency)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

HTTP_CONCURRENCY = 32


async def post_raw(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> tuple[int, bytes]:
    """One HTTP/1.1 POST on a kept-alive connection; (status, body)."""
    writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    header = await reader.readuntil(b"\r\n\r\n")
    status = int(header[9:12])
    length = 0
    for line in header.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, await reader.readexactly(length)


async def hammer(url: str, bodies: Callable[[int], bytes], requests: int, headers: dict[str, str]) -> float:
    """Requests per second over HTTP_CONCURRENCY kept-alive connections.

    A minimal HTTP/1.1 client on asyncio streams: a general-purpose client such
    as httpx costs more CPU per request than the servers measured here, and on
    two cores it would become the ceiling instead of the server.
    """
    parsed = httpx.URL(url)
    head = (
        f"POST {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {parsed.host}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    ).encode()
    counter = iter(range(requests))

    async def worker(warm_up: int) -> None:
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        try:
            for _ in range(warm_up):
                await post_raw(reader, writer, head, bodies(0))
            await ready.wait()
            for i in counter:
                status, body = await post_raw(reader, writer, head, bodies(i))
                if status >= 300:
                    raise RuntimeError(f"{url}: {status} {body[:200]!r}")
        finally:
            writer.close()

    ready = asyncio.Event()
    workers = [asyncio.create_task(worker(warm_up=1)) for _ in range(HTTP_CONCURRENCY)]
    await asyncio.sleep(1.0)  # connections open and warmed up
    started = time.perf_counter()
    ready.set()
    await asyncio.gather(*workers)
    return requests / (time.perf_counter() - started)


async def fixed_rate(
    url: str,
    requests: list[tuple[str, str, bytes]],
    *,
    rate: float,
    headers: dict[str, str],
    connections: int = 16,
) -> list[float]:
    """Latencies (ms) of (method, path, body) requests sent open-loop at `rate` a second.

    Open loop: each request is due at its own time whether or not earlier ones
    have answered, so a slow server shows up as latency rather than as a lower rate.
    """
    parsed = httpx.URL(url)
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(parsed.host, parsed.port))
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    latencies: list[float] = []

    async def one(due: float, method: str, path: str, body: bytes) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        reader, writer = await pool.get()
        try:
            head = f"{method} {path} HTTP/1.1\r\nHost: {parsed.host}\r\n{extra}".encode()
            status, answer = await post_raw(reader, writer, head, body)
            if status >= 300:
                raise RuntimeError(f"{method} {path}: {status} {answer[:200]!r}")
            latencies.append((time.perf_counter() - due) * 1000)
        finally:
            pool.put_nowait((reader, writer))

    start = time.perf_counter() + 0.2
    await asyncio.gather(*(one(start + i / rate, *r) for i, r in enumerate(requests)))
    while not pool.empty():
        pool.get_nowait()[1].close()
    return latencies
