"""A 202 means the event will be stored: what scoring could not store is refused by intake with a
422 naming the field and the rule (single and batch), and the value just inside each limit goes
intake -> Kafka -> scoring and is stored as sent. A property test runs generated hostile events
through intake's validation and scoring's real store: whatever intake accepts, scoring stores."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import select

from services.intake.config_files import load_tracking_plan
from services.intake.domain import IntakeEvent, check_against_plan
from services.intake.event_limits import INT64_MAX, INT64_MIN, EventLimits, limit_problems, size_problem
from services.intake.handlers import to_envelope
from services.scoring import store
from services.scoring.config_files import load_model
from services.scoring.handlers import record_events
from shared.envelope import Envelope, utcnow
from shared.events import parse_data
from shared.settings import Settings
from shared.topics import Topics
from shared.unit_of_work import UnitOfWork
from tests.support import ADMIN, eventually, running, tap, unique_email

PROBLEM = "application/problem+json"


def iso(moment: datetime) -> str:
    return moment.isoformat()


def good(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"e-{uuid.uuid4().hex}",
        "type": "page_view",
        "occurred_at": iso(utcnow() - timedelta(minutes=5)),
        "email": unique_email(),
        "traits": {"title": "VP of Marketing", "company_size": 500},
        "properties": {"url": "https://leadflow.example/pricing"},
        **fields,
    }


def with_traits(**traits: Any) -> dict[str, Any]:
    return good(traits={"title": "VP of Marketing", **traits})


def _incompressible(chars: int, *, seed: int) -> str:
    return base64.urlsafe_b64encode(random.Random(seed).randbytes(chars)).decode()[:chars]


def with_properties(**properties: Any) -> dict[str, Any]:
    return good(properties={"url": "https://leadflow.example/pricing", **properties})


# (what the sender sent, the field refused, the rule): each a class of input that used to be
# answered 202 and then dead-lettered (or a 500) downstream.
REFUSED = [
    (good(email="ada\x00@x.example"), "email", "no_nul"),
    (good(email="ada\ud800@x.example"), "email", "no_surrogates"),
    (good(email=None, anonymous_id="anon\x00"), "anonymous_id", "no_nul"),
    (good(email=None, anonymous_id="anon\udfff"), "anonymous_id", "no_surrogates"),
    (with_properties(url="https://x.example/\x00"), "properties.url", "no_nul"),
    (with_properties(url="https://x.example/\ud83d"), "properties.url", "no_surrogates"),
    (with_properties(**{"ref\x00": "x"}), "properties.ref\\x00", "no_nul"),
    (with_properties(**{"ref\udc00": "x"}), "properties.ref\\udc00", "no_surrogates"),
    (with_traits(nickname="ada\x00"), "traits.nickname", "no_nul"),
    (with_traits(nickname="ada\ud800"), "traits.nickname", "no_surrogates"),
    (with_traits(title="VP\x00"), "traits.title", "no_nul"),
    (with_traits(**{"nick\x00": "ada"}), "traits.nick\\x00", "no_nul"),
    (with_traits(**{"nick\ud800": "ada"}), "traits.nick\\ud800", "no_surrogates"),
    (good(occurred_at="0001-01-01T00:00:00+05:00"), "occurred_at", "too_old"),
    (good(occurred_at=iso(utcnow() - timedelta(days=3651))), "occurred_at", "too_old"),
    (with_traits(bio="x" * 2049), "traits.bio", "string_too_long"),
    (with_traits(**{"k" * 65: 1}), "traits." + "k" * 64 + "…", "key_too_long"),
    (with_traits(**{f"t{i}": i for i in range(51)}), "traits", "too_many_traits"),
    (with_properties(ref="x" * 2049), "properties.ref", "string_too_long"),
    (with_properties(**{f"p{i}": i for i in range(100)}), "properties", "too_many_properties"),
    (with_traits(address={"city": "London"}), "traits.address", "not_scalar"),
    (with_traits(tags=["a", "b"]), "traits.tags", "not_scalar"),
    (with_traits(seats=INT64_MAX + 1), "traits.seats", "int64"),
    (with_properties(amount=-(2**80)), "properties.amount", "int64"),
    (with_properties(ratio=float("nan")), "properties.ratio", "finite_number"),
    (with_traits(ratio=float("inf")), "traits.ratio", "finite_number"),
    # Published sealed and compressed (docs/privacy.md), so the size refused is of text that does
    # not compress: 40 properties of random characters.
    (
        with_properties(**{f"p{i}": _incompressible(2048, seed=i) for i in range(40)}),
        "event",
        "event_too_large",
    ),
]


def raw(body: dict[str, Any]) -> dict[str, Any]:
    """The request as a sender writes it: JSON with NaN and \\u escapes, which httpx's `json=` refuses."""
    return {"content": json.dumps(body).encode(), "headers": {**ADMIN, "Content-Type": "application/json"}}


