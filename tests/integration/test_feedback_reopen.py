"""A reopened handoff is back at MQL in feedback: the return rate and the funnel stop counting
it as returned and count the decision sales makes after the reopen; `leadflow feedback
rebuild` (apply_events) reproduces it from the topic (the rebuild property test shows the
consumer builds the same)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadflow.admin.migrations import migrate_all
from services.feedback import reports, store
from services.feedback.domain import FeedbackConfig, Window
from services.feedback.rebuild import apply_events
from shared.db import make_engine
from shared.envelope import Envelope
from shared.settings import Settings
from tests.lifecycle import created, moved

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def history() -> list[Envelope]:
    """Four handoffs: 0 returned then reopened and accepted; 1 rejected then reopened, still
    waiting; 2 disqualified, reopened, rejected; 3 returned and left returned."""
    return [
        *(created(n, at=at(0)) for n in range(4)),
        moved(0, "lead.sal_accepted", at=at(1)),
        moved(0, "lead.returned", at=at(2)),
        moved(0, "handoff.reopened", at=at(3)),
        moved(0, "lead.sal_accepted", at=at(4)),
        moved(1, "lead.rejected", at=at(1)),
        moved(1, "handoff.reopened", at=at(2)),
        moved(2, "lead.disqualified", at=at(1)),
        moved(2, "handoff.reopened", at=at(2), from_stage="disqualified"),
        moved(2, "lead.rejected", at=at(5), reason="not_ready"),
        moved(3, "lead.sal_accepted", at=at(1)),
        moved(3, "lead.returned", at=at(2)),
    ]


async def test_a_reopened_handoff_counts_by_its_decision_after_the_reopen(settings: Settings) -> None:
    await migrate_all(settings)
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            await apply_events(conn, [[e.to_bytes() for e in history()]])
            facts = {h: await store.fact(conn, h) for h in ("h0", "h1", "h2", "h3")}
            rate = await reports.overall(conn, FeedbackConfig(min_decisions=1), Window(T0, at(24)))
            [cohort] = (await reports.funnel(conn, end=at(24), kind="month", count=1))["items"]
    finally:
        await engine.dispose()

    assert (facts["h0"].decision, facts["h0"].sent_back, facts["h0"].decided_at) == ("accepted", None, at(4))
    assert (facts["h1"].decision, facts["h1"].sent_back, facts["h1"].decided_at) == (None, None, None)
    assert (facts["h2"].decision, facts["h2"].sent_back, facts["h2"].reason) == (
        "rejected",
        "rejected",
        "not_ready",
    )
    assert facts["h2"].disqualified_at is None
    assert facts["h3"].sent_back == "returned"
    # Decided: h0 (accepted after the reopen), h2 (rejected after it), h3; h1 is waiting again.
    assert (rate["numerator"], rate["denominator"]) == (2, 3)
    assert (cohort["mql"], cohort["sal"], cohort["returned"], cohort["disqualified"]) == (4, 2, 2, 0)
