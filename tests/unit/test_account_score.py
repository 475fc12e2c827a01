"""Account scores: members' engagement rolled up (capped, decayed), buying-group coverage, grade, MQA,
and the lead MQL rule at an MQA account."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.scoring.accounts.account_score import (
    AccountScore,
    Aggregate,
    Firmographics,
    MemberState,
    Standing,
    apply_change,
    member_state,
    same_share,
    score_account,
    seniority_of,
    worth_announcing,
)
from services.scoring.accounts.imports import ImportProblem, parse_export
from services.scoring.config_files import load_model, parse_model
from services.scoring.domain import Contribution, LeadScore
from services.scoring.lifecycle import mqa_contribution, qualifies_at_mqa_account
from services.scoring.model import AccountModel, ModelError

MODEL = load_model(Path(__file__).resolve().parents[2] / "config" / "scoring-model.yaml")
ACCOUNT = MODEL.account
assert ACCOUNT is not None
T0 = datetime(2026, 11, 1, tzinfo=UTC)
STRATEGIC = Firmographics(tier="strategic", industry="Software", size=800, country="US")


def lead_score(engagement: float, *, grade: str = "B", score: int | None = None) -> LeadScore:
    contributions = (Contribution("engagement.demo_request", "engagement", engagement, "demo"),)
    return LeadScore(
        score=round(engagement) if score is None else score,
        fit_points=0,
        grade=grade,  # type: ignore[arg-type]
        contributions=contributions,
        disqualified=None,
        model_version=MODEL.version,
    )


def member(
    engagement: float, at: datetime = T0, department: str | None = None, title: str | None = None
) -> MemberState:
    assert ACCOUNT is not None
    return member_state(ACCOUNT, lead_score(engagement), {"department": department, "title": title}, at)


def test_one_hyperactive_person_counts_only_up_to_the_per_lead_cap() -> None:
    busy = member(500)
    assert busy.engagement == ACCOUNT.engagement.per_lead_cap == 40
    alone = apply_change(Aggregate(), None, busy, half_life=None)
    scored = score_account(ACCOUNT, STRATEGIC, alone)
    assert scored.score == 40 and scored.engaged_people == 1
    assert not scored.mqa  # a grade-A account with one engaged person is no buying group


def test_three_engaged_people_in_two_departments_make_an_mqa_with_reasons() -> None:
    people = [
        member(30, department="Marketing", title="VP Marketing"),
        member(30, department="Sales", title="Analyst"),
        member(30),
    ]
    aggregate = Aggregate()
    for person in people:
        aggregate = apply_change(aggregate, None, person, half_life=None)
    scored = score_account(ACCOUNT, STRATEGIC, aggregate)
    rules = {c.rule: c.points for c in scored.explanation}
    assert rules["account.engagement"] == 90
    assert rules["account.buying_group.people"] == 20  # the highest step reached (3), not 10 + 20
    assert rules["account.buying_group.departments"] == 10
    assert rules["account.buying_group.seniorities"] == 5  # vp and individual
    assert rules["account.fit.tier.strategic"] == 30 and scored.grade == "A"
    assert scored.score == 125 and scored.mqa


def test_a_poor_fit_account_is_no_mqa_however_engaged() -> None:
    aggregate = Aggregate()
    for _ in range(5):
        aggregate = apply_change(aggregate, None, member(40), half_life=None)
    scored = score_account(ACCOUNT, Firmographics(None, "Retail", 5, "BR"), aggregate)
    assert scored.grade == "D" and scored.score >= 200 and not scored.mqa


def test_people_below_the_engaged_minimum_add_points_but_are_not_the_buying_group() -> None:
    aggregate = Aggregate()
    for _ in range(3):
        aggregate = apply_change(aggregate, None, member(5), half_life=None)
    scored = score_account(ACCOUNT, STRATEGIC, aggregate)
    assert scored.engaged_people == 0 and scored.score == 15 and not scored.mqa


def test_the_incremental_roll_up_equals_adding_up_the_members_afresh() -> None:
    """Moving the aggregate by each change gives what summing every member's decayed points would."""
    rng = random.Random(15)
    half_life = 30.0
    states: dict[int, MemberState] = {}
    aggregate = Aggregate()
    for step in range(300):
        who = rng.randrange(12)
        at = T0 + timedelta(days=step * 0.5 + rng.random())
        new = None if rng.random() < 0.1 else member(rng.uniform(0, 60), at, rng.choice(["a", "b", None]))
        aggregate = apply_change(aggregate, states.get(who), new, half_life)
        if new is None:
            states.pop(who, None)
        else:
            states[who] = new
    assert aggregate.engagement_at is not None
    expected = sum(
        s.engagement * 0.5 ** ((aggregate.engagement_at - s.as_of).total_seconds() / 86_400 / half_life)
        for s in states.values()
    )
    assert aggregate.engagement == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert aggregate.members == len(states)
    assert aggregate.engaged_people == sum(s.engaged for s in states.values())
    departments: dict[str, int] = {}
    for s in states.values():
        if s.engaged and s.department:
            departments[s.department] = departments.get(s.department, 0) + 1
    assert dict(aggregate.departments) == departments


