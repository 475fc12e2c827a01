"""Account figures of a backtest: which accounts each model makes an MQA.

Pure. The backtest hands each replayed lead here; a lead matched to an account adds its state
(its engagement under each model, as of its latest event in the window) to that account's
roll-up under each model, exactly as the live roll-up would. At the end each account is scored
under both models' `account` sections: an account "qualifies" under a model if its roll-up at
the end of the window meets that model's MQA rule. The lead MQL rule's account context (a
lower threshold at an MQA account) is not replayed into the lead figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.scoring.accounts.account_score import (
    Aggregate,
    Firmographics,
    apply_change,
    half_life_days,
    member_state,
    score_account,
)
from services.scoring.domain import LeadEvent, score_lead
from services.scoring.model import ScoringModel


@dataclass(frozen=True)
class AccountFigures:
    accounts: int  # accounts with a member replayed
    mqas_current: int
    mqas_candidate: int
    newly_qualifying: int  # MQA under the candidate only
    no_longer_qualifying: int  # MQA under the current model only


@dataclass
class AccountBook:
    """Leads' accounts (lead id -> account id) and the accounts' firmographics, from the store."""

    account_of: Mapping[str, str]
    firmographics: Mapping[str, Firmographics]
    _rollups: dict[tuple[str, str], Aggregate] = field(default_factory=dict)

    def add(
        self,
        current: ScoringModel,
        candidate: ScoringModel,
        *,
        lead_id: str,
        email: str | None,
        traits: Mapping[str, Any],
        events: Sequence[LeadEvent],
    ) -> None:
        account_id = self.account_of.get(lead_id)
        if account_id is None or account_id not in self.firmographics or not events:
            return
        at = max(e.occurred_at for e in events)
        for side, model in (("current", current), ("candidate", candidate)):
            if model.account is None:
                continue
            result = score_lead(model, email=email, traits=traits, events=events, at=at)
            state = member_state(model.account, result, traits, at)
            key = (side, account_id)
            half_life = half_life_days(model.account, model.decay)
            self._rollups[key] = apply_change(self._rollups.get(key, Aggregate()), None, state, half_life)

    def figures(self, current: ScoringModel, candidate: ScoringModel) -> AccountFigures | None:
        if current.account is None and candidate.account is None:
            return None
        mqas: dict[str, set[str]] = {"current": set(), "candidate": set()}
        for (side, account_id), aggregate in self._rollups.items():
            model = current if side == "current" else candidate
            assert model.account is not None
            if score_account(model.account, self.firmographics[account_id], aggregate).mqa:
                mqas[side].add(account_id)
        return AccountFigures(
            accounts=len({account_id for _, account_id in self._rollups}),
            mqas_current=len(mqas["current"]),
            mqas_candidate=len(mqas["candidate"]),
            newly_qualifying=len(mqas["candidate"] - mqas["current"]),
            no_longer_qualifying=len(mqas["current"] - mqas["candidate"]),
        )
