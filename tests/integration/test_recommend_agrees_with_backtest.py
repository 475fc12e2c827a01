"""`leadflow model recommend` and `leadflow backtest` score a lead alike: for the same stored
history and model, the rule score and grade recommend projects for each decided handoff, at
its label moment, is what the backtest's replay of that lead's stream gives at that moment,
and what a full recompute (score_lead) gives. Label moments on an event and between events
(where decay since the last event counts), one and two cycles per lead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from leadflow.admin.migrations import migrate_all
from leadflow.admin.model_training import decided_history, recommend_setting
from services.scoring import store as scoring_store
from services.scoring.config_files import load_learning_config, load_model
from services.scoring.domain import LeadEvent, score_lead
from services.scoring.incremental_scorer import TimelineScorer
from services.scoring.learning_config import ExplorationSettings
from services.scoring.recommend import recommend
from shared.db import make_engine
from shared.event_types import EventType
from shared.settings import Settings
from tests.generated_buyers import generate, hand_off, seed

START = datetime(2026, 1, 5, 9, tzinfo=UTC)
SINCE = START - timedelta(days=1)


async def test_recommend_scores_each_decided_handoff_as_the_backtest_replays_its_lead(
    settings: Settings,
) -> None:
    await migrate_all(settings)
    model = load_model(settings.config_file("scoring-model.yaml"))
    learning = load_learning_config(settings.config_file("learning.yaml"))
    leads = list(generate(300, start=START, days=30, seed=13))
    handed = hand_off(leads, model, exploration=ExplorationSettings(share=0.2, within_points=25))
    # A second cycle for every third handed-off lead: a demo request three days after its first
    # handoff, handed off again (and decided) 17 days after it, between events, its points decayed.
    again = handed[::3]
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            await seed(conn, leads, handed)
            await conn.execute(
                insert(scoring_store.lead_events),
                [
                    {
                        "event_id": f"{h.lead.lead_id}-again",
                        "lead_id": h.lead.lead_id,
                        "type": "demo_request",
                        "occurred_at": h.at + timedelta(days=3),
                        "properties": {},
                    }
                    for h in again
                ],
            )
            await conn.execute(
                insert(scoring_store.sales_decisions),
                [
                    {
                        "message_id": f"{h.lead.lead_id}-again-{event_type}",
                        "lead_id": h.lead.lead_id,
                        "cycle": 2,
                        "handoff_id": f"h2-{h.lead.lead_id}",
                        "event_type": event_type,
                        "reason": None,
                        "at": h.at + timedelta(days=20, hours=hours),
                    }
                    for h in again
                    for event_type, hours in ((EventType.HANDOFF_CREATED, 0), (EventType.SQL_QUALIFIED, 5))
                ],
            )

        decided = await decided_history(settings, model=model, learning=learning, since=SINCE)
        moments: dict[str, list[datetime]] = {}
        for d in decided:
            assert d.lead_id is not None and d.at is not None
            moments.setdefault(d.lead_id, []).append(d.at)
        assert sum(len(m) > 1 for m in moments.values()) >= len(again) // 2  # both cycles labelled

        # What `leadflow backtest` reads (its stream of lead histories) through its engine.
        scorer = TimelineScorer(model)
        backtest: dict[tuple[str, datetime], tuple[int, str]] = {}
        full: dict[tuple[str, datetime], tuple[int, str]] = {}
        on_an_event = between_events = decayed = 0
        async with engine.connect() as conn:
            async for lead in scoring_store.stream_histories(conn, since=SINCE):
                if lead.lead_id not in moments:
                    continue
                wanted = moments[lead.lead_id]
                email, traits, events = lead.email, lead.traits, lead.events
                for s in scorer.at_moments(email=email, traits=traits, events=events, moments=wanted):
                    backtest[lead.lead_id, s.at] = (s.score, s.grade)
                # The backtest's instants, and when its qualify() sees the lead first meet the rule.
                timeline = {p.at: p for p in scorer.points(email=email, traits=traits, events=events)}
                first_mql = scorer.qualify(email=email, traits=traits, events=events).first_mql_at
                for moment in wanted:
                    upto: list[LeadEvent] = [e for e in lead.events if e.occurred_at <= moment]
                    exact = score_lead(model, email=lead.email, traits=lead.traits, events=upto, at=moment)
                    full[lead.lead_id, moment] = (exact.score, exact.grade)
                    if moment in timeline:
                        on_an_event += 1
                        assert (timeline[moment].score, timeline[moment].grade) == (exact.score, exact.grade)
                    else:
                        between_events += 1
                        last = max(at for at in timeline if at < moment)
                        decayed += timeline[last].score != exact.score  # decay since the last event
                    if model.mql.is_met(
                        score=exact.score, grade=exact.grade, disqualified=exact.disqualified
                    ):
                        # The backtest counts the lead an MQL, first at or before this moment.
                        assert first_mql is not None and first_mql <= moment
    finally:
        await engine.dispose()

    used = {(d.lead_id, d.at): (d.score, d.grade) for d in decided}
    assert len(used) == len(decided) > 100
    assert used == backtest == full
    assert on_an_event > 100 and between_events >= len(again) // 2 and decayed > 0

    # recommend's answer is the search over exactly those projections.
    answer = await recommend_setting(settings, model=model, learning=learning, since=SINCE, target=0.10)
    assert answer == recommend(decided, target=0.10)
