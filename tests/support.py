"""What the integration and end-to-end tests share: running services in-process,
reading topics, waiting for effects, a webhook receiver, and the events of typical leads."""

from __future__ import annotations

import asyncio
import importlib
import os
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from fastapi import FastAPI

from shared.db import make_engine
from shared.envelope import Envelope
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.vault import Vault

T = TypeVar("T")
ADMIN = {"Authorization": "Bearer test-admin-key"}


# httpx loads certifi's CA bundle into a new TLS context for every client: about 20 ms of CPU,
# which the polling loops here (a client per poll) paid hundreds of times per service start.
# Tests call services over plain HTTP on loopback, so one context serves them all.
LOOPBACK_TLS = ssl.create_default_context()


def loopback_client(**options: Any) -> httpx.AsyncClient:
    """An httpx client for the services under test (plain HTTP on loopback)."""
    return httpx.AsyncClient(verify=LOOPBACK_TLS, **options)


@dataclass
class RunningService:
    app: FastAPI
    runtime: ServiceRuntime
    client: httpx.AsyncClient


@asynccontextmanager
async def running(service: str, settings: Settings) -> AsyncIterator[RunningService]:
    """One service in this process against the real broker and Postgres."""
    app = importlib.import_module(f"services.{service}.app").create(settings)
    runtime: ServiceRuntime = app.state.runtime
    await runtime.start()
    await asyncio.wait_for(runtime.started.wait(), timeout=30)
    if runtime.consumer is not None:
        await eventually(lambda: _true_or_none(runtime.consumer.running), timeout=30)  # type: ignore[union-attr]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}") as client:
        try:
            yield RunningService(app, runtime, client)
        finally:
            await runtime.stop()


def _true_or_none(value: bool) -> bool | None:
    return True if value else None


async def eventually(probe: Callable[[], Awaitable[T | None] | T | None], timeout: float = 20.0) -> T:
    """Poll `probe` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result not in (None, False):
            return result  # type: ignore[return-value]
        last = result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
        await asyncio.sleep(0.1)


@dataclass
class TopicTap:
    """Everything published on a topic since the tap started (read from the beginning)."""

    consumer: AIOKafkaConsumer
    records: list[ConsumerRecord] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def _pump(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            for records in batch.values():
                self.records.extend(records)

    def envelopes(self, type_: str | None = None) -> list[Envelope]:
        found = []
        for record in self.records:
            try:
                envelope = Envelope.from_bytes(record.value)
            except Exception:
                continue
            if type_ is None or envelope.type == type_:
                found.append(envelope)
        return found

    async def wait_for(
        self,
        type_: str,
        predicate: Callable[[Envelope], bool] = lambda e: True,
        count: int = 1,
        timeout: float = 20.0,
    ) -> list[Envelope]:
        async def probe() -> list[Envelope] | None:
            matches = [e for e in self.envelopes(type_) if predicate(e)]
            return matches if len(matches) >= count else None

        return await eventually(probe, timeout=timeout)


async def opened(settings: Settings, envelopes: list[Envelope]) -> list[Envelope]:
    """Envelopes as the services' consumers see them: personal fields opened with the vault
    (docs/privacy.md); those of an erased person left out."""
    engine = make_engine(settings, bounded=False)
    try:
        async with engine.connect() as conn:
            found = await Vault.of(settings).open_envelopes(conn, envelopes)
    finally:
        await engine.dispose()
    return [e for e in found if isinstance(e, Envelope)]


@asynccontextmanager
async def tap(settings: Settings, topic: str) -> AsyncIterator[TopicTap]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    t = TopicTap(consumer)
    t._task = asyncio.create_task(t._pump())
    try:
        yield t
    finally:
        t._task.cancel()
        await consumer.stop()


@asynccontextmanager
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@dataclass
class WebhookReceiver:
    """A webhook endpoint on a free local port, as a subscriber runs one: it checks each request's
    signature with `verify(secret, body, header)` and answers `failure_status` to the first
    `failures` attempts, then 200."""

    verify: Callable[[str, bytes, str], bool]
    failures: int = 0
    failure_status: int = 500
    secret: str = ""  # set once the subscription is made
    url: str = ""
    attempts: int = 0
    forged: int = 0  # requests whose signature did not verify (answered 400)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)  # accepted (headers, body)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            self.attempts += 1
            if not self.verify(self.secret, body, headers.get("leadflow-signature", "")):
                self.forged += 1
                return 400
            if self.attempts <= self.failures:
                return self.failure_status
            self.received.append((headers, body))
            return 200


@contextmanager
def webhook_receiver(
    verify: Callable[[str, bytes, str], bool], *, failures: int = 0, failure_status: int = 500
) -> Iterator[WebhookReceiver]:
    """A `WebhookReceiver` served by a real HTTP server in a thread while the block runs."""
    receiver = WebhookReceiver(verify, failures=failures, failure_status=failure_status)

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.send_response(receiver.answer(headers, body))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/leadflow"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def now_minus(minutes: float = 0) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


def unique_email(name: str = "buyer") -> str:
    return f"{name}.{uuid.uuid4().hex[:8]}@northwind-software.example"


def good_fit_journey(email: str) -> list[dict[str, Any]]:
    """A VP of Marketing at a 500-person US software company who asks for a demo."""
    traits = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "title": "VP of Marketing",
        "company": "Northwind Software",
        "company_domain": "northwind-software.example",
        "company_size": 500,
        "industry": "Software",
        "country": "US",
    }
    steps = [
        ("page_view", {"url": "https://leadflow.example/pricing"}),
        ("page_view", {"url": "https://leadflow.example/pricing"}),
        ("content_download", {"content_id": "whitepaper-2026"}),
        ("demo_request", {"form_id": "demo"}),
    ]
    return [
        {
            "event_id": f"e-{uuid.uuid4().hex}",
            "type": kind,
            "occurred_at": now_minus(len(steps) - i),
            "email": email,
            "traits": traits,
            "properties": props,
        }
        for i, (kind, props) in enumerate(steps)
    ]


def start_service(
    service: str, settings: Settings, *, config_dir: Any = None, log: Any = None, **env: str
) -> tuple[subprocess.Popen[bytes], str]:
    """`leadflow serve <service>` as its own process on a free port; returns it and its URL.
    `log`: a file its stderr (the service's log) goes to; by default it is dropped."""
    from leadflow.devstack.ports import free_port

    port = free_port()
    environment = {
        **os.environ,
        "LEADFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADFLOW_KAFKA_IDEMPOTENT_PRODUCER": str(settings.kafka_idempotent_producer).lower(),
        "LEADFLOW_DATABASE_URL": settings.database_url,
        "LEADFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "LEADFLOW_ADMIN_KEY": settings.admin_key,
        "LEADFLOW_CONFIG_DIR": str(config_dir or settings.config_dir),
        f"LEADFLOW_{service.upper()}_PORT": str(port),
        "LEADFLOW_CONSUMER_POLL_MS": "50",
        "LEADFLOW_OUTBOX_IDLE_POLL_MS": "100",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "leadflow", "serve", service],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=log if log is not None else subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"


async def service_ready(url: str) -> bool | None:
    try:
        async with loopback_client() as client:
            return (await client.get(f"{url}/readyz")).status_code == 200 or None
    except httpx.TransportError:
        return None
