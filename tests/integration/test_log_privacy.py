"""The logs of a run carry no personal data: intake and scoring run as processes with JSON logs
(as in production) while Postgres refuses scoring's writes of new leads, so the error that
comes back holds the lead's row (email, names); the person's erasure is requested too; then the
logs are searched for them. (tests/e2e/test_erasure.py searches all four services' logs of a
whole run, erasure included.)"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from sqlalchemy import text

from leadflow.devstack.processes import stop_process
from shared.db import make_engine
from shared.settings import Settings
from tests.support import (
    ADMIN,
    eventually,
    good_fit_journey,
    loopback_client,
    service_ready,
    start_service,
    unique_email,
)


async def test_logs_of_a_run_with_a_database_error_hold_no_email_or_name(
    settings: Settings, tmp_path: Path
) -> None:
    email = unique_email("grace")
    first, last = f"Zelda{uuid.uuid4().hex[:6]}", f"Quartermaine{uuid.uuid4().hex[:6]}"
    events = good_fit_journey(email)
    for event in events:
        event["traits"] = {**event["traits"], "first_name": first, "last_name": last}
    logs = {name: tmp_path / f"{name}.log" for name in ("intake", "scoring")}
    json_logs = {"LEADFLOW_LOG_JSON": "true", "LEADFLOW_LOG_LEVEL": "INFO"}
    processes = []
    engine = make_engine(settings, bounded=False)
    try:
        for name, path in logs.items():
            with path.open("wb") as log:
                processes.append(start_service(name, settings, log=log, **json_logs))
        for _, url in processes:
            await eventually(lambda url=url: service_ready(url), timeout=60)
        async with engine.begin() as conn:  # Postgres now refuses every new lead, citing its row
            await conn.execute(
                text("ALTER TABLE scoring.leads ADD CONSTRAINT refuse_new_leads CHECK (false) NOT VALID")
            )
        intake_url = processes[0][1]
        async with loopback_client(base_url=intake_url, headers=ADMIN) as client:
            accepted = await client.post("/v1/events/batch", json={"events": events})
            assert accepted.status_code == 202, accepted.text
            refused = await client.post("/v1/events", json={**events[0], "email": "not an email"})
            assert refused.status_code == 422

        def retried() -> bool:
            return "refuse_new_leads" in logs["scoring"].read_text()

        await eventually(retried, timeout=30)
        async with loopback_client(base_url=processes[1][1], headers=ADMIN) as client:  # scoring
            erasure = await client.post("/v1/erasures", json={"email": email})
            assert erasure.status_code == 202, erasure.text

        def erasure_logged() -> bool:
            return "erasure_requested" in logs["scoring"].read_text()

        await eventually(erasure_logged, timeout=30)
    finally:
        for process, _ in processes:
            stop_process(process)
        await engine.dispose()

    lines = [line for path in logs.values() for line in path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    failures = [r for r in records if "refuse_new_leads" in json.dumps(r)]
    assert failures, "the database error was not logged"
    assert "[parameters: (" not in "\n".join(lines)  # the statement is logged, never its values
    everything = "\n".join(lines).lower()
    for personal in (email, first, last, email.split("@")[0]):
        assert personal.lower() not in everything, f"{personal} is in the logs"
