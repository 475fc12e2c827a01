"""accounts: scoring's throughput with the account roll-up on beside the same run with it off, and
the cost of matching one lead with 100,000 accounts loaded.

Both throughput runs drain the same kind of backlog (leads at corporate domains of seeded
accounts, so every lead is matched and rolls up) through one scoring process; "off" is the same
model file without its `account` section. Beside each side's events/s, the CPU per event of the
scoring process and of Postgres over the same span (`bench.backlog.drain`): the rates move with
whatever else runs on the machine, the CPU per event less (it too rises on a busy machine:
contended caches and cores). Matching is timed in this process over real Postgres: the candidate
look-ups (domain map, name map, blocking key) for a consumer-sized batch and the pure choice,
per lead, beside scoring that lead (`domain.score_lead`) in the same run.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncpg
import yaml
from aiokafka import AIOKafkaProducer

from bench.backlog import Drain, scoring_drain
from bench.lead_events import event
from bench.stack import libpq_dsn, prepare, start_bench_broker
from leadflow.devstack.broker import BrokerKind
from leadflow.devstack.postgres import start_postgres
from services.intake.domain import IntakeEvent
from services.intake.handlers import to_envelope
from services.scoring.accounts import store as account_store
from services.scoring.accounts.domains import registrable_domain
from services.scoring.accounts.matching import (
    CandidatePool,
    blocking_key,
    candidate_keys,
    choose_account,
    facts_of,
    normalize_company_name,
)
from services.scoring.config_files import load_model
from services.scoring.domain import LeadEvent, score_lead
from shared.db import make_engine
from shared.envelope import utcnow
from shared.settings import Settings

ACCOUNTS = 100_000
LEADS_PER_RUN = 2_000  # 20,000 events a drain: long enough to average out a shared machine
EVENTS_PER_LEAD = 10
LEADS_PER_ACCOUNT = 5  # each throughput run's leads fall into 100 accounts
MATCHED_LEADS = 2_000  # leads timed through matching
MATCH_BATCH = 100  # leads per candidate look-up, about a consumer batch's distinct leads
RUNS = 5  # throughput runs of each side, alternated; the median of each is reported


@dataclass
class AccountsTiming:
    rollup_on: float  # events/s
    rollup_off: float
    cpu_on_us: float  # the scoring process's CPU per event (medians, like the rates)
    cpu_off_us: float
    db_cpu_on_us: float  # Postgres' CPU per event
    db_cpu_off_us: float
    match_us: float  # per lead, candidate look-ups + choice
    score_us: float  # per lead, scoring it (the ceiling beside it)
    accounts: int


SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "xe", "zu", "bra", "cor", "del", "fen", "gal")
SECOND_WORDS = ("Freight", "Systems", "Labs", "Foods", "Capital", "Health", "Media", "Energy")


def company(i: int) -> tuple[str, str]:
    """The i-th seeded account's name and domain: made-up words, so names start as variously as
    real ones (a few share a first word and most do not)."""
    n = len(SYLLABLES)
    word = "".join(SYLLABLES[(i // n**k) % n] for k in range(3)).capitalize()
    return f"{word} {SECOND_WORDS[i // n**3 % len(SECOND_WORDS)]} {i} Inc", f"co{i}.com"


async def seed_accounts(db_dsn: str) -> None:
    """100,000 accounts with a domain each, through COPY (seconds, not minutes)."""
    rows, domains = [], []
    for i in range(ACCOUNTS):
        name, domain = company(i)
        normalized = normalize_company_name(name)
        tier = ("strategic", "enterprise", "commercial")[i % 3]
        rows.append(
            (
                f"bench-{i}",
                name,
                normalized,
                blocking_key(normalized),
                f'["{domain}"]',
                tier,
                "Software",
                800,
                "US",
                "import",
            )
        )
        domains.append((domain, f"bench-{i}"))
    conn = await asyncpg.connect(db_dsn)
    try:
        columns = [
            "account_id",
            "name",
            "name_normalized",
            "name_block",
            "domains",
            "tier",
            "industry",
            "size",
            "country",
            "source",
        ]
        await conn.copy_records_to_table("accounts", schema_name="scoring", records=rows, columns=columns)
        await conn.copy_records_to_table(
            "account_domains", schema_name="scoring", records=domains, columns=["domain", "account_id"]
        )
        await conn.execute("ANALYZE scoring.accounts; ANALYZE scoring.account_domains")
    finally:
        await conn.close()


async def matching_cost(settings: Settings) -> tuple[float, float]:
    """Microseconds per lead: matching (look-ups for a batch + choice), and scoring the same lead."""
    model = load_model(settings.config_file("scoring-model.yaml"))
    assert model.account is not None
    leads = []
    for n in range(MATCHED_LEADS):
        i = (n * 7919) % ACCOUNTS
        name, domain = company(i)
        kind = n % 4
        if kind == 0:
            leads.append((f"jo@eu.{domain}", {"country": "US"}))  # by domain
        elif kind == 1:
            leads.append(
                ("jo@gmail.com", {"company": name.replace(" Inc", " LLC"), "country": "US"})
            )  # exact
        elif kind == 2:
            close = name.replace(" Inc", "") + "s"  # "Kalomi Freight 7s": close, not equal
            leads.append(("jo@gmail.com", {"company": close, "country": "US"}))
        else:
            leads.append((f"jo@unknown-{n}.com", {"company": f"Nomatch {n}"}))  # nothing: a miss
    engine = make_engine(settings, bounded=False)
    matched = 0
    try:
        async with engine.connect() as conn:
            started = time.perf_counter()
            for start in range(0, len(leads), MATCH_BATCH):
                batch = [
                    facts_of(email, traits, registrable_domain)
                    for email, traits in leads[start : start + MATCH_BATCH]
                ]
                found = await account_store.candidates(conn, [candidate_keys(f) for f in batch])
                pool = CandidatePool(found)
                matched += sum(
                    choose_account(f, pool.for_lead(f), model.account.matching, model.account.tiers)
                    is not None
                    for f in batch
                )
            match_s = time.perf_counter() - started
    finally:
        await engine.dispose()
    assert matched >= MATCHED_LEADS // 2, f"only {matched} of {MATCHED_LEADS} leads matched"
    history = [LeadEvent("page_view", utcnow(), {"url": f"/blog/{n}"}) for n in range(EVENTS_PER_LEAD)]
    started = time.perf_counter()
    for email, traits in leads:
        score_lead(model, email=email, traits=traits, events=history, at=utcnow())
    score_s = time.perf_counter() - started
    return match_s / len(leads) * 1e6, score_s / len(leads) * 1e6


def config_without_accounts(config_dir: Path, work: Path) -> Path:
    """A copy of the config directory whose scoring model has no `account` section."""
    target = work / "config-no-accounts"
    shutil.copytree(config_dir, target, dirs_exist_ok=True)
    model_file = target / "scoring-model.yaml"
    model = yaml.safe_load(model_file.read_text())
    model.pop("account", None)
    model_file.write_text(yaml.safe_dump(model, sort_keys=False))
    return target


async def drain_backlog(settings: Settings, db_dsn: str, env: dict[str, str], first_account: int) -> Drain:
    """One scoring process over a fresh backlog of leads at seeded accounts' domains: events/s and
    CPU per event."""
    tag = uuid.uuid4().hex[:8]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures, event_ids = [], []
        for lead in range(LEADS_PER_RUN):
            _, domain = company(first_account + lead // LEADS_PER_ACCOUNT)
            email = f"p{lead}.{tag}@{domain}"
            for n in range(EVENTS_PER_LEAD):
                body = {**event(email, n), "event_id": f"{tag}-{lead}-{n}"}
                envelope = to_envelope(IntakeEvent.model_validate(body), received_at=utcnow(), source="bench")
                futures.append(
                    await producer.send(
                        settings.topic_prefix + "lead.events", envelope.to_bytes(), key=email.encode()
                    )
                )
                event_ids.append(body["event_id"])
        sent = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return await scoring_drain(env, db_dsn, event_ids, [(m.partition, m.offset) for m in sent])


async def accounts_timing(settings: Settings, db_dsn: str, env: dict[str, str], work: Path) -> AccountsTiming:
    await seed_accounts(db_dsn)
    match_us, score_us = await matching_cost(settings)
    off_env = {**env, "LEADFLOW_CONFIG_DIR": str(config_without_accounts(settings.config_dir, work))}
    on: list[Drain] = []
    off: list[Drain] = []
    accounts_per_run = LEADS_PER_RUN // LEADS_PER_ACCOUNT
    # Alternated, the side that goes first swapped every run (off on, on off, ...), so neither
    # always gets the colder database or the machine's slower minutes; each drain its own accounts.
    for run in range(RUNS):
        sides = [(off, off_env), (on, env)]
        for n, (drains, side_env) in enumerate(sides if run % 2 == 0 else sides[::-1]):
            drains.append(await drain_backlog(settings, db_dsn, side_env, (2 * run + n) * accounts_per_run))
        print(
            f"accounts: run {run + 1}: off {off[-1].rate:,.0f} events/s, {off[-1].cpu_us:.0f} us CPU/event;"
            f" on {on[-1].rate:,.0f} events/s, {on[-1].cpu_us:.0f} us CPU/event",
            flush=True,
        )
    return AccountsTiming(
        rollup_on=statistics.median(d.rate for d in on),
        rollup_off=statistics.median(d.rate for d in off),
        cpu_on_us=statistics.median(d.cpu_us for d in on),
        cpu_off_us=statistics.median(d.cpu_us for d in off),
        db_cpu_on_us=statistics.median(d.db_cpu_us for d in on),
        db_cpu_off_us=statistics.median(d.db_cpu_us for d in off),
        match_us=match_us,
        score_us=score_us,
        accounts=ACCOUNTS,
    )


def accounts_report(t: AccountsTiming) -> str:
    ratio = t.rollup_on / t.rollup_off if t.rollup_off else 0.0
    # CPU per event read as throughput: off / on is the share of the off run's rate that the
    # same CPU would give with the roll-up on (robust to load, unlike the rates)
    cpu_ratio = t.cpu_off_us / t.cpu_on_us if t.cpu_on_us else 0.0
    db_ratio = t.db_cpu_off_us / t.db_cpu_on_us if t.db_cpu_on_us else 0.0
    return "\n".join(
        [
            f"## Accounts ({t.accounts:,} accounts loaded)",
            "",
            "| figure | value | beside | ratio |",
            "| --- | ---: | --- | ---: |",
            f"| scoring, one process, account roll-up on | {t.rollup_on:,.0f} events/s | roll-up off: "
            f"{t.rollup_off:,.0f} events/s | {ratio:.2f} (target >= 0.8) |",
            f"| scoring process CPU per event, roll-up on | {t.cpu_on_us:,.0f} us | roll-up off: "
            f"{t.cpu_off_us:,.0f} us | {cpu_ratio:.2f} (off / on) |",
            f"| Postgres CPU per event, roll-up on | {t.db_cpu_on_us:,.0f} us | roll-up off: "
            f"{t.db_cpu_off_us:,.0f} us | {db_ratio:.2f} (off / on) |",
            f"| matching one lead (look-ups per {MATCH_BATCH} leads + choice) | {t.match_us:,.0f} us "
            f"| scoring the lead: {t.score_us:,.0f} us | {t.match_us / t.score_us:.2f} |",
        ]
    )


async def run_accounts(work: Path, broker_kind: BrokerKind | Literal["auto"]) -> AccountsTiming:
    """`python -m bench --only accounts`: on its own broker and Postgres (a few minutes)."""
    broker = start_bench_broker(work, broker_kind)
    postgres = start_postgres(work / "pg")
    try:
        settings, env = await prepare(broker, postgres)
        print(f"accounts: seeding {ACCOUNTS:,} accounts, matching {MATCHED_LEADS:,} leads …", flush=True)
        print(
            f"accounts: scoring {LEADS_PER_RUN * EVENTS_PER_LEAD:,} events, off / on × {RUNS} …",
            flush=True,
        )
        return await accounts_timing(settings, libpq_dsn(settings), env, work)
    finally:
        broker.stop()
        postgres.stop()
