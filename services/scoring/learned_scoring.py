"""The hook that puts what scoring learned into each rescore: the active model's likelihood
with its top factors on every score change (or only on an MQL's, with
`likelihood.factors_on: mql`), the MQL rule joined with it, and the exploration
handoffs of near misses.

The active model is read from Postgres at start and every `poll_s` seconds after, so
`leadflow model activate` reaches every scoring instance within that time (plus, after a
stretch without a model, the time to build the recently active leads' feature states:
`feature_warmup`, done before the model is put in force). Until a model
is active, and with learning switched off in config/learning.yaml, scoring is exactly
the rule model: `apply` returns the rescore unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Mapping, Sequence

from services.scoring import model_store
from services.scoring.domain import LeadEvent
from services.scoring.feature_state import FeatureState, FeatureStateFolder, features_at
from services.scoring.feature_warmup import warm_feature_states
from services.scoring.features import AccountFacts
from services.scoring.learned_rules import learned_handoff
from services.scoring.learning_config import LearningConfig
from services.scoring.lifecycle import NURTURE, Rescored
from services.scoring.likelihood import Predictor
from services.scoring.metrics import PREDICTIVE_MODEL_IN_FORCE
from services.scoring.model import ScoringModel
from services.scoring.model_metrics import Platt
from shared.envelope import utcnow
from shared.events import Likelihood
from shared.logging import get_logger
from shared.runtime import BackgroundLoop, ServiceRuntime

log = get_logger(__name__)


def _announces(rescored: Rescored) -> bool:
    """Whether the rescore emits an event carrying its likelihood (lead.scored, lead.mql_reached)."""
    return rescored.score_changed or rescored.qualifies


def _explained(rescored: Rescored, factors_on: str) -> bool:
    """Whether the rescore's likelihood carries its top factors (`likelihood.factors_on`)."""
    return rescored.qualifies if factors_on == "mql" else _announces(rescored)


