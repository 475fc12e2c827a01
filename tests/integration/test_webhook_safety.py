"""Webhooks cannot be turned against leadflow: no inward destination at registration or at
delivery (whatever the URL or its DNS says), no redirect followed, a few KB of any answer read,
no answer kept, one bad subscription never stops the others, secrets sealed at rest."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest
from sqlalchemy import select

from services.handoff import store as handoff_store
from shared.db import make_engine, migrate
from shared.destinations import AllowList, IPAddress
from shared.secret_box import SecretBox, is_sealed
from shared.settings import Settings
from shared.signing import verify
from shared.webhook_delivery import as_stored, make_delivery_loop
from shared.webhook_transport import make_client, post_once
from shared.webhooks import WebhookTables, trim_backlogs
from tests.support import ADMIN, eventually, running, webhook_receiver

TABLES: WebhookTables = handoff_store.webhooks
LOOPBACK_ONLY = AllowList.parse(["127.0.0.1"])
NOTHING_ALLOWED = AllowList()


def accept_all(secret: str, body: bytes, header: str) -> bool:
    return True


def verifying(secret: str, body: bytes, header: str) -> bool:
    return verify(secret, body, header, now=int(time.time()))


def resolving(names: dict[str, list[str]]) -> Any:
    """A resolver that knows only `names` (and raises for a name mapped to "raise")."""

    async def resolve(host: str, port: int) -> list[IPAddress]:
        if names.get(host) == ["raise"]:
            raise RuntimeError(f"a resolver bug for {host}")
        return [ipaddress.ip_address(a) for a in names.get(host, [])]

    return resolve


# --- at delivery: the address connected to is the one checked -----------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
        "127.1",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
    ],
)
async def test_loopback_in_any_spelling_is_refused_at_delivery_and_receives_nothing(spelling: str) -> None:
    with webhook_receiver(accept_all) as receiver:
        port = urlsplit(receiver.url).port
        async with make_client(NOTHING_ALLOWED) as client:
            answer = await post_once(client, f"http://{spelling}:{port}", b"{}", {}, allow=NOTHING_ALLOWED)
    assert answer.status_code is None and answer.summary is not None
    assert answer.summary.startswith("refused: ")
    assert receiver.attempts == 0


@pytest.mark.parametrize(
    ("url", "summary"),
    [
        ("http://10.0.0.1/hook", "refused: private"),
        ("http://169.254.169.254/latest/meta-data/", "refused: link_local"),
        ("http://[::1]:9/hook", "refused: loopback"),
        ("http://example.com/" + "a" * 70_000, "refused: too_long"),
    ],
)
async def test_inward_and_overlong_urls_stored_earlier_are_refused_at_delivery(
    url: str, summary: str
) -> None:
    async with make_client(NOTHING_ALLOWED) as client:
        answer = await post_once(client, url, b"{}", {}, allow=NOTHING_ALLOWED)
    assert (answer.status_code, answer.summary) == (None, summary)


async def test_a_name_that_resolves_inward_is_refused_when_connecting() -> None:
    with webhook_receiver(accept_all) as receiver:
        port = urlsplit(receiver.url).port
        names = {"hooks.rebind.test": ["127.0.0.1"], "half.test": ["93.184.216.34", "127.0.0.1"]}
        async with make_client(NOTHING_ALLOWED, resolving(names)) as client:
            for host in names:
                answer = await post_once(client, f"http://{host}:{port}/x", b"{}", {}, allow=NOTHING_ALLOWED)
                assert answer.summary == "refused: loopback", host
    assert receiver.attempts == 0


async def test_an_allowed_name_is_connected_at_its_checked_address_keeping_its_host_header() -> None:
    with webhook_receiver(accept_all) as receiver:
        port = urlsplit(receiver.url).port
        async with make_client(LOOPBACK_ONLY, resolving({"hooks.internal.test": ["127.0.0.1"]})) as client:
            url = f"http://hooks.internal.test:{port}/hooks"
            answer = await post_once(client, url, b"{}", {}, allow=LOOPBACK_ONLY)
    assert answer.delivered
    [(headers, _)] = receiver.received
    assert headers["host"] == f"hooks.internal.test:{port}"


@contextmanager
def raw_server(answer: bytes, *, then_stream: int = 0) -> Iterator[SimpleNamespace]:
    """A TCP server answering every connection with `answer`, then `then_stream` more bytes;
    `sent` counts what it managed to write before the client hung up."""
    state = SimpleNamespace(url="", sent=0, connections=0)
    server = socket.create_server(("127.0.0.1", 0))
    state.url = f"http://127.0.0.1:{server.getsockname()[1]}/hook"

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            state.connections += 1
            with conn:
                conn.recv(65536)
                try:
                    conn.sendall(answer)
                    chunk = b"x" * 65536
                    while state.sent < then_stream:
                        conn.sendall(chunk)
                        state.sent += len(chunk)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.close()


async def test_a_huge_answer_is_read_a_few_kb_only() -> None:
    size = 60 * 1024 * 1024
    head = f"HTTP/1.1 500 Internal Server Error\r\nContent-Length: {size}\r\n\r\n".encode()
    process = psutil.Process()
    with raw_server(head, then_stream=size) as server:
        before = process.memory_info().rss
        async with make_client(LOOPBACK_ONLY) as client:
            answer = await post_once(client, server.url, b"{}", {}, allow=LOOPBACK_ONLY)
        grown = process.memory_info().rss - before
    assert (answer.status_code, answer.summary) == (500, "HTTP 500")  # a summary, not the body
    assert answer.bytes_read <= 128 * 1024
    assert grown < 20 * 1024 * 1024
    assert server.sent < size  # the receiver could not push its 60 MB


async def test_redirects_are_not_followed() -> None:
    with raw_server(
        b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n"
    ) as s:
        async with make_client(LOOPBACK_ONLY) as client:
            answer = await post_once(client, s.url, b"{}", {}, allow=LOOPBACK_ONLY)
    assert (answer.status_code, answer.summary, s.connections) == (302, "HTTP 302", 1)


# --- the delivery loop: one bad subscription stops nobody; paused ones get nothing ------


async def add(conn: Any, url: str, *, secret: str, active: bool = True) -> str:
    subscription_id = str(uuid.uuid4())
    await conn.execute(
        TABLES.subscriptions.insert().values(
            subscription_id=subscription_id,
            url=url,
            event_types=["handoff.created"],
            secret=secret,
            active=active,
        )
    )
    await conn.execute(
        TABLES.deliveries.insert().values(
            subscription_id=subscription_id,
            message_id=f"m-{uuid.uuid4()}",
            event_type="handoff.created",
            payload=b'{"type":"handoff.created"}',
        )
    )
    return subscription_id


async def test_the_delivery_loop_survives_a_subscription_whose_every_attempt_raises(
    settings: Settings,
) -> None:
    engine = make_engine(settings)
    box = SecretBox.from_key(settings.secrets_key)
    try:
        await migrate(engine, schema="handoff", versions_dir=handoff_store.MIGRATIONS)
        with webhook_receiver(verifying) as good, webhook_receiver(accept_all) as paused_receiver:
            good.secret = "whsec_stored_before_sealing"
            port = urlsplit(good.url).port
            async with engine.begin() as conn:
                ok = await add(conn, good.url, secret=good.secret)  # a plain-text row of old
                boom = await add(conn, f"http://boom.test:{port}/", secret=box.seal("whsec_b"))
                long = await add(conn, "http://example.com/" + "a" * 70_000, secret=box.seal("whsec_c"))
                paused = await add(conn, paused_receiver.url, secret=box.seal("whsec_d"), active=False)
            loop = make_delivery_loop(
                TABLES,
                render=as_stored,
                first_retry_s=0.1,
                max_age=timedelta(hours=1),
                poll_s=0.05,
                resolve=resolving({"boom.test": ["raise"]}),
            )
            stop = asyncio.Event()
            task = asyncio.create_task(loop(SimpleNamespace(settings=settings, engine=engine), stop))  # type: ignore[arg-type]
            try:
                await eventually(lambda: good.received or None, timeout=20)
                await eventually(lambda: _attempts(engine, boom, at_least=3), timeout=20)
                assert not task.done()
            finally:
                stop.set()
                await asyncio.wait_for(task, timeout=10)
        rows = {r.subscription_id: r for r in await _deliveries(engine)}
        assert rows[ok].status == "delivered"
        assert rows[boom].last_error == "internal error (RuntimeError)"
        assert rows[long].last_error == "refused: too_long"
        assert (rows[paused].attempts, paused_receiver.attempts) == (0, 0)
        async with engine.connect() as conn:
            stored = (await conn.execute(select(TABLES.subscriptions.c.secret))).scalars().all()
        assert all(is_sealed(s) for s in stored) and good.secret not in "".join(stored)
    finally:
        await engine.dispose()


async def test_over_the_pending_cap_the_oldest_deliveries_are_dropped(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        await migrate(engine, schema="handoff", versions_dir=handoff_store.MIGRATIONS)
        async with engine.begin() as conn:
            first = await add(conn, "https://example.com/a", secret="s")
            for _ in range(4):
                await conn.execute(
                    TABLES.deliveries.insert().values(
                        subscription_id=first,
                        message_id=f"m-{uuid.uuid4()}",
                        event_type="handoff.created",
                        payload=b"{}",
                    )
                )
            other = await add(conn, "https://example.com/b", secret="s")
            dropped = await trim_backlogs(conn, TABLES, keep=2)
        assert dropped == {first: 3}
        rows = sorted(await _deliveries(engine), key=lambda r: r.delivery_id)
        mine = [r.status for r in rows if r.subscription_id == first]
        assert mine == ["dropped", "dropped", "dropped", "pending", "pending"]
        assert [r.status for r in rows if r.subscription_id == other] == ["pending"]
    finally:
        await engine.dispose()


# --- the API: registration refuses, lifecycle, caps, sealed secrets --------------------


INWARD = [
    "http://127.0.0.1/hook",
    "http://localhost/hook",
    "http://0.0.0.0/hook",
    "http://2130706433/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://10.1.2.3/hook",
    "http://169.254.169.254/latest/meta-data/",
]


async def test_both_services_refuse_inward_and_overlong_urls_at_registration(settings: Settings) -> None:
    strict = settings.model_copy(update={"webhook_allowed_hosts": []})
    async with running("handoff", strict) as handoff, running("feedback", strict) as feedback:
        for service, event_type in ((handoff, "handoff.created"), (feedback, "alert.raised")):
            for url in INWARD:
                made = await service.client.post(
                    "/v1/webhooks", json={"url": url, "event_types": [event_type]}, headers=ADMIN
                )
                assert made.status_code == 422, url
                assert made.headers["content-type"] == "application/problem+json"
                [error] = made.json()["errors"]
                assert error["field"] == "url" and error["rule"] in {
                    "loopback",
                    "unspecified",
                    "private",
                    "link_local",
                }
            long = {"url": "https://example.com/" + "a" * 65_536, "event_types": [event_type]}
            refused = await service.client.post("/v1/webhooks", json=long, headers=ADMIN)
            assert refused.status_code == 422
            assert [(e["field"], e["rule"]) for e in refused.json()["errors"]] == [("url", "url_too_long")]
            listed = (await service.client.get("/v1/webhooks", headers=ADMIN)).json()
            assert listed == []


async def test_subscriptions_can_be_paused_rotated_and_deleted_and_are_capped_per_key(
    settings: Settings,
) -> None:
    capped = settings.model_copy(update={"webhook_max_subscriptions_per_key": 2})
    async with running("feedback", capped) as feedback:
        client = feedback.client
        body = {"url": "https://hooks.example.com/a", "event_types": ["alert.raised"]}
        first = (await client.post("/v1/webhooks", json=body, headers=ADMIN)).json()
        second = (await client.post("/v1/webhooks", json=body, headers=ADMIN)).json()
        over = await client.post("/v1/webhooks", json=body, headers=ADMIN)
        assert over.status_code == 409 and over.json()["limit"] == 2

        one = f"/v1/webhooks/{first['subscription_id']}"
        paused = await client.patch(one, json={"active": False}, headers=ADMIN)
        assert paused.status_code == 200 and paused.json()["active"] is False
        assert (await client.get(one, headers=ADMIN)).json()["active"] is False

        rotated = await client.post(f"{one}/rotate-secret", headers=ADMIN)
        assert rotated.status_code == 200
        assert rotated.json()["secret"] != first["secret"] and rotated.json()["previous_secret_expires_at"]

        async with feedback.runtime.engine.connect() as conn:
            tables = feedback.app.state.runtime.spec.metadata.tables
            stored = (await conn.execute(select(tables["feedback.webhook_subscriptions"]))).all()
        stored_text = repr([tuple(r) for r in stored])
        for secret in (first["secret"], second["secret"], rotated.json()["secret"]):
            assert secret not in stored_text
        assert all(is_sealed(r.secret) for r in stored)

        assert (await client.delete(one, headers=ADMIN)).status_code == 204
        assert (await client.get(one, headers=ADMIN)).status_code == 404
        assert (await client.delete(one, headers=ADMIN)).status_code == 404
        assert (await client.post("/v1/webhooks", json=body, headers=ADMIN)).status_code == 201


async def _deliveries(engine: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(TABLES.deliveries))).all())


async def _attempts(engine: Any, subscription_id: str, *, at_least: int) -> bool | None:
    rows = [r for r in await _deliveries(engine) if r.subscription_id == subscription_id]
    return True if rows and rows[0].attempts >= at_least else None
