"""Marketing consent withdrawn (`consent.marketing: false`) stops a lead from reaching sales, and
says so in its `disqualified`; unsubscribing does too, through the shipped model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.scoring.config_files import load_model
from services.scoring.domain import LeadEvent, meets_mql_rule, score_lead

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MODEL = load_model(Path(__file__).parents[2] / "config" / "scoring-model.yaml")
FIT = {"title": "VP of Marketing", "company_size": 500, "industry": "Software", "country": "US"}
HOT = [LeadEvent("demo_request", NOW - timedelta(hours=1), {}), LeadEvent("contact_sales", NOW, {})]


def scored(traits: dict[str, object], events: list[LeadEvent] = HOT):  # type: ignore[no-untyped-def]
    return score_lead(MODEL, email="ana@northwind.example", traits=traits, events=events, at=NOW)


def test_a_hot_good_fit_lead_qualifies_with_consent() -> None:
    assert meets_mql_rule(MODEL, scored({**FIT, "consent.marketing": True}))


@pytest.mark.parametrize("withdrawn", [False, "false", " FALSE "])
def test_withdrawn_marketing_consent_never_qualifies_and_says_why(withdrawn: object) -> None:
    result = scored({**FIT, "consent.marketing": withdrawn})
    assert not meets_mql_rule(MODEL, result)
    assert result.disqualified is not None and result.disqualified.startswith("consent.marketing: false")


def test_an_unsubscribe_event_disqualifies_the_lead() -> None:
    result = scored(FIT, [*HOT, LeadEvent("unsubscribe", NOW, {})])
    assert not meets_mql_rule(MODEL, result)
    assert result.disqualified is not None and result.disqualified.startswith("undesirable.unsubscribed")
