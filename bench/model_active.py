"""End-to-end latency at 1,000 events/s with and without a predictive model active.

`python -m bench --only model_active`. One stack (intake, scoring, handoff as processes):
a small generated history (tests/generated_buyers.py) is seeded and trained on with
`leadflow model train`; then the same open-loop load runs four times, alternately with no
model active and after `leadflow model activate`. The load is 1,000 events/s posted to
`/v1/events/batch` (page views of a pool of good-fit leads, one event per lead per
request); beside it, probe journeys whose last event, posted alone with a trace id, makes
the lead an MQL. A probe's latency is from that POST to `lead.mql_reached`, and to
`handoff.created`, seen on the bus. Scoring's CPU seconds per event come from the
process's own clock (/proc), the learned hook's time from its `/metrics` counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from bench.end_to_end import FETCH_MAX_WAIT_MS
from bench.http_load import fixed_rate
from bench.lead_events import event, journey
from bench.quantiles import percentile
from bench.stack import libpq_dsn, prepare, serve, start_bench_broker, wait_ready
from bench.training import seed_training_history
from leadflow.devstack.broker import BrokerKind
from leadflow.devstack.postgres import start_postgres
from leadflow.devstack.processes import stop_process
from services.scoring import model_store
from shared.db import make_engine
from shared.envelope import Envelope
from shared.events import HandoffCreated, MqlReached
from shared.settings import Settings

LOAD_RATE = 1_000  # events per second
LOAD_SECONDS = 30
LOAD_BATCH = 20  # events per request, one per lead: 50 requests a second
LOAD_LEADS = 2_000  # the pool of leads the load's page views belong to
PROBE_RATE = 4.0  # probe journeys per second
HISTORY_EVENTS = 40_000  # the generated history trained on: about 5,000 leads, a few seconds
MODEL_POLL_S = 1.0  # how soon scoring sees the activated model
SAMPLE_S = 0.25  # how often the run reads scoring's /metrics
SLOW_BATCH_S = 0.25  # a histogram bucket edge of leadflow_rescore_batch_seconds
EARLY_S = 5.0  # "right after the run starts": the first seconds, when the pool's leads are new
# Without and with the model, twice, alternated: the stack fills and the shared machine's
# load moves as the runs go, so one pair in one order would mix those in.
ALTERNATION = (False, True, False, True)
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class LoadRun:
    model: str | None  # the active model's version
    mql_ms: list[float]  # probe POST → lead.mql_reached
    handoff_ms: list[float]  # probe POST → handoff.created
    events: int  # events posted during the run (load and probes)
    scoring_cpu_s: float
    hook_s: float  # the learned hook's seconds in scoring (history read, features, likelihood)
    hook_leads: int  # rescores it judged
    with_likelihood: int  # probes whose lead.mql_reached carried a likelihood
    with_factors: int  # ... and its top factors
    load_avg: tuple[float, float]  # 1-minute load average at the run's start and end
    probe_at: dict[str, float]  # each probe's MQL POST, seconds into the run (by trace id)
    mql_by_trace: dict[str, float]
    timeline: list[Sample]  # scoring's /metrics every SAMPLE_S
    # Before the run: feature states warmed at the activation, their seconds, and the seconds
    # from `leadflow model activate` (or the deactivation) to scoring's model in force.
    warmed: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Sample:
    """Scoring's counters at `at` seconds into the run."""

    at: float
    lag: float  # scoring's consumer lag, all partitions
    batches: float  # rescore batches so far
    batch_s: float  # their wall seconds
    slow_batches: float  # of those, the ones over SLOW_BATCH_S
    hook_s: float
    hook_batches: float
    builds: float  # feature states built from a stored history
    build_s: float
    warmed: float = 0.0  # feature states warmed at activations
    warm_s: float = 0.0
    in_force: bool = False  # a predictive model in force

    def since(self, first: Sample) -> Sample:
        """The counters counted from `first` (the gauge as it is)."""
        return Sample(
            self.at,
            self.lag,
            *(getattr(self, f) - getattr(first, f) for f in _COUNTED),
        )


_COUNTED = ("batches", "batch_s", "slow_batches", "hook_s", "hook_batches", "builds", "build_s")


