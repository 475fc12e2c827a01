"""intake: the single-event endpoint (new people, returning people) and the batch endpoint, closed
loop, on topics of their own."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

import orjson
import psutil

from bench.http_load import hammer
from bench.lead_events import event
from bench.stack import serve, wait_ready
from leadflow.devstack.ports import free_port
from leadflow.devstack.processes import stop_process
from shared.kafka import ensure_topics
from shared.settings import Settings

HTTP_REQUESTS = 3000
BATCH_SIZE = 100
BATCHES = 60
RETURNING = 50  # people whose events the returning-people figure repeats
PREFIX = "bench-intake."


@dataclass(frozen=True)
class Served:
    """Requests/s of a server under `hammer`, with its CPU per request and the machine's load:
    a machine busy with other work lowers the rate more than the CPU a request costs."""

    rps: float
    cpu_ms: float  # the serving process's CPU per request (its background loops included)
    machine_busy: float  # percent of all cores, over the same time


async def served(pid: int, requests: int, load: Awaitable[float]) -> Served:
    server = psutil.Process(pid)
    psutil.cpu_percent()  # starts the machine-wide count
    cpu = sum(server.cpu_times()[:2])
    rps = await load
    cpu = sum(server.cpu_times()[:2]) - cpu
    return Served(rps, 1000 * cpu / requests, psutil.cpu_percent())


@dataclass(frozen=True)
class IntakeServed:
    """intake's single-event endpoint for new people (every request a vault miss: a key created)
    and for returning people (keys cached), and its batch endpoint's requests/s."""

    new_people: Served
    returning_people: Served
    batch_rps: float


async def intake_throughput(settings: Settings, env: dict[str, str], headers: dict[str, str]) -> IntakeServed:
    """The single-event endpoint (new people, then returning people) and the batch endpoint of
    one intake process.

    Its own topics, so the events it publishes are not a backlog for the scoring phases.
    """
    intake_only = {**env, "LEADFLOW_TOPIC_PREFIX": PREFIX, "LEADFLOW_INTAKE_PORT": str(free_port())}
    await ensure_topics(settings.model_copy(update={"topic_prefix": PREFIX}))
    process = serve("intake", intake_only)
    try:
        intake_url = f"http://127.0.0.1:{intake_only['LEADFLOW_INTAKE_PORT']}"
        await wait_ready(intake_url)
        events_url = f"{intake_url}/v1/events"
        # the headline: each event from a new person, so each request creates a data key
        bodies = [orjson.dumps(event(f"single{i}@northwind.example", i % 50)) for i in range(HTTP_REQUESTS)]
        new_people = await served(
            process.pid, HTTP_REQUESTS, hammer(events_url, lambda i: bodies[i], HTTP_REQUESTS, headers)
        )
        # the same RETURNING people over and over: their keys cached after a first event each
        returning = [
            orjson.dumps(event(f"returning{i % RETURNING}@northwind.example", i % 50))
            for i in range(HTTP_REQUESTS)
        ]
        await hammer(events_url, lambda i: returning[i], RETURNING, headers)
        returning_people = await served(
            process.pid, HTTP_REQUESTS, hammer(events_url, lambda i: returning[i], HTTP_REQUESTS, headers)
        )
        batch_bodies = [
            orjson.dumps(
                {"events": [event(f"b{b}.{i}@northwind.example", i % 50) for i in range(BATCH_SIZE)]}
            )
            for b in range(BATCHES)
        ]
        batch = await hammer(f"{intake_url}/v1/events/batch", lambda i: batch_bodies[i], BATCHES, headers)
        return IntakeServed(new_people, returning_people, batch)
    finally:
        stop_process(process)
