"""The scoring hook of what was learned: a rescore gains the active model's likelihood, the
MQL rule may ask a minimum likelihood, and near misses are drawn to explore. Pure: a
Rescored in, a Rescored out, no database."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from services.scoring import lifecycle
from services.scoring.config_files import load_model
from services.scoring.domain import LeadEvent, score_lead
from services.scoring.feature_state import FeatureStateFolder
from services.scoring.features import AccountFacts, default_of, lead_features
from services.scoring.learned_rules import exploration_draw
from services.scoring.learned_scoring import LearnedScoring
from services.scoring.learning_config import ExplorationSettings, LearningConfig, LikelihoodSettings
from services.scoring.likelihood import Predictor
from services.scoring.training import Trained, train
from tests.generated_buyers import GeneratedLead, examples_from, generate, hand_off

MODEL = load_model(Path(__file__).parents[2] / "config" / "scoring-model.yaml")
T0 = datetime(2026, 2, 2, 9, tzinfo=UTC)
TRAITS = {"title": "VP of Marketing", "company_size": 400, "industry": "software", "country": "US"}


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    leads = list(generate(600, start=T0, days=30, seed=4))
    handed = hand_off(leads, MODEL, exploration=ExplorationSettings(share=0.2, within_points=25))
    examples = examples_from(handed, MODEL, LearningConfig().labels)
    trained: Trained = train(examples, LearningConfig().training)
    return Predictor(trained.version, trained.booster, trained.features, trained.calibration)


def stored(lead_id: str = "lead-1", stage: str = "nurture"):  # type: ignore[no-untyped-def]
    return SimpleNamespace(
        lead_id=lead_id,
        email=None,
        stage=stage,
        cycle=1,
        score=0,
        grade="D",
        disqualified=None,
        model_version=None,
        mql_at=None,
        recycled_at=None,
    )


def pages(*urls: str) -> list[LeadEvent]:
    return [
        LeadEvent("page_view", T0.replace(hour=9 + i), {"url": f"https://x.example{u}"})
        for i, u in enumerate(urls)
    ]


def demo() -> list[LeadEvent]:
    asks = [
        LeadEvent(kind, T0.replace(hour=14), {"form_id": kind}) for kind in ("demo_request", "contact_sales")
    ]
    return [*pages("/pricing", "/product"), *asks]


def test_without_an_active_model_or_exploration_the_rescore_is_the_rule_models():
    rescored = lifecycle.rescore(MODEL, stored(), TRAITS, demo())
    assert LearnedScoring(MODEL, LearningConfig()).apply(rescored) is rescored


def test_an_active_model_adds_its_likelihood_to_the_score_and_the_mql(predictor: Predictor):
    learned = LearnedScoring(MODEL, LearningConfig())
    learned.predictor = predictor
    rescored = learned.apply(lifecycle.rescore(MODEL, stored(), TRAITS, demo()))
    assert rescored.qualifies and rescored.likelihood is not None and rescored.propensity is None
    scored, mql = rescored.events()
    assert scored.likelihood == mql.likelihood == rescored.likelihood  # type: ignore[attr-defined]
    assert mql.exploration is False and rescored.likelihood.model_version == predictor.version  # type: ignore[attr-defined]


def test_every_score_change_carries_its_top_factors_or_with_factors_on_mql_only_an_mql(
    predictor: Predictor,
):
    browsing = pages("/pricing", "/integrations/crm")
    qualifying = lifecycle.rescore(MODEL, stored("mql"), TRAITS, demo())
    moving = lifecycle.rescore(MODEL, stored("moved"), TRAITS, browsing)
    assert qualifying.qualifies and moving.score_changed and not moving.qualifies
    states = {
        "mql": FeatureStateFolder(MODEL).build(demo()),
        "moved": FeatureStateFolder(MODEL).build(browsing),
    }

    # The default (config/learning.yaml): every announced likelihood with its factors.
    learned = LearnedScoring(MODEL, LearningConfig())
    learned.predictor = predictor
    mql, moved = learned.apply_all([qualifying, moving], states)
    assert mql.likelihood is not None and 1 <= len(mql.likelihood.factors) <= 3
    assert moved.likelihood is not None and 1 <= len(moved.likelihood.factors) <= 3

    # `factors_on: mql`: the same likelihoods, the factors on the MQL's alone.
    on_mqls = LearningConfig(likelihood=LikelihoodSettings(factors_on="mql"))
    sparing = LearnedScoring(MODEL, on_mqls)
    sparing.predictor = predictor
    mql_again, moved_again = sparing.apply_all([qualifying, moving], states)
    assert mql_again.likelihood == mql.likelihood
    assert moved_again.likelihood is not None and moved_again.likelihood.value == moved.likelihood.value
    assert moved_again.likelihood.factors == []


def test_a_batch_judged_in_one_model_call_gets_each_leads_own_likelihood(predictor: Predictor):
    learned = LearnedScoring(MODEL, LearningConfig())
    learned.predictor = predictor
    histories = {
        "a": demo(),
        "b": pages("/pricing", "/integrations/crm", "/security"),
        "c": pages("/blog/1"),
        "d": [*pages("/pricing"), *demo()],
    }
    batch = [
        lifecycle.rescore(MODEL, stored(lead_id), TRAITS, events) for lead_id, events in histories.items()
    ]
    states = {lead_id: FeatureStateFolder(MODEL).build(events) for lead_id, events in histories.items()}
    together = learned.apply_all(batch, states)
    alone = [learned.apply(r, histories[r.lead.lead_id]) for r in batch]
    assert [r.likelihood for r in together] == [r.likelihood for r in alone]
    assert [r.qualifies for r in together] == [r.qualifies for r in alone]
    assert len({r.likelihood.value for r in together if r.likelihood}) > 1  # not one answer for all


def test_a_minimum_likelihood_holds_back_an_mql_the_model_doubts(predictor: Predictor):
    strict = LearningConfig(likelihood=LikelihoodSettings(min_likelihood=100, combine="and"))
    learned = LearnedScoring(MODEL, strict)
    learned.predictor = predictor
    rescored = learned.apply(lifecycle.rescore(MODEL, stored(), TRAITS, demo()))
    assert rescored.likelihood is not None and rescored.likelihood.value < 100 and not rescored.qualifies


def test_a_near_miss_drawn_to_explore_becomes_an_exploration_mql_with_its_propensity():
    settings = LearningConfig(exploration=ExplorationSettings(share=0.2, within_points=40))
    drawn = next(f"lead-{n}" for n in range(1000) if exploration_draw(f"lead-{n}", 1) < 0.2)
    spared = next(f"lead-{n}" for n in range(1000) if exploration_draw(f"lead-{n}", 1) >= 0.2)
    near = pages("/pricing", "/pricing", "/integrations", "/security")
    learned = LearnedScoring(MODEL, settings)
    explored = learned.apply(lifecycle.rescore(MODEL, stored(drawn), TRAITS, near))
    assert explored.qualifies and explored.propensity == 0.2
    [*_, mql] = explored.events()
    assert mql.exploration is True and mql.propensity == 0.2  # type: ignore[attr-defined]
    assert not learned.apply(lifecycle.rescore(MODEL, stored(spared), TRAITS, near)).qualifies
    assert not learned.apply(lifecycle.rescore(MODEL, stored(drawn, stage="sal"), TRAITS, near)).qualifies


# --- account features ---------------------------------------------------------------------------

ENTERPRISE = AccountFacts(tier="Enterprise", score=72, grade="A", engaged_people=4, matched_by="domain")


def test_the_leads_account_becomes_features_the_model_can_learn_from():
    score = score_lead(MODEL, email=None, traits=TRAITS, events=demo(), at=T0.replace(hour=15))
    with_account = lead_features(
        MODEL, traits=TRAITS, events=demo(), at=T0.replace(hour=15), rule_score=score, account=ENTERPRISE
    )
    assert {k: v for k, v in with_account.items() if k.startswith("account_")} == {
        "account_score": 72.0,
        "account_engaged_people": 4.0,
        "account_grade=A": 1.0,
        "account_tier=enterprise": 1.0,
        "account_matched_by=domain": 1.0,
    }
    alone = lead_features(MODEL, traits=TRAITS, events=demo(), at=T0.replace(hour=15), rule_score=score)
    assert not [k for k in alone if k.startswith("account_")]
    assert {k: v for k, v in with_account.items() if not k.startswith("account_")} == alone
    # Without an account, its score and engaged people read as unknown, not as zero.
    assert math.isnan(default_of("account_score")) and math.isnan(default_of("account_engaged_people"))
    assert default_of("account_tier=enterprise") == 0.0


def test_training_learns_from_accounts_where_leads_have_them_and_trains_without():
    leads = list(generate(600, start=T0, days=30, seed=4))
    handed = hand_off(leads, MODEL, exploration=ExplorationSettings(share=0.2, within_points=25))

    def account_of(lead: GeneratedLead) -> AccountFacts | None:
        if int(lead.lead_id.rsplit("-", 1)[-1]) % 2:  # half the leads have none
            return None
        tier = "enterprise" if lead.good else "smb"
        return AccountFacts(tier=tier, score=50, grade="B", engaged_people=2, matched_by="domain")

    with_accounts = train(
        examples_from(handed, MODEL, LearningConfig().labels, account_of), LearningConfig().training
    )
    assert {"account_tier=enterprise", "account_score", "account_grade=B"} <= set(with_accounts.features)
    without = train(examples_from(handed, MODEL, LearningConfig().labels), LearningConfig().training)
    assert not [name for name in without.features if name.startswith("account_")]
    assert without.model.auc is not None and without.model.auc > 0.5


def test_a_rescore_that_announces_nothing_and_decides_nothing_is_not_judged(predictor: Predictor):
    browsing = pages("/blog/1", "/blog/2")
    first = lifecycle.rescore(MODEL, stored(), TRAITS, browsing)
    unchanged = stored()
    unchanged.score, unchanged.grade = first.result.score, first.result.grade
    again = lifecycle.rescore(MODEL, unchanged, TRAITS, browsing)
    assert not again.score_changed and not again.qualifies

    learned = LearnedScoring(MODEL, LearningConfig())
    learned.predictor = predictor
    assert not learned.judges(again) and learned.apply(again, browsing) is again

    # With a minimum likelihood the likelihood may make the MQL: judged, but with no event
    # to carry them, its top factors are not computed.
    strict = LearningConfig(likelihood=LikelihoodSettings(min_likelihood=100, combine="or"))
    deciding = LearnedScoring(MODEL, strict)
    deciding.predictor = predictor
    judged = deciding.apply(again, browsing)
    assert deciding.judges(again) and not judged.qualifies
    assert judged.likelihood is not None and judged.likelihood.factors == []