def test_a_member_leaving_takes_its_points_and_its_place_in_the_buying_group() -> None:
    first, second = member(30, department="it"), member(20, department="ops")
    aggregate = apply_change(apply_change(Aggregate(), None, first, None), None, second, None)
    after = apply_change(aggregate, second, None, None)
    assert (after.engagement, after.members, after.engaged_people, dict(after.departments)) == (
        30,
        1,
        1,
        {"it": 1},
    )


def test_seniority_bands_come_from_the_title_which_is_not_kept() -> None:
    assert [
        seniority_of(t) for t in ("Chief Revenue Officer", "SVP Sales", "Head of Growth", "Analyst", None)
    ] == [
        "c_level",
        "vp",
        "director",
        "individual",
        None,
    ]


def test_at_an_mqa_account_a_lead_qualifies_at_the_lower_personal_threshold_with_a_reason() -> None:
    kwargs = {"stage": "nurture", "recycled_at": None, "at": T0}
    assert qualifies_at_mqa_account(MODEL, score=lead_score(30, grade="A"), **kwargs)  # 30 >= 25, below 50
    assert not qualifies_at_mqa_account(MODEL, score=lead_score(20, grade="A"), **kwargs)
    assert not qualifies_at_mqa_account(
        MODEL, score=lead_score(30, grade="D"), **kwargs
    )  # grade still counts
    assert not qualifies_at_mqa_account(MODEL, score=lead_score(30, grade="A"), **{**kwargs, "stage": "mql"})
    reason = mqa_contribution(MODEL, "Acme")
    assert reason.rule == "mql.account_mqa" and "score 25 instead of 50" in reason.detail


def test_a_crm_export_reads_as_csv_with_loose_column_names_or_as_json_lines() -> None:
    csv_text = (
        "Account ID,Account Name,Website,Account Owner,Tier,Industry,Employees,Billing Country,Rating\n"
        '001A,"Acme, Inc.",https://www.acme.co.uk,ana@seller.example,strategic,Software,"1,200",gb,Hot\n'
    )
    (record,) = parse_export(csv_text, json_lines=False)
    assert (record.external_id, record.name, record.owner, record.size, record.country) == (
        "001A",
        "Acme, Inc.",
        "ana@seller.example",
        1200,
        "GB",
    )
    (same,) = parse_export(
        '{"external_id": "001A", "name": "Acme, Inc.", "domains": "acme.co.uk; acme.com"}\n', json_lines=True
    )
    assert same.account_id() == record.account_id() and same.domains == ["acme.co.uk", "acme.com"]


def test_a_bad_export_row_is_named_by_its_line_and_nothing_is_imported() -> None:
    with pytest.raises(ImportProblem) as refused:
        parse_export("name,employees,country\nAcme,many,US\n,5,USA\n", json_lines=False)
    assert refused.value.problems[0].startswith("line 2: size:")
    assert any(p.startswith("line 3: name") for p in refused.value.problems)
    assert any(p.startswith("line 3: country") for p in refused.value.problems)


def test_a_member_whose_share_did_not_move_moves_nothing() -> None:
    later = T0 + timedelta(minutes=5)
    assert same_share(member(30, department="it"), member(30.001, later, department="it"))
    assert not same_share(member(30, department="it"), member(31, later, department="it"))
    assert not same_share(member(30, department="it"), member(30, later, department="ops"))
    assert not same_share(None, member(30)) and same_share(None, None)


def test_an_account_is_announced_when_its_standing_moves_not_for_every_point() -> None:
    assert ACCOUNT is not None

    def announced(before: Standing, score: int, account: AccountModel = ACCOUNT, **changed: Any) -> bool:
        after = AccountScore(score, 45, "A", before.engaged_people, before.mqa, ())
        return worth_announcing(account, before, dataclasses.replace(after, **changed))

    assert ACCOUNT.announce_score_band == 5
    stored = Standing(score=11, grade="A", engaged_people=2, mqa=False)
    assert not announced(stored, 11)  # nothing moved
    assert not announced(stored, 14)  # a few points within the band of 10-14
    assert announced(stored, 15) and announced(stored, 9)  # the next band, either way
    assert announced(stored, 12, grade="B")
    assert announced(stored, 12, engaged_people=3)
    assert announced(stored, 12, mqa=True)
    every_point = ACCOUNT.model_copy(update={"announce_score_band": 1})
    assert announced(stored, 12, every_point) and not announced(stored, 11, every_point)


def test_the_model_file_refuses_an_account_section_it_cannot_apply_naming_the_line() -> None:
    text = (Path(__file__).resolve().parents[2] / "config" / "scoring-model.yaml").read_text()
    broken = text.replace("      tier: [enterprise]\n", "      tier: [enterprize]\n").replace(
        "    B: 25\n", "    B: 45\n"
    )
    with pytest.raises(ModelError) as refused:
        parse_model(broken)
    message = str(refused.value)
    assert "account.grades.B: must be below A (40)" in message
    assert "tier(s) enterprize not listed under account.tiers" in message
    assert " line " in message
