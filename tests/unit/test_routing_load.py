"""Routing that knows accounts and people: account owners, weighted turns, capacity,
out-of-office windows with backups, and the reason recorded for each decision."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.handoff.availability import AwayWindow
from services.handoff.claims import ClaimRefused, claim
from services.handoff.config_files import load_sla_config
from services.handoff.domain import Handoff, HandoffConfig, Stage
from services.handoff.routing import LeadToRoute, RouteDecision, RoutingConfig, RoutingState, route
from services.handoff.weighted_turns import weighted_order
from shared.events import AccountContext

NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)
TEAM = ["ann", "bob", "cid"]


def routing(
    reps: dict[str, Any] | None = None, rules: list[dict[str, Any]] | None = None, **extra: Any
) -> RoutingConfig:
    return RoutingConfig.model_validate(
        {
            "teams": [{"name": "sales", "members": TEAM}],
            "reps": reps or {},
            "rules": rules
            if rules is not None
            else [
                {"name": "account-owner", "assign": {"account_owner": True}},
                {"name": "everyone", "assign": {"team": "sales"}},
            ],
            **extra,
        }
    )


def account(owner: str | None = "ann", **fields: Any) -> AccountContext:
    values = {"account_id": "acc-1", "name": "Acme", "owner": owner, "tier": "strategic", "score": 80}
    return AccountContext(**{**values, "matched_by": "domain", "confidence": 1.0, **fields})


def lead(acct: AccountContext | None = None, **traits: Any) -> LeadToRoute:
    return LeadToRoute(traits=traits, policy="standard", account=acct)


class Store:
    """What the handoff store keeps for routing, in memory: cursors and open handoffs per owner."""

    def __init__(self, config: RoutingConfig, away: list[AwayWindow] | None = None) -> None:
        self.config = config
        self.turns: dict[str, int] = {}
        self.held: Counter[str] = Counter()
        self.away = away or []

    def hand_off(self, to_route: LeadToRoute, now: datetime = NOW) -> RouteDecision:
        state = RoutingState(now=now, turns=dict(self.turns), open_handoffs=dict(self.held), away=self.away)
        decision = route(self.config, to_route, state)
        if decision.turn is not None:
            assert self.turns.get(decision.turn.team, 0) == decision.turn.seen
            self.turns[decision.turn.team] = decision.turn.next
        self.held[decision.owner] += 1
        return decision


# --- weights ---------------------------------------------------------------------------------


def test_weights_give_the_configured_shares_over_1000_handoffs_exactly():
    # Smooth weighted round-robin hands each rep exactly its share of every period of
    # sum(weights) = 10 turns, so 1,000 handoffs (100 periods) split exactly 500/300/200:
    # the tolerance is zero. Within a period no rep is ever more than one turn from its share.
    store = Store(routing({"ann": {"weight": 5}, "bob": {"weight": 3}, "cid": {"weight": 2}}))
    counts: Counter[str] = Counter()
    for n in range(1, 1001):
        counts[store.hand_off(lead()).owner] += 1
        for rep, weight in (("ann", 5), ("bob", 3), ("cid", 2)):
            assert abs(counts[rep] - n * weight / 10) < 1
    assert counts == {"ann": 500, "bob": 300, "cid": 200}


def test_turns_are_spread_through_the_period_not_bunched():
    assert weighted_order((("ann", 2), ("bob", 1), ("cid", 1))) == ("ann", "bob", "cid", "ann")
    assert weighted_order((("ann", 1), ("bob", 1))) == ("ann", "bob")


def test_every_round_robin_handoff_says_so_and_moves_the_cursor_by_one_turn():
    decision = Store(routing()).hand_off(lead())
    assert (decision.owner, decision.reason, decision.note) == ("ann", "round_robin", None)
    assert (decision.turn.team, decision.turn.seen, decision.turn.next) == ("sales", 0, 1)  # type: ignore[union-attr]


# --- capacity --------------------------------------------------------------------------------


def test_a_rep_at_capacity_is_passed_over_for_the_next_rep():
    store = Store(routing({"ann": {"capacity": 1}}))
    store.held["ann"] = 1
    decision = store.hand_off(lead())
    assert (decision.owner, decision.reason) == ("bob", "capacity_overflow")
    assert decision.note == "ann at capacity (1/1)"
    assert decision.capacity is None  # bob has no cap: nothing to check on apply


def test_capacity_is_never_exceeded_and_the_rest_wait_in_the_team_queue():
    store = Store(routing(default_capacity=3))
    owners = Counter(store.hand_off(lead()).owner for _ in range(20))
    assert owners == {"ann": 3, "bob": 3, "cid": 3, "sales": 11}
    overflow = store.hand_off(lead())
    assert (overflow.owner, overflow.team, overflow.reason, overflow.turn) == (
        "sales",
        "sales",
        "capacity_overflow",
        None,
    )
    assert overflow.note is not None and overflow.note.endswith("nobody free: team queue")


def test_a_capped_owner_is_named_for_the_store_to_check_on_apply():
    decision = Store(routing({"ann": {"capacity": 5}})).hand_off(lead())
    assert (decision.owner, decision.capacity) == ("ann", 5)


# --- out of office ---------------------------------------------------------------------------


def test_an_out_of_office_rep_receives_nothing_while_away_and_again_once_back():
    back = NOW + timedelta(days=3)
    store = Store(routing(), away=[AwayWindow("bob", NOW - timedelta(hours=1), back)])
    during = [store.hand_off(lead(), now=NOW + timedelta(hours=h)) for h in range(60)]
    assert "bob" not in {d.owner for d in during}
    assert Counter(d.owner for d in during) == {"ann": 30, "cid": 30}
    assert {d.reason for d in during if d.turn and d.turn.seen % 3 == 1} == {"ooo_skipped"}
    after = [store.hand_off(lead(), now=back).owner for _ in range(3)]
    assert "bob" in after  # the window ends at `end`: back at that instant


def test_out_of_office_windows_from_the_file_count_too():
    window = {"start": "2026-12-01T00:00:00+01:00", "end": "2026-12-02T00:00:00+01:00"}
    store = Store(routing({"ann": {"out_of_office": [window]}}))
    assert store.hand_off(lead()).owner == "bob"
    assert store.hand_off(lead(), now=NOW + timedelta(days=2)).owner != "bob"  # the cursor moved on


# --- the account owner -----------------------------------------------------------------------


def test_a_lead_at_an_account_with_an_owner_goes_to_that_owner():
    decision = Store(routing()).hand_off(lead(account(owner="cid")))
    assert (decision.owner, decision.team, decision.rule, decision.reason) == (
        "cid",
        None,
        "account-owner",
        "account_owner",
    )
    assert decision.turn is None  # the team's round-robin is not spent


def test_a_lead_without_an_account_owner_passes_on_to_the_next_rule():
    assert Store(routing()).hand_off(lead(account(owner=None))).reason == "round_robin"
    assert Store(routing()).hand_off(lead(None)).reason == "round_robin"


def test_a_rule_above_the_account_owner_says_otherwise():
    rules = [
        {"name": "hot", "when": {"policies": ["hot"]}, "assign": {"owner": "hot-desk"}},
        {"name": "account-owner", "assign": {"account_owner": True}},
    ]
    hot = LeadToRoute(traits={}, policy="hot", account=account(owner="cid"))
    decision = Store(routing(rules=rules)).hand_off(hot)
    assert (decision.owner, decision.reason) == ("hot-desk", "territory")


def test_the_account_owner_rule_can_require_a_tier_and_a_sure_match():
    rules = [
        {
            "name": "strategic-owner",
            "when": {"account_tiers": ["strategic"], "min_match_confidence": 0.9},
            "assign": {"account_owner": True},
        },
        {"name": "everyone", "assign": {"team": "sales"}},
    ]
    store = Store(routing(rules=rules))
    assert store.hand_off(lead(account(owner="cid"))).owner == "cid"
    assert store.hand_off(lead(account(owner="cid", tier="smb"))).reason == "round_robin"
    assert store.hand_off(lead(account(owner="cid", confidence=0.7))).reason == "round_robin"


def test_an_away_account_owner_hands_over_to_the_named_backup():
    away = [AwayWindow("cid", NOW - timedelta(days=1), NOW + timedelta(days=1), backup="bob")]
    decision = Store(routing({"cid": {"backup": "ann"}}), away=away).hand_off(lead(account(owner="cid")))
    assert (decision.owner, decision.reason, decision.rule) == ("bob", "ooo_backup", "account-owner")
    assert decision.note == f"cid away until {(NOW + timedelta(days=1)).isoformat()}: to backup bob"


def test_without_a_window_backup_the_reps_own_backup_takes_over():
    away = [AwayWindow("cid", NOW - timedelta(days=1), NOW + timedelta(days=1))]
    decision = Store(routing({"cid": {"backup": "ann"}}), away=away).hand_off(lead(account(owner="cid")))
    assert (decision.owner, decision.reason) == ("ann", "ooo_backup")


def test_an_account_owner_at_capacity_hands_over_to_the_backup():
    store = Store(routing({"cid": {"capacity": 0, "backup": "ann"}}))
    decision = store.hand_off(lead(account(owner="cid")))
    assert (decision.owner, decision.reason) == ("ann", "capacity_overflow")


def test_with_no_backup_free_the_next_rule_decides_and_the_history_says_why():
    away = [AwayWindow("cid", NOW, NOW + timedelta(days=1)), AwayWindow("ann", NOW, NOW + timedelta(days=1))]
    decision = Store(routing({"cid": {"backup": "ann"}}), away=away).hand_off(lead(account(owner="cid")))
    assert (decision.owner, decision.rule, decision.reason) == ("bob", "everyone", "ooo_skipped")
    assert decision.note is not None
    assert decision.note.startswith("cid away until") and "no backup free" in decision.note
    assert "ann away until" in decision.note  # then round-robin passed over ann too


def test_an_account_owner_the_file_does_not_know_still_gets_the_handoff_uncapped():
    decision = Store(routing(default_capacity=0)).hand_off(lead(account(owner="zoe.from.the.crm")))
    assert (decision.owner, decision.reason, decision.capacity) == ("zoe.from.the.crm", "account_owner", None)


# --- claiming from a queue -------------------------------------------------------------------

QUEUED = Handoff(
    handoff_id="h-1",
    lead_id="l-1",
    cycle=1,
    stage=Stage.MQL,
    owner="sales",
    team="sales",
    policy="standard",
    decide_by=NOW,
    qualify_by=None,
    channel=None,
    campaign=None,
    version=1,
)
CONFIG = HandoffConfig(
    sla=load_sla_config(Path(__file__).parents[2] / "config" / "sla.yaml"), routing=routing()
)


def test_a_rep_claims_a_handoff_waiting_in_a_queue():
    claimed = claim(QUEUED, "bob", CONFIG, account=account())
    assert claimed is not None
    assert (claimed.queue, claimed.note) == ("sales", "sales → bob")
    assert (claimed.event.from_owner, claimed.event.to_owner, claimed.event.account) == (
        "sales",
        "bob",
        account(),
    )


def test_a_claim_of_a_handoff_already_taken_is_refused_and_a_retried_one_changes_nothing():
    taken = replace(QUEUED, owner="ann")
    with pytest.raises(ClaimRefused) as refused:
        claim(taken, "bob", CONFIG, account=None)
    assert refused.value.rule == "already_claimed"
    assert claim(taken, "ann", CONFIG, account=None) is None


def test_only_an_mql_can_be_claimed():
    with pytest.raises(ClaimRefused) as refused:
        claim(replace(QUEUED, stage=Stage.SAL), "bob", CONFIG, account=None)
    assert refused.value.rule == "not_open"