def field_rules(problem: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["field"], e["rule"]) for e in problem["errors"]]


async def test_what_scoring_could_not_store_is_refused_naming_field_and_rule(settings: Settings) -> None:
    async with (
        running("intake", settings) as intake,
        tap(settings, settings.topic_prefix + "lead.events") as events,
    ):
        for body, field, rule in REFUSED:
            single = await intake.client.post("/v1/events", **raw(body))
            assert single.status_code == 422, (field, rule, single.text)
            assert single.headers["content-type"] == PROBLEM
            assert (field, rule) in field_rules(single.json()), single.json()

            batch = await intake.client.post("/v1/events/batch", **raw({"events": [good(), body]}))
            assert batch.status_code == 422, (field, rule, batch.text)
            in_batch = "events.1" if field == "event" else f"events.1.{field}"
            assert (in_batch, rule) in field_rules(batch.json()), batch.json()
        await asyncio.sleep(1.0)
        assert events.records == []


def just_inside() -> list[dict[str, Any]]:
    """One event at the edge of each limit, every one of which must be stored as sent."""
    almost_ten_years = utcnow() - timedelta(days=3650) + timedelta(hours=1)
    return [
        good(occurred_at=iso(almost_ten_years)),
        good(email=None, anonymous_id="a" * 127 + "\u00e9"),
        with_traits(**{f"t{i}": i for i in range(49)}, **{"k" * 64: "é" * 2048}),  # 50 custom
        with_traits(seats=INT64_MAX, floor=INT64_MIN, ratio=1.5e308, tiny=5e-324, nothing=None, yes=True),
        with_properties(**{f"p{i}": INT64_MIN for i in range(98)}, ref="\U0001f600" * 2048),
        with_properties(**{f"p{i}": "x" * 2048 for i in range(30)}),  # about 62 KB published
        with_properties(note="tab\tnewline\n\u200b zero-width, \u202e bidi, \ufffd replacement"),
    ]


async def test_the_just_inside_events_are_accepted_and_stored_by_scoring_as_sent(settings: Settings) -> None:
    single, *batch = just_inside()
    async with (
        running("scoring", settings) as scoring,
        running("intake", settings) as intake,
        tap(settings, settings.topic_prefix + "lead.events.dlq") as dead_letters,
    ):
        one = await intake.client.post("/v1/events", **raw(single))
        assert one.status_code == 202, one.text
        many = await intake.client.post("/v1/events/batch", **raw({"events": batch}))
        assert many.status_code == 202, many.text
        sent = {e["event_id"]: e for e in [single, *batch]}

        async def stored() -> dict[str, Any] | None:
            async with scoring.runtime.engine.connect() as conn:
                rows = await conn.execute(
                    select(store.lead_events).where(store.lead_events.c.event_id.in_(sorted(sent)))
                )
                found = {row.event_id: row for row in rows}
            return found if len(found) == len(sent) else None

        rows = await eventually(stored, timeout=30)
        for event_id, event in sent.items():
            assert rows[event_id].properties == event["properties"]
            assert rows[event_id].occurred_at == datetime.fromisoformat(event["occurred_at"])
        lead = await scoring.client.get("/v1/leads", params={"email": batch[2]["email"]}, headers=ADMIN)
        assert lead.json()["items"][0]["traits"]["seats"] == INT64_MAX
        assert dead_letters.records == []


