"""Each service's `/metrics` exposes the figures ops graph, after a little real traffic:
intake accepts and refuses events, a good-fit lead becomes an MQL, its handoff misses a
tiny SLA, a webhook attempt fails, and the consumers report their lag per partition.

Prometheus collectors are global to the process (the services here share one), so
counters are compared before and after; gauges are read as they are.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from leadflow.devstack.ports import free_port
from shared.settings import Settings
from tests.conftest import ROOT
from tests.integration.test_pipeline_services import intake_envelopes, publish
from tests.support import ADMIN, eventually, good_fit_journey, now_minus, running, tap, unique_email

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# Wall-clock SLA of 1.8 s to decide, warned halfway; every lead goes to a team without a calendar.
FAST_POLICY = {
    "name": "fast",
    "decide_within_hours": 0.0005,
    "qualify_within_hours": 1,
    "warn_at": 0.5,
    "on_breach": {"alert": True},
}
EVERYONE_TO_ENTERPRISE = {"name": "everyone", "assign": {"team": "enterprise"}}


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def lag_by_partition(samples: Samples, group: str, topic: str) -> Mapping[str, float]:
    return {
        dict(labels)["partition"]: v
        for (name, labels), v in samples.items()
        if name == "leadflow_consumer_lag"
        and dict(labels)["group"] == group
        and dict(labels)["topic"] == topic
    }


def fast_config(tmp_path: Path) -> Path:
    config_dir = tmp_path / "config"
    shutil.copytree(ROOT / "config", config_dir)
    sla = yaml.safe_load((config_dir / "sla.yaml").read_text())  # keeps the calendars teams name
    (config_dir / "sla.yaml").write_text(yaml.safe_dump({**sla, "policies": [FAST_POLICY]}))
    routing = yaml.safe_load((config_dir / "routing.yaml").read_text())
    (config_dir / "routing.yaml").write_text(yaml.safe_dump({**routing, "rules": [EVERYONE_TO_ENTERPRISE]}))
    return config_dir


async def test_intake_counts_accepted_and_rejected_events_by_reason(settings: Settings) -> None:
    email = unique_email()
    page_view = {"type": "page_view", "occurred_at": now_minus(1), "email": email}
    async with running("intake", settings) as intake:
        client = intake.client
        before = await scrape(client)
        accepted = await client.post(
            "/v1/events/batch", json={"events": good_fit_journey(email)}, headers=ADMIN
        )
        assert accepted.status_code == 202
        unknown = {**page_view, "type": "teleport", "properties": {"url": "https://x.example"}}
        assert (await client.post("/v1/events", json=unknown, headers=ADMIN)).status_code == 422
        batch = [{**page_view, "properties": {"url": "https://x.example"}}, page_view]  # the second lacks url
        refused = await client.post("/v1/events/batch", json={"events": batch}, headers=ADMIN)
        assert refused.status_code == 422
        no_time = {k: v for k, v in page_view.items() if k != "occurred_at"}
        assert (await client.post("/v1/events", json=no_time, headers=ADMIN)).status_code == 422
        huge = b"x" * (settings.max_body_bytes + 1)
        too_large = await client.post(
            "/v1/events", content=huge, headers={**ADMIN, "content-type": "application/json"}
        )
        assert too_large.status_code == 413
        after = await scrape(client)

    events = "leadflow_intake_events_total"
    assert delta(before, after, events, outcome="accepted") == 4
    rejected = {
        reason: delta(before, after, events, outcome="rejected", reason=reason)
        for reason in (
            "tracking_plan_type",
            "required_by_tracking_plan",
            "batch_rejected",
            "missing",
            "too_large",
        )
    }
    assert rejected == dict.fromkeys(rejected, 1)
    assert delta(before, after, events, outcome="rejected") == 5
    assert not any(email in name or email in str(labels) for name, labels in after)  # no values as labels


async def test_each_service_exposes_its_figures_after_a_lead_goes_through(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={
            "config_dir": fast_config(tmp_path),
            "sla_timer_poll_s": 0.2,
            "gauge_refresh_s": 0.2,
            "webhook_poll_s": 0.2,
        }
    )
    prefix = settings.topic_prefix
    async with (
        running("scoring", settings) as scoring,
        running("handoff", settings) as handoff,
        running("feedback", settings) as feedback,
        tap(settings, prefix + "lead.lifecycle") as lifecycle,
    ):
        hook = {"url": f"http://127.0.0.1:{free_port()}/nobody-listens", "event_types": ["handoff.created"]}
        assert (await handoff.client.post("/v1/webhooks", json=hook, headers=ADMIN)).status_code == 201
        before = await scrape(scoring.client)

        await publish(settings, intake_envelopes(good_fit_journey(unique_email())))
        [mql] = await lifecycle.wait_for("lead.mql_reached")
        [created] = await lifecycle.wait_for("handoff.created")
        assert (created.data["policy"], created.data["team"]) == ("fast", "enterprise")
        await lifecycle.wait_for("handoff.sla_warning")
        await lifecycle.wait_for("handoff.sla_breached")

        scored = await scrape(scoring.client)
        assert delta(before, scored, "leadflow_mqls_total", grade=mql.data["grade"]) == 1
        assert delta(before, scored, "leadflow_mqls_total") == 1
        events_lag = await eventually(
            lambda: _caught_up(scoring.client, f"{prefix}leadflow-scoring", f"{prefix}lead.events")
        )
        assert set(events_lag) == {"0", "1", "2"}  # one gauge per partition of the topic

        async def handed_off() -> Samples | None:
            samples = await scrape(handoff.client)
            webhook_tried = delta(before, samples, "leadflow_webhook_deliveries_total", outcome="retrying")
            in_mql = value(samples, "leadflow_handoffs", stage="mql") == 1
            return samples if in_mql and webhook_tried >= 1 else None

        handed = await eventually(handed_off)
        team = {"policy": "fast", "team": "enterprise"}
        assert delta(before, handed, "leadflow_sla_warnings_total", **team) == 1
        assert delta(before, handed, "leadflow_sla_breaches_total", **team) == 1
        assert {
            stage: value(handed, "leadflow_handoffs", stage=stage) for stage in ("sal", "sql", "sqo")
        } == {
            "sal": 0,
            "sql": 0,
            "sqo": 0,
        }
        assert await _caught_up(handoff.client, f"{prefix}leadflow-handoff", f"{prefix}lead.lifecycle")
        assert (
            value(handed, "leadflow_outbox_published_total")
            - value(before, "leadflow_outbox_published_total")
            > 0
        )

        exposed = families((await feedback.client.get("/metrics", headers=ADMIN)).text)
        assert {"leadflow_return_rate", "leadflow_return_rate_decisions", "leadflow_alerts_open"} <= exposed
        assert await _caught_up(feedback.client, f"{prefix}leadflow-feedback", f"{prefix}lead.lifecycle")


async def _caught_up(client: httpx.AsyncClient, group: str, topic: str) -> Mapping[str, float] | None:
    """The group's lag on `topic` per partition, once every partition is reported at zero."""
    lag = lag_by_partition(await scrape(client), group, topic)
    return lag if lag and not any(lag.values()) else None