@dataclass
class ModelActive:
    broker: str
    trained_on: tuple[int, int]  # (leads, events) of the generated history
    train_s: float
    runs: list[LoadRun]


async def model_active(work: Path, broker_kind: BrokerKind | Literal["auto"]) -> ModelActive:
    broker = start_bench_broker(work, broker_kind)
    postgres = start_postgres(work / "pg")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        settings, env = await prepare(broker, postgres)
        env["LEADFLOW_PREDICTIVE_MODEL_POLL_S"] = str(MODEL_POLL_S)
        headers = {"Authorization": f"Bearer {settings.admin_key}", "content-type": "application/json"}
        print(f"model_active: seeding about {HISTORY_EVENTS:,} events of history …", flush=True)
        trained_on = await seed_training_history(libpq_dsn(settings), settings, HISTORY_EVENTS)
        started = time.perf_counter()
        leadflow(env, "model", "train", "--since", "365d")
        train_s = time.perf_counter() - started
        version = await stored_version(settings)

        urls = {
            name: f"http://127.0.0.1:{env[f'LEADFLOW_{name.upper()}_PORT']}"
            for name in ("intake", "scoring", "handoff")
        }
        processes += [serve(name, env) for name in urls]
        for url in urls.values():
            await wait_ready(url)
        scoring_pid = processes[1].pid
        runs = []
        for active in ALTERNATION:
            before = _sample(await metrics_text(urls["scoring"], headers), 0.0)
            if active:
                leadflow(env, "model", "activate", version)
            else:
                await deactivate(libpq_dsn(settings))
            # Scoring has seen the change (after warming the feature states, with a model).
            in_force_s = await in_force(urls["scoring"], headers, active, within_s=120)
            after = _sample(await metrics_text(urls["scoring"], headers), 0.0)
            await asyncio.sleep(MODEL_POLL_S * 2)
            model = version if active else None
            print(f"model_active: {LOAD_RATE:,} events/s for {LOAD_SECONDS} s, model {model} …", flush=True)
            run = await load_run(settings, urls, headers, scoring_pid, model)
            runs.append(
                dataclasses.replace(
                    run, warmed=(after.warmed - before.warmed, after.warm_s - before.warm_s, in_force_s)
                )
            )
        return ModelActive(broker.description, trained_on, train_s, runs)
    finally:
        for process in processes:
            stop_process(process)
        broker.stop()
        postgres.stop()


async def metrics_text(scoring: str, headers: dict[str, str]) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{scoring}/metrics", headers=headers)).text


async def in_force(scoring: str, headers: dict[str, str], active: bool, *, within_s: float) -> float:
    """Seconds until scoring has a model in force (or none), by its /metrics."""
    started = time.perf_counter()
    while time.perf_counter() - started < within_s:
        if _sample(await metrics_text(scoring, headers), 0.0).in_force == active:
            return time.perf_counter() - started
        await asyncio.sleep(0.1)
    raise RuntimeError(f"scoring did not {'put the model in force' if active else 'drop the model'}")


def leadflow(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "leadflow", *args], env=env, check=True, stdout=subprocess.DEVNULL)


async def deactivate(db_dsn: str) -> None:
    """No model active (there is no command for it: activating another is the way back)."""
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute("UPDATE scoring.predictive_models SET active = false")
    finally:
        await conn.close()


async def stored_version(settings: Settings) -> str:
    engine = make_engine(settings, bounded=False)
    try:
        async with engine.connect() as conn:
            [stored] = await model_store.list_models(conn)
    finally:
        await engine.dispose()
    return str(stored.version)


