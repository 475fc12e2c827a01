"""Demo traffic: invented leads whose journeys exercise the whole pipeline.

`leadflow dev` runs `run_demo` so a newcomer sees leads flow from intake to the
dashboard. Each persona is a short, seeded story told as intake events that
satisfy the default tracking plan. Names and companies are made up and company
domains use the reserved `.example` TLD, so the demo holds no real personal data.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx

Event = dict[str, Any]
Log = Callable[[str], object]
Outcome = Literal["sent", "retry", "drop", "stopped"]

# Partner referrals are good-fit buyers who arrive through a partner: together
# they are the ~30% good fit, next to 20% students, 15% procurement, 35% tire kickers.
PERSONA_WEIGHTS: dict[str, float] = {
    "good_fit_buyer": 0.25,
    "partner_referral": 0.05,
    "student": 0.20,
    "procurement": 0.15,
    "tire_kicker": 0.35,
}
PERSONAS: tuple[str, ...] = tuple(PERSONA_WEIGHTS)

SITE = "https://www.leadflow.example"
FIRST_NAMES = ("Amara", "Ben", "Chen", "Dana", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas")
LAST_NAMES = ("Okafor", "Schmidt", "Nguyen", "Kim", "Yilmaz", "Haddad", "Tanaka", "Moreno", "Iyer")
# (company, domain, industry)
FIT_COMPANIES = (
    ("Northwind Analytics", "northwind-analytics.example", "Software"),
    ("Brightlane", "brightlane.example", "SaaS"),
    ("Ledgerly", "ledgerly.example", "Fintech"),
    ("Cobalt Cloud", "cobaltcloud.example", "SaaS"),
    ("Helix Payments", "helixpay.example", "Fintech"),
    ("Quarry Labs", "quarrylabs.example", "Software"),
)
OTHER_COMPANIES = (
    ("Fernhill Retail Group", "fernhill.example", "Retail"),
    ("Corvid Logistics", "corvid-logistics.example", "Logistics"),
    ("Saltmarsh Hotels", "saltmarsh.example", "Hospitality"),
    ("Pinecrest Health", "pinecrest-health.example", "Healthcare"),
)
FIT_TITLES = (
    "VP of Marketing",
    "VP of Sales",
    "Director of Marketing",
    "Director of Sales",
    "Head of Marketing",
    "Head of Sales",
)
UNIVERSITIES = ("Riverside University", "Lakeshore College", "Hochschule Nord")
FIT_COUNTRIES = ("US", "GB", "DE", "CA")
OTHER_COUNTRIES = ("US", "GB", "FR", "IN", "BR", "AU", "NL")
BLOG = ("lead-scoring-101", "mql-vs-sql", "sales-handoff-sla", "why-leads-get-returned")
PRODUCT_PAGES = ("/product", "/product/scoring", "/product/handoff", "/integrations")
WHITEPAPERS = ("wp-state-of-lead-quality", "wp-sla-playbook", "wp-funnel-benchmarks")
WEBINARS = ("web-2026-pipeline-reviews", "web-scoring-that-sales-trusts")
CAMPAIGNS = ("2026-q4-pipeline", "2026-q4-funnel-report", "always-on-search")
TRADESHOWS = ("RevOps Summit 2026", "B2B Growth Expo", "Demand Gen Live")


def pick_persona(rng: random.Random) -> str:
    """Draw a persona with the demo's mix (PERSONA_WEIGHTS)."""
    return rng.choices(PERSONAS, weights=tuple(PERSONA_WEIGHTS.values()))[0]


def persona_journey(rng: random.Random, persona: str, now: datetime) -> list[Event]:
    """One lead's events in order, spread over the hours or days before `now`."""
    if persona not in _STORIES:
        raise ValueError(f"unknown persona {persona!r}; expected one of {PERSONAS}")
    journey = _Journey(rng)
    _STORIES[persona](journey)
    return journey.events(now)


@dataclass
class _Step:
    type: str
    properties: Event
    traits: dict[str, Any] | None
    identified: bool


@dataclass
class _Journey:
    """A lead's steps; timestamps and ids are drawn at the end, oldest step first."""

    rng: random.Random
    email: str | None = None
    steps: list[_Step] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.anonymous_id = f"anon-{self.rng.getrandbits(64):016x}"
        self.span = timedelta(hours=self.rng.uniform(2, 72))

    def add(self, type_: str, props: Event, traits: Any = None, *, known: bool = True) -> None:
        self.steps.append(_Step(type_, props, traits, known and self.email is not None))

    def events(self, now: datetime) -> list[Event]:
        ages = sorted((self.rng.random() for _ in self.steps), reverse=True)
        return [self._event(step, now - self.span * age) for step, age in zip(self.steps, ages, strict=True)]

    def _event(self, step: _Step, at: datetime) -> Event:
        event: Event = {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "type": step.type,
            "occurred_at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "anonymous_id": self.anonymous_id,
        }
        if step.identified:
            event["email"] = self.email
        if step.traits:
            event["traits"] = dict(step.traits)
        event["properties"] = dict(step.properties)
        return event


