"""The feedback formulas of PRODUCT.md "Feedback metrics": windows at their edges, score bands,
medians and p90s, cohorts, time in stage, the funnel and its conversions."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.feedback.domain import (
    FunnelFacts,
    Window,
    cohort_funnels,
    cohort_of,
    left_stage_at,
    percentile,
    previous_cohorts,
    ratio,
    score_band,
    series_points,
    stage_durations,
)

NOON = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday, ISO week 47
HOUR = timedelta(hours=1)


# --- windows ------------------------------------------------------------------------------


def test_a_window_counts_decisions_at_both_of_its_edges():
    window = Window.ending(NOON, timedelta(days=30))
    assert window.start == NOON - timedelta(days=30)
    assert window.start in window
    assert NOON in window


def test_a_decision_a_moment_older_than_the_window_is_out():
    window = Window.ending(NOON, timedelta(days=7))
    assert NOON - timedelta(days=7, microseconds=1) not in window
    assert NOON + timedelta(microseconds=1) not in window


def test_series_points_end_now_and_step_back_oldest_first():
    assert series_points(NOON, step=timedelta(days=1), points=3) == [
        NOON - timedelta(days=2),
        NOON - timedelta(days=1),
        NOON,
    ]
    assert series_points(NOON, step=HOUR, points=1) == [NOON]
    with pytest.raises(ValueError, match="at least 1"):
        series_points(NOON, step=HOUR, points=0)


# --- score bands --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "band"),
    [(0, "<60"), (59, "<60"), (60, "60-79"), (79, "60-79"), (80, "80-99"), (100, "100+"), (250, "100+")],
)
def test_scores_fall_in_bands_by_their_lower_edges(score: int, band: str):
    assert score_band(score, [60, 80, 100]) == band


def test_no_score_has_no_band():
    assert score_band(None, [60, 80]) is None


# --- ratios and percentiles ---------------------------------------------------------------


def test_ratio_is_unknown_without_a_base():
    assert ratio(0.3, 0.1) == pytest.approx(3.0)
    assert ratio(0.3, 0.0) is None
    assert ratio(None, 0.1) is None
    assert ratio(0.2, None) is None


@pytest.mark.parametrize(
    ("values", "median", "p90"),
    [
        ([5.0], 5.0, 5.0),
        ([1.0, 3.0], 2.0, 2.8),
        ([3.0, 1.0, 2.0], 2.0, 2.8),
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 5.5, 9.1),
    ],
)
def test_median_and_p90_interpolate_between_ranks_like_percentile_cont(values, median, p90):
    assert percentile(values, 0.5) == pytest.approx(median)
    assert percentile(values, 0.9) == pytest.approx(p90)


def test_percentile_of_nothing_is_unknown():
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile([1.0], 1.5)


@given(st.lists(st.floats(min_value=0, max_value=1e9), min_size=1, max_size=50))
def test_the_median_lies_between_the_smallest_and_largest_value(values: list[float]):
    median = percentile(values, 0.5)
    assert median is not None
    assert min(values) <= median <= max(values)
    assert percentile(values, 0.0) == min(values)
    assert percentile(values, 1.0) == max(values)


# --- cohorts ------------------------------------------------------------------------------


def test_weekly_cohorts_are_iso_weeks_starting_monday_utc():
    label, start, end = cohort_of(NOON, "week")
    assert label == "2026-W47"
    assert start == datetime(2026, 11, 16, tzinfo=UTC)
    assert end == datetime(2026, 11, 23, tzinfo=UTC)


def test_a_week_spanning_new_year_belongs_to_the_iso_year_of_its_monday():
    label, start, _ = cohort_of(datetime(2027, 1, 1, tzinfo=UTC), "week")
    assert (label, start) == ("2026-W53", datetime(2026, 12, 28, tzinfo=UTC))


def test_the_last_moment_of_sunday_is_still_in_the_week_and_monday_midnight_is_not():
    sunday_night = datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC)
    assert cohort_of(sunday_night, "week")[0] == "2026-W47"
    assert cohort_of(datetime(2026, 11, 23, tzinfo=UTC), "week")[0] == "2026-W48"


def test_cohorts_are_taken_in_utc_whatever_the_timezone_of_the_moment():
    from zoneinfo import ZoneInfo

    late_sunday_in_new_york = datetime(2026, 11, 22, 20, 0, tzinfo=ZoneInfo("America/New_York"))
    assert cohort_of(late_sunday_in_new_york, "week")[0] == "2026-W48"  # Monday 01:00 UTC


def test_monthly_cohorts_run_from_the_first_to_the_first_including_december():
    assert cohort_of(NOON, "month") == (
        "2026-11",
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert cohort_of(datetime(2026, 12, 31, 23, tzinfo=UTC), "month")[2] == datetime(2027, 1, 1, tzinfo=UTC)


def test_previous_cohorts_end_with_the_current_one_oldest_first():
    labels = [label for label, _, _ in previous_cohorts(datetime(2026, 1, 15, tzinfo=UTC), "month", 3)]
    assert labels == ["2025-11", "2025-12", "2026-01"]
    weeks = previous_cohorts(NOON, "week", 2)
    assert [w[0] for w in weeks] == ["2026-W46", "2026-W47"]
    assert weeks[0][2] == weeks[1][1]  # contiguous


# --- time in stage and the funnel ---------------------------------------------------------


def handoff(**moments: object) -> FunnelFacts:
    values: dict = dict(
        entered_at=NOON,
        handed_off_at=NOON,
        decision=None,
        decided_at=None,
        decided_in_time=None,
        sent_back_at=None,
        sql_at=None,
        sqo_at=None,
        disqualified_at=None,
    )
    return FunnelFacts(**(values | moments))


def test_time_in_each_stage_runs_until_the_handoff_leaves_it():
    facts = handoff(
        decision="accepted", decided_at=NOON + 2 * HOUR, sql_at=NOON + 26 * HOUR, sqo_at=NOON + 50 * HOUR
    )
    assert stage_durations(facts) == {"mql": 7200.0, "sal": 86400.0, "sql": 86400.0, "sqo": None}
    won = replace(facts, won_at=NOON + 74 * HOUR)
    assert stage_durations(won)["sqo"] == 86400.0


def test_a_stage_not_yet_left_has_no_duration():
    assert stage_durations(handoff()) == {"mql": None, "sal": None, "sql": None, "sqo": None}
    accepted = handoff(decision="accepted", decided_at=NOON + HOUR)
    assert stage_durations(accepted) == {"mql": 3600.0, "sal": None, "sql": None, "sqo": None}


def test_a_return_ends_the_accepted_stage_and_a_rejection_ends_review():
    returned = handoff(decision="accepted", decided_at=NOON + HOUR, sent_back_at=NOON + 5 * HOUR)
    assert stage_durations(returned)["sal"] == 4 * 3600.0
    rejected = handoff(decision="rejected", decided_at=NOON + HOUR, sent_back_at=NOON + HOUR)
    assert stage_durations(rejected) == {"mql": 3600.0, "sal": None, "sql": None, "sqo": None}


def test_the_funnel_counts_each_stage_and_converts_between_them():
    week = [cohort_of(NOON, "week")]
    facts = [
        handoff(decision="accepted", decided_at=NOON + HOUR, decided_in_time=True, sql_at=NOON + 3 * HOUR),
        handoff(decision="accepted", decided_at=NOON + 3 * HOUR, decided_in_time=False),
        handoff(decision="rejected", decided_at=NOON + HOUR, decided_in_time=True, sent_back_at=NOON + HOUR),
        handoff(breaches=1),
    ]
    [funnel] = cohort_funnels(facts, week)
    assert (funnel.mql, funnel.sal, funnel.sql, funnel.sqo, funnel.returned) == (4, 2, 1, 0, 1)
    assert funnel.conversion == {"mql_to_sal": 0.5, "sal_to_sql": 0.5, "sql_to_sqo": 0.0, "sqo_to_won": None}
    assert (funnel.decided, funnel.in_time, funnel.compliance, funnel.breaches) == (3, 2, 2 / 3, 1)
    assert funnel.stage_seconds["mql"].count == 3
    assert funnel.stage_seconds["mql"].median == 3600.0
    assert funnel.stage_seconds["sal"].median == 7200.0


def test_leads_fall_in_the_cohort_of_when_they_became_mql_and_empty_cohorts_have_no_rates():
    weeks = previous_cohorts(NOON, "week", 2)
    last_week = handoff(entered_at=NOON - timedelta(days=7))
    before = handoff(entered_at=NOON - timedelta(days=30))
    older, current = cohort_funnels([last_week, before], weeks)
    assert (older.mql, current.mql) == (1, 0)
    assert current.conversion == {
        "mql_to_sal": None,
        "sal_to_sql": None,
        "sql_to_sqo": None,
        "sqo_to_won": None,
    }
    assert current.win_rate is None
    assert current.compliance is None
    assert current.stage_seconds["mql"].median is None


def test_the_funnel_closes_with_won_and_lost_opportunities_their_win_rate_and_time_to_close():
    week = [cohort_of(NOON, "week")]
    opportunity = dict(
        decision="accepted", decided_at=NOON + HOUR, sql_at=NOON + 2 * HOUR, sqo_at=NOON + 3 * HOUR
    )
    facts = [
        handoff(**opportunity, won_at=NOON + 10 * HOUR),
        handoff(**opportunity, won_at=NOON + 30 * HOUR),
        handoff(**opportunity, lost_at=NOON + 5 * HOUR),
        handoff(**opportunity),  # still open: not in the win rate
    ]
    [funnel] = cohort_funnels(facts, week)
    assert (funnel.sqo, funnel.won, funnel.lost) == (4, 2, 1)
    assert funnel.win_rate == 2 / 3
    assert funnel.conversion["sqo_to_won"] == 0.5
    assert funnel.time_to_close.count == 2
    assert funnel.time_to_close.median == 20 * 3600.0  # from reaching MQL to won
    assert funnel.stage_seconds["sqo"].count == 3  # opportunities that closed, won or lost


# --- when a breached stage was left -------------------------------------------------------


class Facts:
    def __init__(self, **values: object) -> None:
        defaults = dict(decided_at=None, disqualified_at=None, decision=None, sql_at=None)
        self.__dict__.update(defaults | dict(sent_back_at=None, sqo_at=None) | values)


def test_a_breach_of_review_is_over_once_the_lead_was_decided_or_disqualified():
    assert left_stage_at(Facts(), "mql") is None
    assert left_stage_at(Facts(decided_at=NOON), "mql") == NOON
    assert left_stage_at(Facts(disqualified_at=NOON), "mql") == NOON


def test_a_breach_after_acceptance_is_over_at_qualification_return_or_disqualification():
    assert left_stage_at(Facts(decision="accepted", decided_at=NOON), "sal") is None
    left = Facts(decision="accepted", sql_at=NOON + HOUR, sent_back_at=NOON + 2 * HOUR)
    assert left_stage_at(left, "sal") == NOON + HOUR