async def load_run(
    settings: Settings, urls: dict[str, str], headers: dict[str, str], scoring_pid: int, model: str | None
) -> LoadRun:
    run_id = uuid.uuid4().hex[:6]
    requests = LOAD_RATE * LOAD_SECONDS // LOAD_BATCH
    bodies = [
        (
            "POST",
            "/v1/events/batch",
            orjson.dumps(
                {
                    "events": [
                        event(f"load{(r * LOAD_BATCH + i) % LOAD_LEADS}.{run_id}@northwind.example", r % 50)
                        for i in range(LOAD_BATCH)
                    ]
                }
            ),
        )
        for r in range(requests)
    ]
    probes = int(PROBE_RATE * LOAD_SECONDS)
    watcher = await LifecycleWatcher.start(settings)
    load_avg_start = os.getloadavg()[0]
    cpu_start, hook_start = cpu_seconds(scoring_pid), await hook_counters(urls["scoring"], headers)
    started = time.perf_counter()
    timeline: list[Sample] = []
    sampler = asyncio.create_task(sample(urls["scoring"], headers, started, timeline))
    try:
        load = asyncio.create_task(
            fixed_rate(urls["intake"], bodies, rate=LOAD_RATE / LOAD_BATCH, headers=headers)
        )
        await probe(urls["intake"], headers, watcher, probes, run_id)
        await load
        await watcher.wait(probes, within_s=60)
    finally:
        sampler.cancel()
        await watcher.stop()
    cpu_end, hook_end = cpu_seconds(scoring_pid), await hook_counters(urls["scoring"], headers)
    return LoadRun(
        model=model,
        mql_ms=list(watcher.mql_ms.values()),
        handoff_ms=list(watcher.handoff_ms.values()),
        events=requests * LOAD_BATCH + probes * 4,
        scoring_cpu_s=cpu_end - cpu_start,
        hook_s=hook_end[0] - hook_start[0],
        hook_leads=round(hook_end[1] - hook_start[1]),
        with_likelihood=watcher.with_likelihood,
        with_factors=watcher.with_factors,
        load_avg=(load_avg_start, os.getloadavg()[0]),
        probe_at={trace: at - started for trace, at in watcher.sent_at.items()},
        mql_by_trace=dict(watcher.mql_ms),
        timeline=[s.since(timeline[0]) for s in timeline] if timeline else [],
    )


async def sample(scoring: str, headers: dict[str, str], started: float, into: list[Sample]) -> None:
    """Scoring's counters every SAMPLE_S, until cancelled."""
    async with httpx.AsyncClient() as client:
        while True:
            text = (await client.get(f"{scoring}/metrics", headers=headers)).text
            into.append(_sample(text, time.perf_counter() - started))
            await asyncio.sleep(SAMPLE_S)


def _sample(text: str, at: float) -> Sample:
    v: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if family.name == "leadflow_consumer_lag" and s.labels.get("group", "").endswith("scoring"):
                v["lag"] = v.get("lag", 0.0) + s.value
            elif s.name in _SAMPLED or (s.name.endswith("_bucket") and family.name in _SLOW):
                if s.name.endswith("_bucket"):
                    if float(s.labels["le"]) == _SLOW[family.name]:
                        v[s.name] = s.value
                else:
                    v[s.name] = s.value
    return Sample(
        at=at,
        lag=v.get("lag", 0.0),
        batches=v.get("leadflow_rescore_batch_seconds_count", 0.0),
        batch_s=v.get("leadflow_rescore_batch_seconds_sum", 0.0),
        slow_batches=v.get("leadflow_rescore_batch_seconds_count", 0.0)
        - v.get("leadflow_rescore_batch_seconds_bucket", 0.0),
        hook_s=v.get("leadflow_learned_hook_batch_seconds_sum", 0.0),
        hook_batches=v.get("leadflow_learned_hook_batch_seconds_count", 0.0),
        builds=v.get("leadflow_feature_states_built_total", 0.0),
        build_s=v.get("leadflow_feature_state_build_seconds_total", 0.0),
        warmed=v.get("leadflow_feature_states_warmed_total", 0.0),
        warm_s=v.get("leadflow_feature_warmup_seconds_total", 0.0),
        in_force=v.get("leadflow_predictive_model_in_force", 0.0) == 1.0,
    )


_SAMPLED = {
    "leadflow_rescore_batch_seconds_count",
    "leadflow_rescore_batch_seconds_sum",
    "leadflow_learned_hook_batch_seconds_count",
    "leadflow_learned_hook_batch_seconds_sum",
    "leadflow_feature_states_built_total",
    "leadflow_feature_state_build_seconds_total",
    "leadflow_feature_states_warmed_total",
    "leadflow_feature_warmup_seconds_total",
    "leadflow_predictive_model_in_force",
}
_SLOW = {"leadflow_rescore_batch_seconds": SLOW_BATCH_S}