def _slug(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def _work_person(
    j: _Journey, title: str, department: str, channel: str, *, fit: bool, big: bool
) -> dict[str, Any]:
    """Traits of someone at a company, and their work email on its domain."""
    first, last = j.rng.choice(FIRST_NAMES), j.rng.choice(LAST_NAMES)
    company, domain, industry = j.rng.choice(FIT_COMPANIES if fit else OTHER_COMPANIES)
    j.email = f"{_slug(first)}.{_slug(last)}@{domain}"
    return {
        "first_name": first,
        "last_name": last,
        "title": title,
        "department": department,
        "company": company,
        "company_domain": domain,
        "company_size": j.rng.randint(200, 5000) if big else j.rng.randint(5, 150),
        "industry": industry,
        "country": j.rng.choice(FIT_COUNTRIES if fit else OTHER_COUNTRIES),
        "channel": channel,
    }


def _utm(rng: random.Random, channel: str) -> dict[str, str]:
    if channel != "paid":
        return {}
    source, medium = rng.choice((("google", "cpc"), ("linkedin", "paid_social")))
    return {"utm_source": source, "utm_medium": medium, "utm_campaign": rng.choice(CAMPAIGNS)}


def _url(path: str) -> str:
    return SITE + path


def _good_fit_buyer(j: _Journey, channel: str = "") -> None:
    """Met us at a show or read the blog, downloads, attends a webinar, checks pricing, asks for sales."""
    rng = j.rng
    channel = channel or rng.choice(("organic", "paid", "event"))
    title = rng.choice(FIT_TITLES)
    department = "Marketing" if "Marketing" in title else "Sales"
    traits = _work_person(j, title, department, channel, fit=True, big=True)
    if channel == "event":  # a badge scan at the booth: known from the start
        j.add("event_visit", {"event_name": rng.choice(TRADESHOWS)}, traits)
    utm = _utm(rng, channel)
    for slug in rng.sample(BLOG, rng.randint(1, 2)):
        j.add("page_view", {"url": _url(f"/blog/{slug}"), **utm}, known=False)
    j.add("page_view", {"url": _url(rng.choice(PRODUCT_PAGES)), **utm}, known=False)
    paper, campaign = rng.choice(WHITEPAPERS), rng.choice(CAMPAIGNS)
    download = {"content_id": paper, "campaign": campaign, "url": _url(f"/resources/{paper}")}
    j.add("content_download", download, traits)
    if rng.random() < 0.7:
        webinar = {"webinar_id": rng.choice(WEBINARS), "campaign": campaign}
        j.add("webinar_registered", dict(webinar))
        j.add("webinar_attended", dict(webinar))
    for _ in range(rng.randint(2, 3)):
        j.add("page_view", {"url": _url("/pricing")})
    form = rng.choice(("demo_request", "contact_sales"))
    j.add(form, {"form_id": f"{form}-main", "url": _url(f"/{form.replace('_', '-')}")}, traits)


def _partner_referral(j: _Journey) -> None:
    """A good-fit buyer a partner or customer sent our way."""
    _good_fit_buyer(j, channel="referral")


def _student(j: _Journey) -> None:
    """Reads the blog for coursework and downloads a whitepaper with a gmail address."""
    rng = j.rng
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    j.email = f"{_slug(first)}.{_slug(last)}{rng.randint(1, 99)}@gmail.com"
    traits = {
        "first_name": first,
        "last_name": last,
        "title": "Student",
        "company": rng.choice(UNIVERSITIES),
        "country": rng.choice(OTHER_COUNTRIES),
        "channel": "organic",
    }
    for slug in rng.sample(BLOG, rng.randint(2, 4)):
        j.add("page_view", {"url": _url(f"/blog/{slug}")}, known=False)
    paper = rng.choice(WHITEPAPERS)
    j.add("content_download", {"content_id": paper, "url": _url(f"/resources/{paper}")}, traits)


def _procurement(j: _Journey) -> None:
    """Compares prices for a purchase someone else decides: pricing pages, then contact sales."""
    rng = j.rng
    title = rng.choice(("Procurement Specialist", "Purchasing Manager"))
    channel = rng.choice(("organic", "paid"))
    utm = _utm(rng, channel)
    for _ in range(rng.randint(2, 4)):
        j.add("page_view", {"url": _url("/pricing"), **utm})
    traits = _work_person(j, title, "Procurement", channel, fit=rng.random() < 0.5, big=True)
    j.add("contact_sales", {"form_id": "contact_sales-main", "url": _url("/contact-sales")}, traits)


def _tire_kicker(j: _Journey) -> None:
    """A few anonymous blog reads; now and then leaves a work email, nothing more."""
    rng = j.rng
    j.span = timedelta(minutes=rng.uniform(5, 240))
    for slug in rng.choices(BLOG, k=rng.randint(1, 4)):
        j.add("page_view", {"url": _url(f"/blog/{slug}")})
    if rng.random() < 0.3:
        fit = rng.random() < 0.5
        traits = _work_person(j, "Analyst", "Finance", "organic", fit=fit, big=fit)
        j.add("identify", {}, {k: traits[k] for k in ("first_name", "company", "company_domain")})


_STORIES: dict[str, Callable[[_Journey], None]] = {
    "good_fit_buyer": _good_fit_buyer,
    "partner_referral": _partner_referral,
    "student": _student,
    "procurement": _procurement,
    "tire_kicker": _tire_kicker,
}


def _print_now(line: str) -> None:
    print(line, flush=True)  # the demo's stdout is often a log file: do not sit in a buffer


# Failures back off from RETRY_MIN_S, doubling to RETRY_MAX_S; a success resets it.
RETRY_MIN_S = 0.2
RETRY_MAX_S = 30.0
_RETRYABLE = {408, 425, 429}
_EMAIL = re.compile(r"[^\s@'\"]+@[^\s@'\"]+")


async def run_demo(
    intake_url: str,
    api_key: str,
    *,
    rate_per_s: float,
    stop: asyncio.Event,
    seed: int | None = None,
    log: Log = _print_now,
) -> int:
    """Post persona journeys to intake at ~`rate_per_s` events/s until `stop`; return events sent.

    A failed batch is logged and sent again after a back-off (the same event ids,
    so intake deduplicates); a 4xx that a retry cannot fix drops the batch instead.
    A fixed `seed` replays the same events, ids included: against the same database,
    a second run's events are duplicates that intake accepts and ignores.
    """
    rng = random.Random(seed)
    sent, backoff = 0, RETRY_MIN_S
    retry: list[Event] | None = None
    headers = {"Authorization": f"Bearer {api_key}"}
    clock = asyncio.get_running_loop().time
    async with httpx.AsyncClient(base_url=intake_url, headers=headers, timeout=10.0) as client:
        while not stop.is_set():
            batch = retry or persona_journey(rng, pick_persona(rng), datetime.now(UTC))
            started = clock()
            outcome = await _post_batch(client, batch, stop, log)
            pause = len(batch) / rate_per_s - (clock() - started)
            if outcome == "sent":
                sent, retry, backoff = sent + len(batch), None, RETRY_MIN_S
            elif outcome != "stopped":
                retry = batch if outcome == "retry" else None
                pause, backoff = max(pause, backoff), min(backoff * 2, RETRY_MAX_S)
            await _sleep_unless_stopped(stop, pause)
    return sent


async def _post_batch(
    client: httpx.AsyncClient, batch: list[Event], stop: asyncio.Event, log: Log
) -> Outcome:
    """Post one batch and say what became of it; "stopped" if `stop` came first."""
    request = asyncio.ensure_future(client.post("/v1/events/batch", json={"events": batch}))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({request, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not request.done():
            request.cancel()
            await asyncio.gather(request, return_exceptions=True)
    if request.cancelled():
        return "stopped"
    try:
        response = request.result()
    except httpx.HTTPError as exc:
        log(f"demo: intake unreachable ({type(exc).__name__}); retrying")
        return "retry"
    if response.is_success:
        return "sent"
    retryable = response.status_code >= 500 or response.status_code in _RETRYABLE
    log(
        f"demo: intake answered {response.status_code} {_problem(response)}; "
        + ("retrying" if retryable else "dropping this batch")
    )
    return "retry" if retryable else "drop"


def _problem(response: httpx.Response) -> str:
    """The problem's title and detail only, with anything email-like masked."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    text = ": ".join(str(body[k]) for k in ("title", "detail") if body.get(k))
    return _EMAIL.sub("<email>", text)


async def _sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0 or stop.is_set():
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
