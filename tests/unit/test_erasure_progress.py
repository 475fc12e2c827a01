"""An erasure request's progress: each service is done once it confirmed every lead of the person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.scoring.erasure import ERASING_SERVICES, progress, request_state

ASKED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return ASKED + timedelta(seconds=seconds)


def test_a_service_is_done_when_it_confirmed_every_lead_and_the_request_when_all_are() -> None:
    confirmations = [
        ("scoring", "a", at(0)),
        ("scoring", "b", at(0)),
        ("handoff", "a", at(1)),
        ("feedback", "a", at(1)),
        ("feedback", "b", at(2)),
    ]
    by_service = {p.service: p for p in progress(["a", "b"], confirmations, requested_at=ASKED)}
    assert {s: (p.state, p.leads_confirmed, p.done_at) for s, p in by_service.items()} == {
        "scoring": ("done", 2, at(0)),
        "handoff": ("pending", 1, None),
        "feedback": ("done", 2, at(2)),
    }
    assert request_state(list(by_service.values())) == "in_progress"
    done = progress(["a", "b"], [*confirmations, ("handoff", "b", at(3))], requested_at=ASKED)
    assert request_state(done) == "completed"


def test_with_no_lead_to_erase_every_service_is_done_when_asked() -> None:
    nothing = progress([], [], requested_at=ASKED)
    assert [(p.service, p.state, p.done_at) for p in nothing] == [
        (s, "done", ASKED) for s in ERASING_SERVICES
    ]
    assert request_state(nothing) == "completed"


def test_confirmations_of_other_leads_or_unknown_services_do_not_count() -> None:
    stray = [("handoff", "zzz", at(1)), ("intake", "a", at(1))]
    by_service = {p.service: p for p in progress(["a"], stray, requested_at=ASKED)}
    assert by_service["handoff"].state == "pending" and "intake" not in by_service
