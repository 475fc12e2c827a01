"""The line `leadflow dev` prints once it has drained, or why it stopped waiting."""

from __future__ import annotations

from leadflow.devstack.drain import Backlog, DrainResult, report

NOTHING = Backlog(lag={("scoring", "p.lead.events"): 0}, outbox={"scoring": 0, "handoff": 0})
SCORING_BEHIND = Backlog(
    lag={("scoring", "p.lead.events"): 300, ("handoff", "p.lead.lifecycle"): 0},
    outbox={"scoring": 0, "handoff": 2},
)


def test_a_drained_stack_says_how_long_it_took() -> None:
    assert report(DrainResult("drained", 1.83, NOTHING, [])) == "leadflow: drained in 1.8 s (lag 0, outbox 0)"


def test_a_service_that_was_down_is_named_with_what_it_left() -> None:
    left = Backlog(
        lag={("scoring", "p.lead.events"): 300, ("handoff", "p.lead.lifecycle"): 0}, outbox={"scoring": 1}
    )
    assert report(DrainResult("drained", 0.4, left, ["scoring"]), prefix="p.") == (
        "leadflow: drained in 0.4 s (lag 0, outbox 0) without scoring (down): "
        "left lag 300 (scoring lead.events 300), outbox 1 (scoring 1); kept for the next start"
    )


def test_the_bound_and_a_second_ctrl_c_say_what_is_left() -> None:
    timed_out = report(DrainResult("timed_out", 60.02, SCORING_BEHIND, []), prefix="p.", durable=False)
    assert timed_out == (
        "leadflow: drain gave up after 60.0 s (LEADFLOW_DEV_DRAIN_TIMEOUT_S): left lag 300 "
        "(scoring lead.events 300), outbox 2 (handoff 2); LOST: the embedded broker forgets unconsumed events"
    )
    interrupted = report(DrainResult("interrupted", 0.3, None, []))
    assert interrupted.startswith("leadflow: drain interrupted after 0.3 s (second Ctrl-C): left unknown")