class LearnedScoring:
    def __init__(self, model: ScoringModel, learning: LearningConfig) -> None:
        self.model = model
        self.learning = learning
        self.predictor: Predictor | None = None
        self._folder = FeatureStateFolder(model)
        self._warming = False

    @property
    def keeps_features(self) -> bool:
        """Whether rescores keep their leads' feature states: while a model is in force (only
        it reads them), and while one is being put in force (`feature_warmup`)."""
        return self.predictor is not None or self._warming

    @property
    def explores(self) -> bool:
        return self.learning.exploration.share > 0

    @property
    def likelihood_decides(self) -> bool:
        """Whether a lead in nurture may become an MQL by its likelihood or carrying it: a
        minimum likelihood in the MQL rule, or exploration (its handoffs carry the likelihood,
        and may pick likely leads). Then a lead in nurture is judged on every rescore."""
        return self.learning.likelihood.min_likelihood is not None or self.explores

    def judges(self, rescored: Rescored) -> bool:
        """Whether `apply` computes this rescore's likelihood (and so needs the lead's features):
        when an event will carry it (the score changed, or the lead qualifies), or when it may
        decide the MQL of a lead in nurture. Any other rescore announces nothing and decides
        nothing with it, so its likelihood is not computed."""
        return self.predictor is not None and (
            rescored.score_changed
            or rescored.qualifies
            or (rescored.lead.stage == NURTURE and self.likelihood_decides)
        )

    def apply(self, rescored: Rescored, history: Sequence[LeadEvent] = ()) -> Rescored:
        """The rescore with the likelihood, and the MQL decision the learned rules make.

        `history` is the lead's whole history, needed only when `judges(rescored)` (its
        feature state is built from it: scoring keeps that state running instead)."""
        seen = [e for e in history if e.occurred_at <= rescored.at]
        return self.apply_all([rescored], {rescored.lead.lead_id: self._folder.build(seen)})[0]

    def apply_all(
        self,
        evaluated: Sequence[Rescored],
        features: Mapping[str, FeatureState],
        accounts: Mapping[str, AccountFacts] | None = None,
    ) -> list[Rescored]:
        """`apply` on a batch's rescores, from one model call for the judged ones' likelihoods
        and one for the top factors of those whose events carry them (`likelihood.factors_on`:
        the MQLs', or every announced one's).

        `features` holds the feature state of each lead `judges` picks, folded with all its
        events up to the rescore (`feature_state`), `accounts` the account of those that
        have one."""
        # A lead without a feature state is one the caller did not judge: the model became
        # active after it looked (the next rescore is judged).
        judged = [r for r in evaluated if self.judges(r) and r.lead.lead_id in features]
        if not judged or self.predictor is None:
            return [self._decided(r, None) for r in evaluated]
        accounts = accounts or {}
        rows = [self.features_of(r, features[r.lead.lead_id], accounts.get(r.lead.lead_id)) for r in judged]
        values = self.predictor.likelihoods(rows, top=0)
        decided = {id(r): self._decided(r, value) for r, value in zip(judged, values, strict=True)}
        top, factors_on = self.learning.likelihood.top_factors, self.learning.likelihood.factors_on
        shown = [i for i, r in enumerate(judged) if top and _explained(decided[id(r)], factors_on)]
        if shown:  # the same values, now with their factors
            explained = self.predictor.likelihoods([rows[i] for i in shown], top=top)
            for i, likelihood in zip(shown, explained, strict=True):
                key = id(judged[i])
                decided[key] = dataclasses.replace(decided[key], likelihood=likelihood)
        return [decided[id(r)] if id(r) in decided else self._decided(r, None) for r in evaluated]

    def features_of(
        self, rescored: Rescored, state: FeatureState, account: AccountFacts | None = None
    ) -> dict[str, float]:
        """What the model sees of the rescored lead: exactly what training's `lead_features`
        gives over the lead's events up to the rescore (the state holds them all)."""
        found = features_at(
            state, traits=rescored.traits, at=rescored.at, rule_score=rescored.result, account=account
        )
        if found is None:  # the callers fold every event up to the rescore, exactly
            raise ValueError(f"the feature state of lead {rescored.lead.lead_id} does not reach its rescore")
        return found

    def _decided(self, rescored: Rescored, likelihood: Likelihood | None) -> Rescored:
        if likelihood is None and not self.explores:
            return rescored
        lead = rescored.lead
        qualifies, propensity = learned_handoff(
            self.model,
            self.learning,
            rescored.result,
            likelihood.value if likelihood else None,
            stage=lead.stage,
            recycled_at=lead.recycled_at,
            at=rescored.at,
            lead_id=lead.lead_id,
            cycle=lead.cycle,
        )
        return dataclasses.replace(
            rescored, qualifies=qualifies, likelihood=likelihood, propensity=propensity
        )

    def model_loop(self, *, poll_s: float) -> BackgroundLoop:
        async def active_model(runtime: ServiceRuntime, stop: asyncio.Event) -> None:
            while not stop.is_set():
                async with runtime.engine.connect() as conn:
                    # The version each poll; the stored model (its booster, some 250 KB) only
                    # when that changed.
                    version = await model_store.active_version(conn)
                    changed = version != (self.predictor.version if self.predictor else None)
                    row = await model_store.active_model(conn) if changed else None
                if changed:
                    if self.predictor is None and row is not None:  # feature states to build first
                        await self._warm(runtime)
                    self._use(row)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=poll_s)

        return active_model

    async def _warm(self, runtime: ServiceRuntime) -> None:
        """Build the recently active leads' feature states (none were kept without a model),
        keeping them from here on, so the model's first batches read no history."""
        self._warming = True
        try:
            warmed = await warm_feature_states(runtime.engine, self.model, now=utcnow())
        finally:
            self._warming = False
        log.info("feature_states_warmed", leads=warmed.leads, seconds=round(warmed.seconds, 3))

    def _use(self, row: object | None) -> None:
        version = getattr(row, "version", None)
        if version == (self.predictor.version if self.predictor else None):
            return
        if row is None:
            self.predictor = None
        else:
            calibration = Platt(row.calibration["a"], row.calibration["b"])  # type: ignore[attr-defined]
            self.predictor = Predictor(version, row.booster, row.features, calibration)  # type: ignore[attr-defined, arg-type]
        PREDICTIVE_MODEL_IN_FORCE.set(0 if self.predictor is None else 1)
        log.info("predictive_model_in_force", version=version)
