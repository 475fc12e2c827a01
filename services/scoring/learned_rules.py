"""The rules that use what scoring learned: the MQL rule with a minimum likelihood, and which
near misses are handed off to explore.

Pure. An exploration pick is a fixed draw per lead and cycle (a hash, not a random number),
so a rescore or a redelivered event never draws again: each near miss of a cycle has
exactly `share` chance of being explored, and that chance is its propensity, the weight
training divides by.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from services.scoring.domain import LeadScore, may_requalify, meets_mql_rule
from services.scoring.learning_config import ExplorationSettings, LearningConfig, LikelihoodSettings
from services.scoring.model import GRADES, ScoringModel


def meets_learned_mql_rule(
    model: ScoringModel, score: LeadScore, likelihood: int | None, settings: LikelihoodSettings
) -> bool:
    """The MQL rule, joined with the likelihood as configured; without a likelihood (no active
    model) or a minimum, the rule score decides alone."""
    by_rule = meets_mql_rule(model, score)
    if settings.min_likelihood is None or likelihood is None:
        return by_rule
    likely = score.disqualified is None and likelihood >= settings.min_likelihood
    if settings.combine == "and":
        return by_rule and likely
    if settings.combine == "or":
        return by_rule or likely
    return likely


def near_miss(
    model: ScoringModel, score: LeadScore, likelihood: int | None, settings: ExplorationSettings
) -> bool:
    """A lead the MQL rule does not take but that is close to it: a score within
    `within_points` of the line at the grade the rule asks for, or a high likelihood."""
    if score.disqualified is not None or meets_mql_rule(model, score):
        return False
    graded = GRADES.index(score.grade) <= GRADES.index(model.mql.min_grade)
    close = graded and score.score >= model.mql.min_score - settings.within_points
    likely = (
        settings.min_likelihood is not None
        and likelihood is not None
        and likelihood >= settings.min_likelihood
    )
    return close or likely


def exploration_draw(lead_id: str, cycle: int) -> float:
    """A number in [0, 1) fixed for the lead's cycle."""
    digest = hashlib.sha256(f"explore:{lead_id}:{cycle}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def explores(
    model: ScoringModel,
    score: LeadScore,
    likelihood: int | None,
    settings: ExplorationSettings,
    *,
    lead_id: str,
    cycle: int,
) -> float | None:
    """The propensity (the chance it had) when this near miss is handed off to explore; else None."""
    if settings.share <= 0 or not near_miss(model, score, likelihood, settings):
        return None
    return settings.share if exploration_draw(lead_id, cycle) < settings.share else None


def learned_handoff(
    model: ScoringModel,
    learning: LearningConfig,
    score: LeadScore,
    likelihood: int | None,
    *,
    stage: str,
    recycled_at: datetime | None,
    at: datetime,
    lead_id: str,
    cycle: int,
) -> tuple[bool, float | None]:
    """Whether a lead becomes an MQL now, under the MQL rule joined with the likelihood, and
    if it does only to explore, the chance it was drawn with: (qualifies, propensity)."""
    if stage != "nurture" or not may_requalify(model, recycled_at=recycled_at, at=at):
        return False, None
    if meets_learned_mql_rule(model, score, likelihood, learning.likelihood):
        return True, None
    propensity = explores(model, score, likelihood, learning.exploration, lead_id=lead_id, cycle=cycle)
    return propensity is not None, propensity