async def probe(
    intake: str, headers: dict[str, str], watcher: LifecycleWatcher, probes: int, run_id: str
) -> None:
    """Probe journeys at PROBE_RATE: the first events in a batch, the MQL-making one alone."""
    async with httpx.AsyncClient(timeout=30.0) as client:
        started = time.perf_counter()
        for i in range(probes):
            await asyncio.sleep(max(0.0, started + i / PROBE_RATE - time.perf_counter()))
            events = journey(f"probe{i}.{run_id}@northwind.example")
            (
                await client.post(f"{intake}/v1/events/batch", json={"events": events[:-1]}, headers=headers)
            ).raise_for_status()
            trace_id = uuid.uuid4().hex
            watcher.sent_at[trace_id] = time.perf_counter()
            response = await client.post(
                f"{intake}/v1/events", json=events[-1], headers={**headers, "X-Trace-Id": trace_id}
            )
            response.raise_for_status()


class LifecycleWatcher:
    """`lead.mql_reached` and `handoff.created` of the probes' traces, timed as they arrive."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.sent_at: dict[str, float] = {}
        self.mql_ms: dict[str, float] = {}
        self.handoff_ms: dict[str, float] = {}
        self.with_likelihood = 0
        self.with_factors = 0  # of those, the ones with their top factors
        self.expected: int | None = None
        self.all_seen = asyncio.Event()
        self.task = asyncio.create_task(self._watch())

    @classmethod
    async def start(cls, settings: Settings) -> LifecycleWatcher:
        consumer = AIOKafkaConsumer(
            settings.topic_prefix + "lead.lifecycle",
            bootstrap_servers=settings.kafka_bootstrap,
            auto_offset_reset="latest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        await consumer.start()
        await consumer.getmany(timeout_ms=1000)
        return cls(consumer)

    async def _watch(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                now = time.perf_counter()
                for record in records:
                    envelope = Envelope.from_bytes(record.value)
                    sent = self.sent_at.get(envelope.trace_id or "")
                    if sent is None:
                        continue
                    if envelope.type == MqlReached.event_type:
                        self.mql_ms.setdefault(envelope.trace_id or "", (now - sent) * 1000)
                        likelihood = envelope.data.get("likelihood")
                        self.with_likelihood += likelihood is not None
                        self.with_factors += bool(likelihood and likelihood.get("factors"))
                    elif envelope.type == HandoffCreated.event_type:
                        self.handoff_ms.setdefault(envelope.trace_id or "", (now - sent) * 1000)
                self._check()

    async def wait(self, probes: int, *, within_s: float) -> None:
        """Until every probe's MQL and handoff were seen, or `within_s` passed."""
        self.expected = probes
        self._check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_seen.wait(), timeout=within_s)

    def _check(self) -> None:
        if self.expected is not None and min(len(self.mql_ms), len(self.handoff_ms)) >= self.expected:
            self.all_seen.set()

    async def stop(self) -> None:
        self.task.cancel()
        await self.consumer.stop()


