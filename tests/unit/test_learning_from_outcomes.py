"""Learning from what sales decided: labels from decisions, the holdout's figures, training
on generated history where the rule score is blind, likelihoods with their top factors, and
the rules that use them. Pure: no database, a few seconds."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from services.scoring.config_files import load_learning_config, load_model
from services.scoring.domain import score_lead
from services.scoring.labels import LabelRules, SalesDecision, label_of
from services.scoring.learned_rules import exploration_draw, explores, meets_learned_mql_rule, near_miss
from services.scoring.learning_config import ExplorationSettings, LearningConfig, LikelihoodSettings
from services.scoring.likelihood import Predictor
from services.scoring.model_metrics import Platt, auc, evaluate
from services.scoring.training import Example, NotEnoughExamples, Trained, examples_of, train
from shared.event_types import EventType
from tests.generated_buyers import examples_from, generate, hand_off

CONFIG = Path(__file__).parents[2] / "config"
MODEL = load_model(CONFIG / "scoring-model.yaml")
LEARNING = load_learning_config(CONFIG / "learning.yaml")
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
DAY = timedelta(days=1)


def decision(kind: EventType, day: float, reason: str | None = None, **extra: object) -> SalesDecision:
    return SalesDecision(kind, T0 + day * DAY, reason, **extra)  # type: ignore[arg-type]


# --- labels -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "positive", [EventType.SQL_QUALIFIED, EventType.SQO_CREATED, EventType.OPPORTUNITY_WON]
)
def test_a_lead_sales_took_on_is_a_positive_example_as_of_its_handoff(positive: EventType):
    decisions = [
        decision(EventType.HANDOFF_CREATED, 0),
        decision(EventType.SAL_ACCEPTED, 1),
        decision(positive, 3),
    ]
    label = label_of(decisions, LabelRules())
    assert label is not None and label.positive and label.as_of == T0 and label.weight == 1.0


@pytest.mark.parametrize("reason", ["not_a_fit", "inaccurate_data", "not_ready"])
def test_a_lead_sent_back_as_not_a_buyer_is_a_negative_example(reason: str):
    label = label_of(
        [decision(EventType.HANDOFF_CREATED, 0), decision(EventType.LEAD_REJECTED, 1, reason)], LabelRules()
    )
    assert label is not None and not label.positive


@pytest.mark.parametrize(
    "decisions",
    [
        [decision(EventType.HANDOFF_CREATED, 0)],  # undecided
        [decision(EventType.HANDOFF_CREATED, 0), decision(EventType.SAL_ACCEPTED, 1)],  # only accepted
        [decision(EventType.HANDOFF_CREATED, 0), decision(EventType.LEAD_REJECTED, 1, "duplicate")],
        [decision(EventType.HANDOFF_CREATED, 0), decision(EventType.LEAD_DISQUALIFIED, 1, "spam")],
    ],
)
def test_decisions_that_say_nothing_about_the_lead_are_left_out(decisions: list[SalesDecision]):
    assert label_of(decisions, LabelRules()) is None


def test_what_counts_as_negative_is_configurable():
    disqualified = [decision(EventType.HANDOFF_CREATED, 0), decision(EventType.LEAD_DISQUALIFIED, 1, "spam")]
    label = label_of(disqualified, LabelRules(disqualified="negative"))
    assert label is not None and not label.positive
    duplicate = [decision(EventType.HANDOFF_CREATED, 0), decision(EventType.LEAD_RETURNED, 2, "duplicate")]
    assert label_of(duplicate, LabelRules(negative_reasons=("duplicate",))) is not None


def test_a_reopen_wipes_the_slate_and_restarts_the_clock():
    decisions = [
        decision(EventType.HANDOFF_CREATED, 0),
        decision(EventType.LEAD_REJECTED, 1, "not_a_fit"),
        decision(EventType.HANDOFF_REOPENED, 5),
        decision(EventType.SAL_ACCEPTED, 6),
        decision(EventType.SQL_QUALIFIED, 7),
    ]
    label = label_of(decisions, LabelRules())
    assert label is not None and label.positive and label.as_of == T0 + 5 * DAY
    assert label_of(decisions[:3], LabelRules()) is None  # reopened, not decided again yet


def test_an_exploration_handoff_weighs_the_inverse_of_its_chance():
    decisions = [
        decision(EventType.HANDOFF_CREATED, 0, exploration=True, propensity=0.05),
        decision(EventType.LEAD_REJECTED, 1, "not_ready"),
    ]
    label = label_of(decisions, LabelRules())
    assert label is not None and label.exploration and label.weight == pytest.approx(20.0)


# --- figures ------------------------------------------------------------------------------------


def test_auc_is_the_chance_a_positive_ranks_above_a_negative_with_ties_counting_half():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    assert auc(y, np.array([0.9, 0.1, 0.8, 0.2]), np.ones(4)) == 1.0
    assert auc(y, np.array([0.1, 0.9, 0.2, 0.8]), np.ones(4)) == 0.0
    assert auc(y, np.full(4, 0.5), np.ones(4)) == 0.5
    assert auc(np.ones(3), np.array([0.1, 0.2, 0.3]), np.ones(3)) is None


def test_log_loss_brier_deciles_and_lift_of_a_known_prediction():
    y = np.array([1.0] * 10 + [0.0] * 90)
    p = np.array([0.9] * 10 + [0.05] * 90)
    m = evaluate(y, p)
    assert m.brier == pytest.approx((10 * 0.01 + 90 * 0.0025) / 100)
    assert m.log_loss == pytest.approx(-(10 * math.log(0.9) + 90 * math.log(0.95)) / 100)
    assert (
        len(m.deciles) == 10 and m.deciles[0].observed == 1.0 and m.deciles[0].predicted == pytest.approx(0.9)
    )
    assert m.top_decile_lift == pytest.approx(10.0)


def test_platt_scaling_calibrates_and_never_inverts_a_score():
    rng = np.random.default_rng(3)
    x = rng.normal(size=4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(2 * x - 1)))).astype(float)
    fitted = Platt.fit(x, y)
    assert fitted.a == pytest.approx(2.0, abs=0.25) and fitted.b == pytest.approx(-1.0, abs=0.2)
    upside_down = Platt.fit(x, 1 - (x > 0).astype(float))
    assert upside_down.a == 0.0


# --- training on generated history ----------------------------------------------------------


def first_period_examples() -> list[Example]:
    """One period (60 days, 1,200 leads) with a fifth of the near misses explored."""
    leads = list(generate(1200, start=T0, days=60, seed=1))
    handed = hand_off(leads, MODEL, exploration=ExplorationSettings(share=0.2, within_points=25))
    return examples_from(handed, MODEL, LEARNING.labels)


@pytest.fixture(scope="module")
def first_period() -> Trained:
    return train(first_period_examples(), LearningConfig().training)


def test_after_a_period_with_exploration_the_model_beats_the_rule_score_on_the_holdout(first_period: Trained):
    m, r = first_period.model, first_period.rule
    assert first_period.counts["exploration"] > 0
    assert m.auc is not None and r.auc is not None and m.auc > r.auc + 0.2
    assert m.log_loss < r.log_loss and m.brier < r.brier
    assert (
        m.top_decile_lift is not None
        and r.top_decile_lift is not None
        and m.top_decile_lift > r.top_decile_lift
    )
    assert first_period.holdout_from > first_period.window[0]  # newest examples judge


def test_the_artifact_is_versioned_by_its_content(first_period: Trained):
    again = train(first_period_examples(), LearningConfig().training)
    assert again.digest == first_period.digest and again.version == first_period.version
    assert first_period.version.startswith("pm-2026")
    assert "section:pricing" in first_period.features and "count:content_download" in first_period.features


def test_training_keeps_only_the_trees_that_improved_the_calibration_fold(first_period: Trained):
    settings = LearningConfig().training
    every_round = train(first_period_examples(), settings.model_copy(update={"early_stopping_rounds": 0}))
    assert every_round.counts["trees"] == settings.rounds
    # Stopped early: fewer trees (cheaper likelihoods and factor lists), no worse on the holdout.
    assert first_period.counts["trees"] < settings.rounds
    assert first_period.model.log_loss <= every_round.model.log_loss + 0.01


def test_too_few_examples_or_one_kind_only_refuses_to_train():
    leads = list(generate(30, start=T0, days=10, seed=2))
    with pytest.raises(NotEnoughExamples, match="at least 40"):
        train(examples_from(hand_off(leads, MODEL), MODEL, LEARNING.labels), LearningConfig().training)


def test_a_likelihood_comes_with_its_top_factors_in_likelihood_points(first_period: Trained):
    predictor = Predictor(
        first_period.version, first_period.booster, first_period.features, first_period.calibration
    )
    [buyer] = [lead for lead in generate(60, start=T0, days=5, seed=9) if lead.kind == "silent_buyer"][:1]
    [researcher] = [lead for lead in generate(60, start=T0, days=5, seed=9) if lead.kind == "researcher"][:1]
    likelihoods = []
    for lead in (buyer, researcher):
        [example] = examples_of(
            MODEL,
            email=None,
            traits=lead.traits,
            events=lead.events,
            cycles={
                1: [
                    SalesDecision(EventType.HANDOFF_CREATED, lead.last_at),
                    SalesDecision(EventType.SQL_QUALIFIED, lead.last_at),
                ]
            },
            rules=LEARNING.labels,
        )
        likelihoods.append(predictor.likelihood(example.features, top=3))
    buyer_likely, researcher_likely = likelihoods
    assert 0 <= researcher_likely.value < buyer_likely.value <= 100
    assert 1 <= len(buyer_likely.factors) <= 3 and buyer_likely.model_version == first_period.version
    assert abs(buyer_likely.factors[0].points) >= abs(buyer_likely.factors[-1].points)


# --- the rules that use the likelihood ------------------------------------------------------------


def lead_score(score: int, grade: str = "A"):  # type: ignore[no-untyped-def]
    base = score_lead(MODEL, email=None, traits={}, events=[], at=T0)
    return type(base)(score, 80, grade, (), None, MODEL.version)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("combine", "score", "likelihood", "meets"),
    [
        ("and", 60, 80, True),
        ("and", 60, 20, False),
        ("or", 30, 80, True),
        ("or", 30, 20, False),
        ("only", 10, 80, True),
        ("only", 90, 20, False),
    ],
)
def test_the_mql_rule_may_ask_for_a_minimum_likelihood(
    combine: str, score: int, likelihood: int, meets: bool
):
    settings = LikelihoodSettings(min_likelihood=50, combine=combine)  # type: ignore[arg-type]
    assert meets_learned_mql_rule(MODEL, lead_score(score), likelihood, settings) is meets


def test_without_a_minimum_or_an_active_model_the_rule_score_decides():
    assert meets_learned_mql_rule(MODEL, lead_score(60), 1, LikelihoodSettings()) is True
    assert meets_learned_mql_rule(MODEL, lead_score(60), None, LikelihoodSettings(min_likelihood=90)) is True


def test_a_near_miss_is_close_to_the_line_at_the_grade_asked_or_likely_under_the_model():
    settings = ExplorationSettings(share=0.1, within_points=20, min_likelihood=70)
    assert near_miss(MODEL, lead_score(35), None, settings)
    assert not near_miss(MODEL, lead_score(25), None, settings)
    assert not near_miss(MODEL, lead_score(45, grade="D"), None, settings)
    assert near_miss(MODEL, lead_score(5), 75, settings)
    assert not near_miss(MODEL, lead_score(60), None, settings)  # an MQL is no near miss


def test_exploration_draws_once_per_lead_and_cycle_with_the_configured_chance():
    settings = ExplorationSettings(share=0.1, within_points=20)
    picks = [
        explores(MODEL, lead_score(40), None, settings, lead_id=f"lead-{n}", cycle=1) for n in range(4000)
    ]
    assert 0.08 < sum(p is not None for p in picks) / 4000 < 0.12
    assert {p for p in picks if p is not None} == {0.1}
    assert exploration_draw("lead-1", 1) == exploration_draw("lead-1", 1) != exploration_draw("lead-1", 2)
    assert explores(MODEL, lead_score(40), None, ExplorationSettings(share=0.0), lead_id="x", cycle=1) is None


def test_the_shipped_learning_config_loads_with_learning_off():
    assert LEARNING.likelihood.min_likelihood is None and LEARNING.exploration.share == 0.0
    assert LEARNING.labels == LabelRules()