async def test_composed_and_decomposed_spellings_of_an_identity_are_one_lead(settings: Settings) -> None:
    local = uuid.uuid4().hex[:8]
    composed, decomposed = f"jos\u00e9.{local}@example.com", f"Jose\u0301.{local}@Example.com"
    device = f"caf\u00e9-{local}"
    events = [
        good(email=composed),
        good(email=decomposed, type="demo_request", properties={"form_id": "demo"}),
        good(email=None, anonymous_id=device),
        good(email=None, anonymous_id=f"cafe\u0301-{local}"),
    ]
    async with running("scoring", settings) as scoring, running("intake", settings) as intake:
        response = await intake.client.post("/v1/events/batch", **raw({"events": events}))
        assert response.status_code == 202

        async def lead_of(email: str, count: int) -> dict[str, Any] | None:
            page = (await scoring.client.get("/v1/leads", params={"email": email}, headers=ADMIN)).json()
            found = page["items"]
            return found[0] if len(found) == 1 and found[0]["events_count"] == count else None

        lead = await eventually(lambda: lead_of(decomposed, 2), timeout=30)
        assert lead["email"] == f"jos\u00e9.{local}@example.com"
        async with scoring.runtime.engine.connect() as conn:
            linked = await conn.execute(
                select(store.anonymous_ids.c.anonymous_id).where(
                    store.anonymous_ids.c.anonymous_id.like(f"%{local}")
                )
            )
            assert [row.anonymous_id for row in linked] == [device]


async def conflicts_count(client: Any) -> float:
    metrics = (await client.get("/metrics", headers=ADMIN)).text
    lines = [line for line in metrics.splitlines() if line.startswith("leadflow_events_conflicting_total ")]
    return float(lines[0].split()[1]) if lines else 0.0


async def test_a_reused_event_id_with_another_body_is_counted_and_listed(settings: Settings) -> None:
    from leadflow.admin.keys import create_key
    from shared.auth import Scope

    email = unique_email()
    first = good(email=email, event_id=f"e-{uuid.uuid4().hex}")
    retry = {**first}
    other = {**first, "properties": {"url": "https://leadflow.example/other"}}
    async with running("scoring", settings) as scoring, running("intake", settings) as intake:
        before = await conflicts_count(scoring.client)
        for body in (first, retry, other, other):
            response = await intake.client.post("/v1/events", **raw(body))
            assert response.status_code == 202  # intake keeps no state: it cannot know yet

        async def listed() -> list[dict[str, Any]] | None:
            page = await scoring.client.get("/v1/events/conflicts", headers=ADMIN)
            items = [c for c in page.json()["items"] if c["event_id"] == first["event_id"]]
            return items or None

        [conflict] = await eventually(listed, timeout=30)
        assert conflict["type"] == "page_view" and conflict["stored_digest"] != conflict["received_digest"]
        await asyncio.sleep(1.0)  # the retry of `other` is one message: deduplicated, not a second row
        assert len(await listed() or []) == 1
        assert await conflicts_count(scoring.client) == before + 1
        page = (await scoring.client.get("/v1/leads", params={"email": email}, headers=ADMIN)).json()
        assert page["items"][0]["events_count"] == 1
        events = (
            await scoring.client.get(f"/v1/leads/{page['items'][0]['lead_id']}/timeline", headers=ADMIN)
        ).json()
        assert [e["properties"] for e in events if e["kind"] == "event"] == [first["properties"]]

        reader, _ = await create_key(settings, name="crm", scopes=[Scope.LEADS_READ], owner=None)
        refused = await scoring.client.get("/v1/events/conflicts", headers={"X-API-Key": reader})
        assert refused.status_code == 403


# --- the correspondence, on generated events --------------------------------------------------

