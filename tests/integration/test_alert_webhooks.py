"""What ops rely on in alert webhooks: each alert on `ops.alerts` reaches a subscriber as a
Slack message, signed like the handoff webhooks (checked with the README's own code), retried
until it gets through, and visible in the deliveries API. And the webhook tables every
service defines match what its migrations create."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData

from leadflow.admin.keys import create_key
from services.feedback import alert_webhooks
from services.feedback import store as feedback_store
from services.handoff import store as handoff_store
from shared.auth import Scope
from shared.db import make_engine, migrate
from shared.events import OPS_ALERTS, AlertRaised, envelope_for
from shared.settings import Settings
from tests.support import ADMIN, eventually, producer, running, webhook_receiver

README = Path(__file__).resolve().parents[2] / "README.md"
WEBHOOK_TABLES = {"webhook_subscriptions", "webhook_deliveries"}


def readme_verify() -> Callable[[str, bytes, str], bool]:
    """The `verify` function the README gives receivers, run as written."""
    section = README.read_text(encoding="utf-8").split("### Webhooks", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(code, namespace)
    return namespace["verify"]  # type: ignore[return-value]


def return_rate_alert() -> AlertRaised:
    return AlertRaised(
        alert_key=f"return_rate:source:webinar-{uuid.uuid4().hex[:6]}",
        metric="return_rate",
        group="source:webinar",
        window="30d",
        rate=0.25,
        numerator=10,
        denominator=40,
        ci_low=0.142,
        ci_high=0.399,
        threshold=0.1,
        severity="confirmed",
    )


async def test_an_alert_reaches_a_subscriber_as_a_signed_slack_message_after_retries(
    settings: Settings,
) -> None:
    fast = settings.model_copy(update={"webhook_first_retry_s": 0.2, "webhook_poll_s": 0.1})
    alert = envelope_for(return_rate_alert(), source="feedback", lead_id=None)
    with webhook_receiver(readme_verify(), failures=2, failure_status=500) as receiver:
        async with running("feedback", fast) as feedback:
            made = await feedback.client.post(
                "/v1/webhooks", json={"url": receiver.url, "event_types": ["alert.raised"]}, headers=ADMIN
            )
            assert made.status_code == 201
            receiver.secret = made.json()["secret"]
            async with producer(fast) as p:
                await p.send_and_wait(fast.topic_prefix + OPS_ALERTS, alert.to_bytes(), key=b"alert")

            await eventually(lambda: receiver.received or None, timeout=30)

            async def settled() -> list[dict[str, Any]] | None:
                """The deliveries once the last attempt's answer is recorded: the receiver has
                the message a moment before feedback has written down its 200."""
                listed = (
                    await feedback.client.get(
                        f"/v1/webhooks/{made.json()['subscription_id']}/deliveries", headers=ADMIN
                    )
                ).json()
                return listed if listed and all(d["status"] != "pending" for d in listed) else None

            deliveries = await eventually(settled, timeout=30)

    assert (receiver.attempts, receiver.forged) == (3, 0)
    [(headers, body)] = receiver.received
    assert headers["leadflow-event-type"] == "alert.raised"
    message = orjson.loads(body)
    assert message == alert_webhooks.slack_message(alert)
    assert message["blocks"][0]["text"]["text"] == ":rotating_light: Return rate above 10% — source:webinar"
    assert [(d["message_id"], d["status"], d["attempts"], d["last_status_code"]) for d in deliveries] == [
        (alert.id, "delivered", 3, 200)
    ]


async def test_alert_webhooks_take_alert_types_only_and_need_the_admin_scope(settings: Settings) -> None:
    reader, _ = await create_key(settings, name="dashboards", scopes=[Scope.METRICS_READ], owner=None)
    async with running("feedback", settings) as feedback:
        body = {"url": "http://127.0.0.1:9/hooks", "event_types": ["alert.raised"]}
        not_admin = await feedback.client.post(
            "/v1/webhooks", json=body, headers={"Authorization": f"Bearer {reader}"}
        )
        assert not_admin.status_code == 403
        wrong_type = await feedback.client.post(
            "/v1/webhooks", json={**body, "event_types": ["handoff.created"]}, headers=ADMIN
        )
        assert wrong_type.status_code == 422
        unknown = await feedback.client.get(f"/v1/webhooks/{uuid.uuid4()}/deliveries", headers=ADMIN)
        assert unknown.status_code == 404


async def test_every_services_webhook_tables_match_its_migrations(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        for schema, store in (("handoff", handoff_store), ("feedback", feedback_store)):
            await migrate(engine, schema=schema, versions_dir=store.MIGRATIONS)
            async with engine.connect() as conn:
                differences = await conn.run_sync(webhook_table_differences, store.metadata, schema)
            assert differences == [], f"{schema}: the webhook tables differ from the migrations"
    finally:
        await engine.dispose()


def webhook_table_differences(conn: Connection, metadata: MetaData, schema: str) -> list[object]:
    """What alembic would change in `schema`'s webhook tables to match `metadata`."""

    def include_object(
        obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return getattr(table, "name", None) in WEBHOOK_TABLES

    context = MigrationContext.configure(
        conn,
        opts={
            "include_schemas": True,
            "include_name": lambda name, type_, _: type_ != "schema" or name == schema,
            "include_object": include_object,
            "compare_type": True,
            "compare_server_default": True,
        },
    )
    return list(compare_metadata(context, metadata))
