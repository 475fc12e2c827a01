"""A reopened handoff has an SLA of its own: when it misses its new deadline too, the second
breach fires, the handoff keeps both on record, and feedback counts and alerts both."""

from __future__ import annotations

import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy import select

from services.feedback import store as feedback_store
from services.handoff import store as handoff_store
from services.handoff.timers import fire_due_timers
from shared.settings import Settings
from tests.conftest import ROOT
from tests.integration.test_handoff_timers import mql
from tests.integration.test_pipeline_services import publish
from tests.support import ADMIN, eventually, running, tap

# Wall-clock hours. The test lets the first deadline pass by firing the timers as if it had, but
# reopens in real time, before it: on a calendar, out of hours, both deadlines would then be the
# same next opening, which real time cannot give (a reopen after a breach comes after its deadline).
WALL_CLOCK_POLICY = {
    "name": "standard",
    "decide_within_hours": 8,
    "qualify_within_hours": 8,
    "warn_at": 0.75,
    "on_breach": {"alert": True},
}


def wall_clock_sla(settings: Settings, folder: Path) -> Settings:
    shutil.copytree(ROOT / "config", folder)
    config = yaml.safe_load((ROOT / "config" / "sla.yaml").read_text())  # keeps the teams' calendars
    (folder / "sla.yaml").write_text(yaml.safe_dump({**config, "policies": [WALL_CLOCK_POLICY]}))
    return settings.model_copy(update={"config_dir": folder})


async def test_a_reopened_handoff_that_misses_its_new_deadline_breaches_again(
    settings: Settings, tmp_path: Path
) -> None:
    lead_id = f"lead-{uuid.uuid4().hex[:8]}"
    on_wall_clock = wall_clock_sla(settings, tmp_path / "config")
    async with (
        running("handoff", on_wall_clock) as handoff,
        running("feedback", settings) as feedback,
        tap(settings, settings.topic_prefix + "lead.lifecycle") as lifecycle,
    ):
        await publish(settings, [mql(lead_id)], topic="lead.lifecycle")
        [created] = await lifecycle.wait_for("handoff.created", lambda e: e.lead_id == lead_id)
        handoff_id = created.data["handoff_id"]
        url = f"/v1/handoffs/{handoff_id}"
        config = handoff.app.state.config

        async def breached_by(deadline: str) -> None:
            """The timer loop's round at a minute past the deadline, as if that time had come."""
            async with handoff.runtime.unit_of_work() as uow:
                now = datetime.fromisoformat(deadline) + timedelta(minutes=1)
                await fire_due_timers(uow, config, now=now)

        await breached_by(created.data["decide_by"])
        rejected = await handoff.client.post(f"{url}/reject", json={"reason": "not_ready"}, headers=ADMIN)
        assert rejected.status_code == 200
        reopened = await handoff.client.post(
            f"{url}/reopen", json={"reason": "rejected by mistake"}, headers=ADMIN
        )
        assert reopened.status_code == 200 and reopened.json()["stage"] == "mql"
        await breached_by(reopened.json()["decide_by"])

        breaches = await lifecycle.wait_for(
            "handoff.sla_breached", lambda e: e.data["handoff_id"] == handoff_id, count=2
        )
        assert [e.data["stage"] for e in breaches] == ["mql", "mql"]
        assert len({e.data["due_at"] for e in breaches}) == 2  # one per deadline missed

        async with handoff.runtime.engine.connect() as conn:
            timers = handoff_store.sla_timers.c
            fired = await conn.execute(
                select(timers.deadline).where(
                    timers.handoff_id == handoff_id, timers.kind == "breach", timers.fired_at.is_not(None)
                )
            )
            assert len(fired.all()) == 2  # the first breach is still on record

        async def recorded() -> list[tuple[datetime, datetime | None]] | None:
            async with feedback.runtime.engine.connect() as conn:
                b = feedback_store.sla_breaches.c
                rows = await conn.execute(
                    select(b.due_at, b.resolved_at).where(b.handoff_id == handoff_id).order_by(b.due_at)
                )
                found = [(row.due_at, row.resolved_at) for row in rows]
            return found if len(found) == 2 else None

        (first_due, first_resolved), (second_due, second_resolved) = await eventually(recorded)
        assert first_resolved is not None  # the reject ended the first
        assert second_resolved is None and second_due > first_due  # the second is open

        async def breach_alerts() -> list[str] | None:
            async with feedback.runtime.engine.connect() as conn:
                a = feedback_store.alerts.c
                rows = await conn.execute(
                    select(a.status).where(a.alert_key.contains(handoff_id)).order_by(a.raised_at)
                )
                statuses = [row.status for row in rows]
            return statuses if len(statuses) == 2 else None

        assert await eventually(breach_alerts) == ["resolved", "open"]
