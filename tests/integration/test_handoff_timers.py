"""SLA timers with two handoff processes running at once: each warning and breach fires
exactly once, and timers scheduled before a crash fire after the restart."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import yaml

from leadflow.admin.migrations import migrate_all
from shared.events import MqlReached, envelope_for
from shared.settings import Settings
from tests.conftest import ROOT
from tests.integration.test_pipeline_services import publish
from tests.support import eventually, service_ready, start_service, tap

# Wall-clock SLA (no calendar) short enough for a test: warn after 7.2 s, breach after 14.4 s.
FAST_POLICY = {
    "name": "standard",
    "decide_within_hours": 0.004,
    "qualify_within_hours": 1,
    "warn_at": 0.5,
    "on_breach": {"alert": True, "reassign_to": "sales-managers"},
}


def fast_sla(original: Path) -> str:
    config = yaml.safe_load(original.read_text())  # keeps the calendars the routing teams name
    return yaml.safe_dump({**config, "policies": [FAST_POLICY]})


def start_handoff(settings: Settings, config_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    return start_service("handoff", settings, config_dir=config_dir, LEADFLOW_SLA_TIMER_POLL_S="0.2")


def mql(lead_id: str):  # type: ignore[no-untyped-def]
    data = MqlReached(
        cycle=1,
        score=70,
        grade="A",
        model_version="test",
        explanation=[],
        traits={"country": "JP", "company_size": 300},  # no routing rule: the queue, on wall-clock time
    )
    return envelope_for(data, source="scoring", lead_id=lead_id)


async def test_two_instances_fire_each_timer_once_and_timers_survive_a_crash(
    settings: Settings, tmp_path: Path
) -> None:
    config_dir = tmp_path / "config"
    shutil.copytree(ROOT / "config", config_dir)
    (config_dir / "sla.yaml").write_text(fast_sla(ROOT / "config" / "sla.yaml"))
    await migrate_all(settings)
    processes = [start_handoff(settings, config_dir) for _ in range(2)]
    try:
        async with tap(settings, settings.topic_prefix + "lead.lifecycle") as lifecycle:
            for _, url in processes:
                await eventually(lambda url=url: service_ready(url), timeout=60)
            leads = [f"lead-{uuid.uuid4().hex[:8]}" for _ in range(10)]
            await publish(settings, [mql(lead) for lead in leads], topic="lead.lifecycle")
            created = await lifecycle.wait_for("handoff.created", count=10, timeout=30)
            assert not lifecycle.envelopes("handoff.sla_warning")

            for process, _ in processes:  # a crash of both, before any timer is due
                process.send_signal(signal.SIGKILL)
                process.wait()
            processes = [start_handoff(settings, config_dir) for _ in range(2)]

            await lifecycle.wait_for("handoff.sla_warning", count=10, timeout=60)
            await lifecycle.wait_for("handoff.sla_breached", count=10, timeout=60)
            await lifecycle.wait_for("handoff.reassigned", count=10, timeout=30)
            await asyncio.sleep(2.0)
            handoffs = {e.data["handoff_id"] for e in created}
            for kind in ("handoff.sla_warning", "handoff.sla_breached", "handoff.reassigned"):
                fired = Counter(e.data["handoff_id"] for e in lifecycle.envelopes(kind))
                assert set(fired) == handoffs and set(fired.values()) == {1}, kind
            assert {e.data["to_owner"] for e in lifecycle.envelopes("handoff.reassigned")} == {
                "sales-managers"
            }
    finally:
        for process, _ in processes:
            process.terminate()
            process.wait(timeout=30)