def cpu_seconds(pid: int) -> float:
    """The process's user and system CPU seconds so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


async def hook_counters(scoring: str, headers: dict[str, str]) -> tuple[float, float]:
    """(seconds, judged rescores) of the learned hook, from scoring's /metrics."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{scoring}/metrics", headers=headers)).text
    values = {"leadflow_learned_hook_seconds": 0.0, "leadflow_learned_hook_leads": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name in values:
            values[family.name] = sum(s.value for s in family.samples if s.name.endswith("_total"))
    return values["leadflow_learned_hook_seconds"], values["leadflow_learned_hook_leads"]


def model_active_report(m: ModelActive) -> str:
    leads, events = m.trained_on
    heads = " | ".join("model active" if r.model else "no model" for r in m.runs)
    lines = [
        f"broker: {m.broker}; the model trained on {events:,} generated events of {leads:,} leads "
        f"in {m.train_s:.1f} s; runs in the order of the columns",
        "",
        f"| {LOAD_RATE:,} events/s for {LOAD_SECONDS} s, intake → scoring → handoff | {heads} |",
        "| --- |" + " ---: |" * len(m.runs),
    ]

    def row(name: str, cell: Callable[[LoadRun], str]) -> str:
        return f"| {name} | " + " | ".join(cell(r) for r in m.runs) + " |"

    def quantiles(values: list[float]) -> str:
        if not values:
            return "none seen"
        return f"{percentile(values, 50):,.0f} / {percentile(values, 99):,.0f} ms"

    lines += [
        row("probe POST → `lead.mql_reached` p50 / p99", lambda r: quantiles(r.mql_ms)),
        row("probe POST → `handoff.created` p50 / p99", lambda r: quantiles(r.handoff_ms)),
        row("probes seen (MQL / handoff)", lambda r: f"{len(r.mql_ms)} / {len(r.handoff_ms)}"),
        row(
            "probe MQLs carrying a likelihood (with top factors)",
            lambda r: f"{r.with_likelihood} ({r.with_factors})",
        ),
        row("scoring CPU per event", lambda r: f"{r.scoring_cpu_s / r.events * 1e6:,.0f} µs"),
        row(
            "learned hook per event / per judged rescore (wall)",
            lambda r: f"{r.hook_s / r.events * 1e6:,.0f} / {r.hook_s / max(r.hook_leads, 1) * 1e6:,.0f} µs",
        ),
        row("rescores judged by the model", lambda r: f"{r.hook_leads:,}"),
        row("load average (1 min) start → end", lambda r: f"{r.load_avg[0]:.2f} → {r.load_avg[1]:.2f}"),
        "",
        f"Where the time goes (scoring's /metrics every {SAMPLE_S} s; \"early\": the run's first "
        f"{EARLY_S:.0f} s, when the pool's {LOAD_LEADS:,} leads are new and their scores change):",
        "",
        f"| split | {heads} |",
        "| --- |" + " ---: |" * len(m.runs),
        row("probe → MQL p50 / p99, early probes", lambda r: quantiles(_probes(r, early=True))),
        row("probe → MQL p50 / p99, later probes", lambda r: quantiles(_probes(r, early=False))),
        row("the three slowest probes: ms (s into the run)", _slowest),
        row("scoring's consumer lag: max (s into the run)", _max_lag),
        row("rescore batches: count, mean wall, over 250 ms", _batches),
        row("rescore batch wall: early / later seconds", lambda r: _early_late(r, "batch_s")),
        row("learned hook: batches, mean wall per batch", _hook),
        row("learned hook wall: early / later seconds", lambda r: _early_late(r, "hook_s")),
        row("feature states built from a stored history (s)", _builds),
        row(
            "before the run: feature states warmed (s); activation → in force",
            lambda r: f"{r.warmed[0]:,.0f} ({r.warmed[1]:.2f} s); {r.warmed[2]:.1f} s",
        ),
    ]
    return "\n".join(lines)


def _probes(r: LoadRun, *, early: bool) -> list[float]:
    return [ms for trace, ms in r.mql_by_trace.items() if (r.probe_at[trace] < EARLY_S) == early]


def _slowest(r: LoadRun) -> str:
    worst = sorted(r.mql_by_trace.items(), key=lambda item: -item[1])[:3]
    return ", ".join(f"{ms:,.0f} ({r.probe_at[trace]:.1f})" for trace, ms in worst)


def _max_lag(r: LoadRun) -> str:
    if not r.timeline:
        return "not sampled"
    top = max(r.timeline, key=lambda s: s.lag)
    return f"{top.lag:,.0f} ({top.at:.1f})"


def _last(r: LoadRun) -> Sample:
    return r.timeline[-1] if r.timeline else Sample(0, 0, 0, 0, 0, 0, 0, 0, 0)


def _batches(r: LoadRun) -> str:
    last = _last(r)
    mean = last.batch_s / max(last.batches, 1) * 1000
    return f"{last.batches:,.0f}, {mean:,.1f} ms, {last.slow_batches:,.0f}"


def _hook(r: LoadRun) -> str:
    last = _last(r)
    return f"{last.hook_batches:,.0f}, {last.hook_s / max(last.hook_batches, 1) * 1000:,.1f} ms"


def _early_late(r: LoadRun, counter: str) -> str:
    if not r.timeline:
        return "not sampled"
    early = next((s for s in r.timeline if s.at >= EARLY_S), r.timeline[-1])
    total = getattr(r.timeline[-1], counter)
    return f"{getattr(early, counter):.2f} / {total - getattr(early, counter):.2f} s"


def _builds(r: LoadRun) -> str:
    last = _last(r)
    return f"{last.builds:,.0f} ({last.build_s:.2f} s)"