HOSTILE_CHARS = st.sampled_from(["\x00", "\ud800", "\udfff", "\u0301", "\u00e9", "\U0001f600", "\\", '"'])
plain = st.text(max_size=20)
# joined by hand: st.text() leaves lone surrogates out of any alphabet
hostile = st.lists(st.one_of(st.characters(), HOSTILE_CHARS), max_size=12).map("".join)
texts = plain | plain | hostile | st.text(max_size=2100)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([INT64_MAX, INT64_MAX + 1, INT64_MIN, INT64_MIN - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1.5e308, -5e-324]),
    texts,
)
values = scalars | st.lists(scalars, max_size=2) | st.dictionaries(texts, scalars, max_size=2)
keys = texts | st.text("abcdefgh", min_size=60, max_size=70)
ages = st.one_of(
    st.integers(min_value=0, max_value=3600 * 86_400).map(lambda seconds: timedelta(seconds=seconds)),
    st.sampled_from([timedelta(minutes=-4), timedelta(days=3650) - timedelta(hours=1)]),  # just inside
)
offsets = st.sampled_from([timedelta(0), timedelta(hours=5), timedelta(hours=-12), timedelta(hours=14)])
recent = st.builds(
    lambda age, offset: (utcnow() - age).astimezone(timezone(offset)).isoformat(), ages, offsets
)
outside = st.sampled_from(
    ["0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00", "1970-01-01T00:00:00Z"]
)
moments = st.integers(min_value=0, max_value=9).flatmap(lambda n: outside if n == 0 else recent)


@st.composite
def hostile_events(draw: st.DrawFn) -> dict[str, Any]:
    """Events as a careless or hostile sender writes them, identities unique per example."""
    body: dict[str, Any] = {"type": "page_view", "occurred_at": draw(moments)}
    who = draw(st.sampled_from(["email", "anonymous_id", "both"]))
    if who != "anonymous_id":
        domain = draw(st.sampled_from(["x.example", "e\u0301.example"]))
        body["email"] = f"{draw(texts)[:40]}{uuid.uuid4().hex[:6]}@{domain}"
    if who != "email":
        body["anonymous_id"] = f"{draw(texts)[:120]}{uuid.uuid4().hex[:6]}"
    body["traits"] = draw(st.dictionaries(keys, values, max_size=4))
    body["properties"] = {"url": draw(texts) or "u", **draw(st.dictionaries(keys, scalars, max_size=4))}
    return body


PLAN = load_tracking_plan("config/tracking-plan.yaml")
MODEL = load_model("config/scoring-model.yaml")
LIMITS = EventLimits()


def accepted_by_intake(body: dict[str, Any]) -> tuple[IntakeEvent, Envelope] | None:
    """The event as intake read it and the envelope it would publish, or None for a 422."""
    try:
        event = IntakeEvent.model_validate(json.loads(json.dumps(body)))  # as FastAPI reads it
    except ValidationError:
        return None
    now = utcnow()
    if check_against_plan(event, PLAN, now=now) or limit_problems(event, LIMITS, now=now):
        return None
    envelope = to_envelope(event, received_at=now, source="intake")
    if size_problem(len(envelope.to_bytes()), LIMITS):
        return None
    return event, Envelope.from_bytes(envelope.to_bytes())  # as scoring reads it from Kafka


def numbers_as_floats(properties: dict[str, Any]) -> dict[str, Any]:
    """JSONB keeps a number's decimal value, not its type: 4.01e16 comes back as the integer
    40100000000000000, which Python does not call equal to the float it was."""
    return {
        k: float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
        for k, v in properties.items()
    }


@hypothesis_settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=hostile_events())
async def test_every_event_intake_accepts_is_stored_by_scoring(engine, body) -> None:  # type: ignore[no-untyped-def]
    accepted = accepted_by_intake(body)
    event("accepted by intake" if accepted else "refused by intake")  # see --hypothesis-show-statistics
    if accepted is None:
        return
    sent, envelope = accepted
    data = parse_data(envelope)
    async with engine.begin() as conn:  # must commit: Postgres refusing it fails the test
        uow = UnitOfWork(conn=conn, outbox=store.outbox, topics=Topics("t."), source="scoring")
        await record_events(uow, MODEL, [(envelope, data)])
        await uow.flush()
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(store.lead_events).where(store.lead_events.c.event_id == data.event_id))
        ).one()
    assert numbers_as_floats(row.properties) == numbers_as_floats(sent.properties)
    assert row.occurred_at == sent.occurred_at