async def test_metrics_need_the_metrics_read_scope_and_labels_hold_no_request_values(
    settings: Settings,
) -> None:
    from leadflow.admin.keys import create_key
    from shared.auth import Scope

    async with running("intake", settings) as intake:
        client = intake.client
        reader, _ = await create_key(settings, name="prometheus", scopes=[Scope.METRICS_READ], owner=None)
        writer, _ = await create_key(settings, name="forms", scopes=[Scope.EVENTS_WRITE], owner=None)
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"X-API-Key": writer})).status_code == 403
        marker = f"zz{unique_email().split('@')[0]}"
        assert (await client.post(f"/v1/keys/{marker}/revoke", headers=ADMIN)).status_code == 404
        assert (await client.get(f"/{marker}")).status_code == 404
        await client.request("BREW", f"/v1/keys/{marker}/revoke")
        scraped = await client.get("/metrics", headers={"X-API-Key": reader})
        assert scraped.status_code == 200
    samples = {
        (s.name, frozenset(s.labels.items()))
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }
    labels = {value for _, pairs in samples for _, value in pairs}
    assert not any(marker in value for value in labels)  # neither raw paths nor ids
    assert {"/v1/keys/{key_id}/revoke", "unmatched"} <= labels  # the route's template instead
    assert "BREW" not in labels and "other" in labels  # methods outside HTTP's own: one bucket
