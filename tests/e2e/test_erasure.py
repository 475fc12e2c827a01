"""Erasure end to end (issue 13): a person with anonymous and identified events, an MQL, a handoff,
a webhook subscriber and an alert is erased with `leadflow privacy erase`; then no table of any
service, no topic (decoded with the vault), no dead-letter topic, no webhook delivery and no log
line holds their email or name; `leadflow feedback rebuild` and a replay of every topic (with the
inboxes forgotten, as retention would) do not bring them back; the return rate and the funnel
are unchanged; and a new event for the email is refused."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from leadflow.admin.feedback_rebuild import rebuild_feedback
from leadflow.admin.replay import replay
from leadflow.devstack.postgres import create_database
from services.feedback.rebuild import read_topic
from shared.db import make_engine
from shared.envelope import Envelope
from shared.settings import Settings
from shared.signing import verify
from shared.topics import Topics
from shared.vault import Vault
from tests.conftest import ROOT, database_url, idempotent_producer
from tests.e2e.conftest import DevStack, dev_env, start_dev, stop_dev, wait_for_banner
from tests.support import eventually, good_fit_journey, now_minus, unique_email, webhook_receiver

HANDOFFS = 4  # the person's and three others'; two rejected of four raise the return-rate alert
SCHEMAS = ("scoring", "handoff", "feedback", "privacy", "auth")
LISTED = text("SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = ANY(:s)")
# The topics each service's consumer group reads.
GROUPS = {
    "scoring": ("lead.events", "lead.lifecycle"),
    "handoff": ("lead.lifecycle",),
    "feedback": ("lead.lifecycle",),
}


@dataclass
class RestartableStack(DevStack):
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
async def stack(
    kafka_bootstrap: str, postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RestartableStack]:
    """`leadflow dev` as in tests/e2e/conftest.py, kept restartable: the test stops it to replay."""
    data_dir = tmp_path_factory.mktemp("erasure")
    config = data_dir / "config"  # the shipped files, with an alert after 4 decisions (not 20)
    shutil.copytree(ROOT / "config", config)
    feedback = config / "feedback.yaml"
    feedback.write_text(feedback.read_text().replace("min_decisions: 20", f"min_decisions: {HANDOFFS}"))
    database = f"e2e_{uuid.uuid4().hex[:10]}"
    await create_database(postgres_admin_url, database)
    env = dev_env(
        data_dir,
        LEADFLOW_KAFKA_BOOTSTRAP=kafka_bootstrap,
        LEADFLOW_KAFKA_IDEMPOTENT_PRODUCER=str(idempotent_producer()).lower(),
        LEADFLOW_DATABASE_URL=database_url(postgres_admin_url, database),
        LEADFLOW_TOPIC_PREFIX=f"e2e{uuid.uuid4().hex[:8]}.",
        LEADFLOW_ADMIN_KEY="e2e-admin-key-0123456789abcdef",
        LEADFLOW_DEMO="0",
        LEADFLOW_LOG_LEVEL="INFO",
        LEADFLOW_WEBHOOK_POLL_S="0.2",
        LEADFLOW_CONFIG_DIR=str(config),
    )
    log = data_dir / "dev.out"
    process = start_dev(env, log)
    settings = Settings(
        **{k[len("LEADFLOW_") :].lower(): v for k, v in env.items() if k.startswith("LEADFLOW_")}
    )
    running = RestartableStack(process, data_dir, settings, env["LEADFLOW_ADMIN_KEY"], env)
    try:
        await wait_for_banner(process, log)
        yield running
    finally:
        if running.process.poll() is None:
            stop_dev(running.process)


def leadflow(stack: RestartableStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "PATH": os.environ.get("PATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "leadflow", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_signature(secret: str, body: bytes, header: str) -> bool:
    return verify(secret, body, header, now=int(time.time()))


class Person:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.email = unique_email(f"erin{tag}")
        self.anonymous_id = f"anon-{tag}-cookie"
        self.first, self.last = f"Zelda{tag}", f"Quartermaine{tag}"

    @property
    def needles(self) -> list[str]:
        return [self.email, self.first, self.last, self.email.split("@")[0]]

    def events(self) -> list[dict[str, Any]]:
        anonymous = [
            {
                "event_id": f"e-{uuid.uuid4().hex}",
                "type": "page_view",
                "occurred_at": now_minus(30 - i),
                "anonymous_id": self.anonymous_id,
                "properties": {"url": "https://leadflow.example/pricing"},
            }
            for i in range(2)
        ]
        identified = good_fit_journey(self.email)
        for event in identified:
            event["anonymous_id"] = self.anonymous_id
            event["traits"] = {**event["traits"], "first_name": self.first, "last_name": self.last}
        return anonymous + identified


async def post_events(
    http: httpx.AsyncClient, stack: DevStack, events: list[dict[str, Any]]
) -> httpx.Response:
    return await http.post(
        f"{stack.url('intake')}/v1/events/batch", json={"events": events}, headers=stack.headers
    )


async def handoffs(http: httpx.AsyncClient, stack: DevStack) -> list[dict[str, Any]]:
    page = await http.get(f"{stack.url('handoff')}/v1/handoffs", params={"limit": 500}, headers=stack.headers)
    return list(page.json()["items"])


async def figures(http: httpx.AsyncClient, stack: DevStack) -> dict[str, Any]:
    feedback = stack.url("feedback")
    rate = (await http.get(f"{feedback}/v1/metrics/return-rate", headers=stack.headers)).json()
    funnel = (await http.get(f"{feedback}/v1/metrics/funnel", headers=stack.headers)).json()
    kept = ("numerator", "denominator", "rate", "above_threshold", "reasons")
    return {"rate": {k: rate[k] for k in kept}, "funnel": funnel}


async def tables_naming(settings: Settings, needles: list[str]) -> list[str]:
    """Every row of every schema, as JSON (bytea as hex), searched for the needles."""
    forms = [n.lower() for n in needles] + [n.encode().hex() for n in needles]
    engine = make_engine(settings, bounded=False)
    found = []
    try:
        async with engine.connect() as conn:
            tables = await conn.execute(
                LISTED,
                {"s": list(SCHEMAS)},
            )
            for schema, table in tables.all():
                rows = await conn.execute(text(f'SELECT row_to_json(t)::text FROM "{schema}"."{table}" t'))
                found += [
                    f"{schema}.{table}: {row[:200]}"
                    for (row,) in rows
                    if any(f in row.lower() for f in forms)
                ]
    finally:
        await engine.dispose()
    return found


async def topics_naming(settings: Settings, needles: list[str]) -> list[str]:
    """Every record of every topic and dead-letter topic, raw and opened with the vault."""
    engine = make_engine(settings, bounded=False)
    vault = Vault.of(settings)
    found = []
    try:
        for topic in Topics(settings.topic_prefix).all():
            records = [
                value async for batch in read_topic(settings.kafka_bootstrap, topic) for value in batch
            ]
            envelopes = []
            for raw in records:
                if any(n.lower().encode() in raw.lower() for n in needles):
                    found.append(f"{topic} (raw): {raw[:200]!r}")
                try:
                    envelopes.append(Envelope.from_bytes(raw))
                except ValueError:
                    continue
            async with engine.connect() as conn:
                opened = await vault.open_envelopes(conn, envelopes)
            for envelope in opened:
                decoded = envelope.model_dump_json().lower() if isinstance(envelope, Envelope) else ""
                found += [f"{topic} (decoded): {decoded[:200]}" for n in needles if n.lower() in decoded]
    finally:
        await engine.dispose()
    return found


async def test_an_erased_person_is_gone_everywhere_and_stays_gone(
    stack: RestartableStack, http: httpx.AsyncClient
) -> None:
    person = Person()
    others = [unique_email("other") for _ in range(HANDOFFS - 1)]
    with webhook_receiver(check_signature) as receiver:
        made = await http.post(
            f"{stack.url('handoff')}/v1/webhooks",
            json={"url": receiver.url, "event_types": ["handoff.created", "lead.rejected"]},
            headers=stack.headers,
        )
        assert made.status_code == 201, made.text
        receiver.secret = made.json()["secret"]

        # Anonymous visits, then the same cookie identified: one lead, an MQL, a handoff.
        accepted = await post_events(http, stack, person.events())
        assert accepted.status_code == 202, accepted.text
        others_sent = await post_events(http, stack, [e for email in others for e in good_fit_journey(email)])
        assert others_sent.status_code == 202, others_sent.text

        async def all_handed_off() -> list[dict[str, Any]] | None:
            items = await handoffs(http, stack)
            return items if len(items) >= HANDOFFS else None

        items = await eventually(all_handed_off, timeout=90)
        [theirs] = [h for h in items if h["lead"].get("email") == person.email]
        lead_id = theirs["lead_id"]
        # Two rejections in four raise the return-rate alert; theirs names them in its note.
        rejected = [theirs["handoff_id"], next(h["handoff_id"] for h in items if h is not theirs)]
        for handoff in items:
            action = "reject" if handoff["handoff_id"] in rejected else "accept"
            note = f"called {person.first} {person.last}" if handoff is theirs else "checked"
            body = {"reason": "not_a_fit", "note": note} if action == "reject" else {}
            url = f"{stack.url('handoff')}/v1/handoffs/{handoff['handoff_id']}/{action}"
            assert (await http.post(url, json=body, headers=stack.headers)).status_code == 200

        async def alert_raised() -> bool:
            alerts = (await http.get(f"{stack.url('feedback')}/v1/alerts", headers=stack.headers)).json()
            return any(a["alert_key"] == "return_rate:overall" for a in alerts["items"])

        await eventually(alert_raised, timeout=30)
        await eventually(
            lambda: len(receiver.received) >= HANDOFFS + 2 or None, timeout=30
        )  # created, rejected
        before = await eventually(lambda: _settled(http, stack), timeout=30)
        assert before["rate"]["numerator"] == 2 and before["rate"]["denominator"] == HANDOFFS
        assert await tables_naming(stack.settings, person.needles)  # the search finds them while they exist

        erased = leadflow(stack, "privacy", "erase", person.email, "--wait", "60")
        assert erased.returncode == 0, erased.stderr + erased.stdout
        state = json.loads(erased.stdout)
        assert state["state"] == "completed" and lead_id in state["lead_ids"]
        assert {name: s["state"] for name, s in state["services"].items()} == {
            "scoring": "done",
            "handoff": "done",
            "feedback": "done",
        }

        # Subscribers are told, with the lead id only.
        async def told() -> dict[str, Any] | None:
            bodies = [json.loads(body) for _, body in receiver.received]
            return next((b for b in bodies if b["type"] == "lead.erased"), None)

        told_them = await eventually(told, timeout=30)
        assert told_them["lead_id"] == lead_id and set(told_them["data"]) == {"erased_at"}

    # Suppressed: a new event for the email, or from their cookie, is refused, naming the reason.
    again = await post_events(http, stack, good_fit_journey(person.email)[:1])
    assert again.status_code == 422 and again.headers["content-type"] == "application/problem+json"
    assert again.json()["errors"][0]["rule"] == "erased"
    cookie = await post_events(http, stack, [{**person.events()[0], "event_id": f"e-{uuid.uuid4().hex}"}])
    assert cookie.status_code == 422 and cookie.json()["errors"][0]["field"] == "events.0.anonymous_id"

    assert await figures(http, stack) == before
    assert await tables_naming(stack.settings, person.needles) == []
    assert await topics_naming(stack.settings, person.needles) == []
    found = await http.get(f"{stack.url('scoring')}/v1/leads/{lead_id}", headers=stack.headers)
    assert found.status_code == 404

    rebuilt = await rebuild_feedback(stack.settings)  # what `leadflow feedback rebuild` runs
    assert rebuilt.handoffs == HANDOFFS
    assert await figures(http, stack) == before
    assert await tables_naming(stack.settings, person.needles) == []

    await replay_everything_with_inboxes_forgotten(stack)
    await eventually(lambda: _caught_up(http, stack, len(others)), timeout=90)
    assert await tables_naming(stack.settings, person.needles) == []
    assert await figures(http, stack) == before
    assert (
        await http.get(f"{stack.url('scoring')}/v1/leads/{lead_id}", headers=stack.headers)
    ).status_code == 404

    stop_dev(stack.process)
    service_logs = [
        stack.data_dir / "logs" / f"{name}.log" for name in ("intake", "scoring", "handoff", "feedback")
    ]
    logs = "\n".join(path.read_text(errors="replace") for path in service_logs).lower()
    assert '"level": "info"' in logs  # the services logged at info level, as JSON
    assert [n for n in person.needles if n.lower() in logs] == []


async def replay_everything_with_inboxes_forgotten(stack: RestartableStack) -> None:
    """Stop the stack, forget every inbox (as retention would), rewind every group on every topic
    it reads, start the stack again: every service re-reads everything."""
    stop_dev(stack.process)
    engine = make_engine(stack.settings, bounded=False)
    try:
        async with engine.begin() as conn:
            for service in GROUPS:
                await conn.execute(text(f"TRUNCATE {service}.inbox"))
    finally:
        await engine.dispose()
    prefix = Topics(stack.settings.topic_prefix)
    for service, topics in GROUPS.items():
        for topic in topics:
            # What `leadflow replay TOPIC --service SERVICE --force` runs. --force: from the
            # beginning on purpose; the embedded broker lists end offsets short of records
            # produced in batches (services/feedback/rebuild.read_topic), which the
            # lost-history check would take for a loss.
            await replay(
                stack.settings, topic=prefix.name(topic), group=prefix.group(service), since=None, force=True
            )
    log = stack.data_dir / "dev.out"
    before = log.read_text(errors="replace").count("leadflow is running.")
    stack.process = start_dev(stack.env, log)
    await eventually(
        lambda: log.read_text(errors="replace").count("leadflow is running.") > before, timeout=120
    )


async def _settled(http: httpx.AsyncClient, stack: DevStack) -> dict[str, Any] | None:
    """The figures, once two reads a moment apart agree (the consumers caught up)."""
    first = await figures(http, stack)
    await _pause()
    return first if first == await figures(http, stack) else None


async def _caught_up(http: httpx.AsyncClient, stack: DevStack, others: int) -> bool:
    """The replay went through: the other leads are back to their stage, none is new."""
    leads = await http.get(f"{stack.url('scoring')}/v1/leads", params={"limit": 500}, headers=stack.headers)
    return len(leads.json()["items"]) == others and await _settled(http, stack) is not None


async def _pause() -> None:
    await asyncio.sleep(1.0)
