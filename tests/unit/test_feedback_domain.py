from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.feedback.config_files import load_feedback_config
from services.feedback.domain import (
    AlertDecision,
    AlertSeverity,
    FeedbackConfig,
    FeedbackConfigError,
    RateFigure,
    decide_alert,
    parse_window,
    rate_figure,
    wilson_interval,
)

SHIPPED = Path(__file__).parents[2] / "config" / "feedback.yaml"


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        (3, 20, (0.0524, 0.3604)),
        (0, 10, (0.0, 0.2775)),
        (10, 10, (0.7225, 1.0)),
        (1, 2, (0.0945, 0.9055)),
        (50, 1000, (0.0381, 0.0653)),
    ],
)
def test_wilson_interval_matches_known_values(successes: int, n: int, expected):
    low, high = wilson_interval(successes, n)
    assert (round(low, 4), round(high, 4)) == expected


@pytest.mark.parametrize(("successes", "n"), [(0, 0), (1, 0), (-1, 10), (11, 10)])
def test_wilson_interval_refuses_impossible_counts(successes: int, n: int):
    with pytest.raises(ValueError):
        wilson_interval(successes, n)


# Any n, and any count of successes from 0 to n.
COUNTS = st.integers(min_value=1, max_value=10**7).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)


@given(COUNTS)
def test_interval_contains_the_estimate_and_stays_within_0_and_1(counts: tuple[int, int]):
    successes, n = counts
    low, high = wilson_interval(successes, n)
    assert 0.0 <= low <= successes / n <= high <= 1.0


def test_rate_with_no_decisions_has_no_value_and_no_interval():
    assert rate_figure(0, 0) == RateFigure(0, 0, None, None, None)


def test_rate_figure_reports_the_rate_with_its_interval():
    figure = rate_figure(3, 20)
    assert figure.rate == 0.15
    assert (round(figure.ci_low, 4), round(figure.ci_high, 4)) == (0.0524, 0.3604)


@pytest.mark.parametrize(("numerator", "denominator"), [(-1, 5), (1, -1), (6, 5)])
def test_rate_figure_refuses_impossible_counts(numerator: int, denominator: int):
    with pytest.raises(ValueError):
        rate_figure(numerator, denominator)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("30d", timedelta(days=30)),
        ("90d", timedelta(days=90)),
        ("2w", timedelta(weeks=2)),
        (" 30d ", timedelta(days=30)),
        ("3650d", timedelta(days=3650)),
    ],
)
def test_windows_are_a_count_and_a_unit(text: str, expected: timedelta):
    assert parse_window(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "whole number followed by h, d or w"),
        ("30", "whole number followed by h, d or w"),
        ("d", "whole number followed by h, d or w"),
        ("30 days", "whole number followed by h, d or w"),
        ("1.5d", "whole number followed by h, d or w"),
        ("-7d", "whole number followed by h, d or w"),
        ("7m", "whole number followed by h, d or w"),
        ("0d", "longer than zero"),
        ("3651d", "maximum of 3650 days"),
        ("522w", "maximum of 3650 days"),
        ("87601h", "maximum of 3650 days"),
    ],
)
def test_bad_windows_are_refused_with_a_clear_message(text: str, problem: str):
    with pytest.raises(ValueError, match=problem):
        parse_window(text)


def decide(returned: int, decided: int, *, open_: bool) -> AlertDecision:
    figure = rate_figure(returned, decided)
    return decide_alert(figure, threshold=0.10, min_decisions=20, currently_open=open_)


def test_rate_exactly_at_the_threshold_does_not_raise():
    assert decide(2, 20, open_=False) == AlertDecision("keep", None)


def test_rate_above_the_threshold_raises_a_watch_alert():
    assert decide(3, 20, open_=False) == AlertDecision("raise", AlertSeverity.WATCH)


def test_alert_is_confirmed_when_even_the_lower_bound_is_above_the_threshold():
    assert rate_figure(12, 40).ci_low > 0.10
    assert decide(12, 40, open_=False) == AlertDecision("raise", AlertSeverity.CONFIRMED)


def test_an_open_watch_alert_is_escalated_once_when_the_lower_bound_clears_the_threshold():
    figure = rate_figure(12, 40)  # interval (0.18, 0.46)
    escalate = decide_alert(
        figure, threshold=0.10, min_decisions=20, currently_open=True, open_severity="watch"
    )
    assert escalate == AlertDecision("escalate", AlertSeverity.CONFIRMED)
    again = decide_alert(
        figure, threshold=0.10, min_decisions=20, currently_open=True, open_severity="confirmed"
    )
    assert again == AlertDecision("keep")


def test_a_watch_alert_whose_interval_still_reaches_the_threshold_stays_watch():
    figure = rate_figure(3, 20)
    kept = decide_alert(figure, threshold=0.10, min_decisions=20, currently_open=True, open_severity="watch")
    assert kept == AlertDecision("keep")


def test_too_few_decisions_never_raise():
    assert decide(10, 19, open_=False) == AlertDecision("keep", None)


def test_no_decisions_raise_nothing():
    assert decide(0, 0, open_=False) == AlertDecision("keep", None)


def test_open_alert_stays_open_while_the_rate_is_above_the_threshold():
    assert decide(5, 20, open_=True) == AlertDecision("keep", None)
    assert decide(5, 10, open_=True) == AlertDecision("keep", None)


@pytest.mark.parametrize(("returned", "decided"), [(2, 20), (1, 20), (0, 5)])
def test_open_alert_resolves_when_the_rate_falls_back_to_or_below_the_threshold(returned: int, decided: int):
    assert decide(returned, decided, open_=True) == AlertDecision("resolve", None)


def test_open_alert_resolves_when_there_are_no_decisions_left_in_the_window():
    assert decide(0, 0, open_=True) == AlertDecision("resolve", None)


def test_shipped_config_is_the_documented_default():
    config = load_feedback_config(SHIPPED)
    assert config == FeedbackConfig()
    assert (config.threshold, config.min_decisions, config.window) == (0.10, 20, "30d")
    assert config.window_length == timedelta(days=30)


def test_an_empty_config_file_means_the_defaults(tmp_path: Path):
    path = tmp_path / "feedback.yaml"
    path.write_text("# nothing set\n")
    assert load_feedback_config(path) == FeedbackConfig()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("threshold: 0\n", "threshold"),
        ("threshold: 1\n", "threshold"),
        ("threshold: 15\n", "threshold"),
        ("min_decisions: 0\n", "min_decisions"),
        ("window: 30 days\n", "window"),
        ("window: 0d\n", "longer than zero"),
        ("treshold: 0.2\n", "treshold"),
        ("- 0.1\n", "(top level)"),
        ("score_bands: [80, 60]\n", "ascend"),
        ("alert_dimensions: [region]\n", "alert_dimensions"),
        ("threshold: [\n", "cannot read"),
    ],
)
def test_a_bad_config_is_refused_naming_the_file_and_the_problem(tmp_path: Path, text: str, problem: str):
    path = tmp_path / "feedback.yaml"
    path.write_text(text)
    with pytest.raises(FeedbackConfigError) as refused:
        load_feedback_config(path)
    assert str(path) in str(refused.value)
    assert problem in str(refused.value)
