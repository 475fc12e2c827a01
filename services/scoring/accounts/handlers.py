"""The account use cases: the roll-up step after a batch's leads are rescored, and imports.

`roll_up_accounts` is scoring's one hook into accounts (called from
services/scoring/handlers.rescore once the touched leads are rescored): it matches the leads
whose facts changed, moves each affected account's aggregate by the lead's change (never by
re-reading the members), takes out the shares of leads merged away (`departing_members`, read
before identity deletes them), rescores those accounts, and lets leads qualify with their
account's context. Its cost follows the leads of the batch, not the size of their accounts; the
only read of other members is when an account has just become an MQA (who it may qualify).

`leadflow rescore` (a model change) recomputes from the members instead: `refresh_members` brings
each page's members' shares up to date, then `recompute_accounts` rebuilds every account's
aggregate from its members and scores it under the new model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from services.scoring import lifecycle
from services.scoring import store as lead_store
from services.scoring.accounts import account_score, matching
from services.scoring.accounts import store as account_store
from services.scoring.accounts.account_score import Aggregate, Firmographics, MemberState
from services.scoring.accounts.domains import registrable_domain
from services.scoring.accounts.imports import AccountRecord
from services.scoring.domain import LeadEvent
from services.scoring.lifecycle import Rescored
from services.scoring.model import AccountModel, ScoringModel
from shared.envelope import utcnow
from shared.events import AccountContext, AccountMqaReached, AccountScored, LeadAccountChanged
from shared.unit_of_work import UnitOfWork


@dataclasses.dataclass
class _Member:
    rescored: Rescored
    facts: matching.LeadFacts
    old_account: str | None
    old_state: MemberState | None
    match: matching.Match | None
    stored_digest: str | None  # the facts its stored row was matched on (None: no row)
    new_state: MemberState | None = None


@dataclasses.dataclass(frozen=True)
class Departure:
    """A lead merged into another (identity): its share leaves its account with it."""

    lead_id: str  # the absorbed lead, gone once the merge is written
    into: str
    account_id: str
    state: MemberState | None


async def departing_members(uow: UnitOfWork, merges: Mapping[str, str]) -> list[Departure]:
    """The account shares of leads about to be merged away ({absorbed: into}): read before the
    merge deletes their rows (with the lead), taken out of their accounts by `roll_up_accounts`.
    Otherwise the absorbed lead's share would stay in its account while the known lead, rescored
    from the merged history, brings the same events in again."""
    if not merges:
        return []
    stored = await account_store.members_of(uow.conn, sorted(merges))
    return [
        Departure(lead_id, merges[lead_id], row.account_id, account_store.member_state_of(row))
        for lead_id, row in sorted(stored.items())
        if row.account_id is not None
    ]


async def roll_up_accounts(
    uow: UnitOfWork, model: ScoringModel, evaluated: list[Rescored], departed: Sequence[Departure] = ()
) -> list[Rescored]:
    """Match, roll up and rescore the accounts of these rescored leads (and take out the shares
    of leads merged away); returns the leads with their account context, plus members an
    account's new MQA qualifies (to save and announce)."""
    if model.account is None or not (evaluated or departed):
        return evaluated
    config = model.account
    members = await _match(uow, config, evaluated)
    rows = await account_store.accounts_for_update(
        uow.conn,
        {a for m in members for a in (m.old_account, m.match and m.match.account_id) if a}
        | {d.account_id for d in departed},
    )
    aggregates = {account_id: account_store.aggregate_of(row) for account_id, row in rows.items()}
    half_life = account_score.half_life_days(config, model.decay)
    moved: set[str] = set()  # accounts whose aggregate changed
    for d in departed:
        if d.account_id in aggregates:  # (an account deleted meanwhile took its members with it)
            aggregates[d.account_id] = account_score.apply_change(
                aggregates[d.account_id], d.state, None, half_life
            )
            moved.add(d.account_id)
    member_rows = []
    for m in members:
        new_account = m.match.account_id if m.match else None
        if _unchanged_share(config, m):
            m.new_state = m.old_state  # most events move nothing: no write, no account rescored
            continue
        if m.old_account is not None and m.old_account != new_account:
            aggregates[m.old_account] = account_score.apply_change(
                aggregates[m.old_account], m.old_state, None, half_life
            )
            moved.add(m.old_account)
        if new_account is not None:
            old = m.old_state if m.old_account == new_account else None
            aggregates[new_account] = account_score.apply_change(
                aggregates[new_account], old, m.new_state, half_life
            )
            moved.add(new_account)
        if m.old_account != new_account and m.stored_digest is not None:
            _announce_change(uow, m)  # a new lead's first match is not a change
        member_rows.append(_member_row(m))
    await account_store.save_members(uow.conn, member_rows)
    scores = await _rescore_accounts(
        uow, model, rows, {a: aggregates[a] for a in moved}, _last_lead(members, departed)
    )
    return await _with_account_context(uow, model, members, rows, scores)


def _unchanged_share(config: AccountModel, m: _Member) -> bool:
    """Sets the member's share under the model (none without an account); whether its stored
    row already says all of it (same account, same facts, same share): nothing to write."""
    new_account = m.match.account_id if m.match else None
    if new_account is not None:
        r = m.rescored
        m.new_state = account_score.member_state(config, r.result, r.traits, r.at)
    return (
        m.old_account == new_account
        and m.stored_digest == m.facts.digest()
        and account_score.same_share(m.old_state, m.new_state)
    )


def _last_lead(members: Sequence[_Member], departed: Sequence[Departure]) -> dict[str, tuple[str, datetime]]:
    """Per account, the lead (and its moment) that its events are emitted with: the batch's last
    member there, else the lead that absorbed a departing member."""
    at = {m.rescored.lead.lead_id: m.rescored.at for m in members}
    found = {
        d.account_id: (d.into, at.get(d.into) or (d.state.as_of if d.state else utcnow())) for d in departed
    }
    for m in members:
        for account_id in (m.old_account, m.match and m.match.account_id):
            if account_id:
                found[account_id] = (m.rescored.lead.lead_id, m.rescored.at)
    return found


async def _match(uow: UnitOfWork, config: AccountModel, evaluated: list[Rescored]) -> list[_Member]:
    """Each lead's account: kept while its facts are unchanged, else matched afresh (starting an
    account for an unmatched corporate domain when the model says so)."""
    # A lead never scored before (no model version yet) has no membership: no need to ask.
    known = [r.lead.lead_id for r in evaluated if r.lead.model_version is not None]
    stored = await account_store.members_of(uow.conn, known) if known else {}
    members = []
    for r in evaluated:
        row = stored.get(r.lead.lead_id)
        facts = matching.facts_of(r.lead.email, r.traits, registrable_domain)
        kept = None
        if row is not None and row.facts_digest == facts.digest() and row.account_id is not None:
            kept = matching.Match(row.account_id, row.matched_by, row.confidence, row.evidence or "")
        old_account = row.account_id if row is not None else None
        old_state = account_store.member_state_of(row) if row is not None else None
        digest = row.facts_digest if row is not None else None
        members.append(_Member(r, facts, old_account, old_state, kept, digest))
    unmatched = [m for m in members if m.match is None]
    if not unmatched:
        return members
    found = await account_store.candidates(uow.conn, [matching.candidate_keys(m.facts) for m in unmatched])
    pool = matching.CandidatePool(found)
    for m in unmatched:
        m.match = matching.choose_account(m.facts, pool.for_lead(m.facts), config.matching, config.tiers)
    starting = {
        m.facts.email_domain: _name_for(m)
        for m in unmatched
        if m.match is None and m.facts.email_domain and config.matching.auto_create
    }
    await account_store.create_auto_accounts(uow.conn, starting)
    for m in unmatched:
        if m.match is None and m.facts.email_domain in starting:
            domain = m.facts.email_domain
            m.match = matching.Match(
                account_store.auto_account_id(domain), "domain", 1.0, f"email domain {domain}"
            )
    return members


def _name_for(m: _Member) -> str:
    company = m.rescored.traits.get("company")
    if isinstance(company, str) and company.strip():
        return company.strip()[:200]
    return (m.facts.email_domain or "").partition(".")[0].capitalize()


def _member_row(m: _Member) -> dict[str, Any]:
    state = m.new_state
    return {
        "lead_id": m.rescored.lead.lead_id,
        "account_id": m.match.account_id if m.match else None,
        "matched_by": m.match.matched_by if m.match else None,
        "confidence": m.match.confidence if m.match else 0.0,
        "evidence": m.match.evidence if m.match else None,
        "facts_digest": m.facts.digest(),
        "engagement": state.engagement if state else 0.0,
        "as_of": state.as_of if state else None,
        "engaged": state.engaged if state else False,
        "department": state.department if state else None,
        "seniority": state.seniority if state else None,
    }


def _announce_change(uow: UnitOfWork, m: _Member) -> None:
    event = LeadAccountChanged(
        account_id=m.match.account_id if m.match else None,
        previous_account_id=m.old_account,
        matched_by=m.match.matched_by if m.match else None,
        confidence=m.match.confidence if m.match else 0.0,
    )
    uow.emit(event, lead_id=m.rescored.lead.lead_id, occurred_at=m.rescored.at)


async def _rescore_accounts(
    uow: UnitOfWork,
    model: ScoringModel,
    rows: dict[str, Any],
    aggregates: dict[str, Aggregate],
    last_lead: Mapping[str, tuple[str, datetime]],
) -> dict[str, account_score.AccountScore]:
    assert model.account is not None
    scores, changes = {}, []
    for account_id, aggregate in sorted(aggregates.items()):
        row = rows[account_id]
        firm = Firmographics(row.tier, row.industry, row.size, row.country)
        scored = account_score.score_account(model.account, firm, aggregate)
        scores[account_id] = scored
        lead_id, at = last_lead[account_id]
        newly_mqa = scored.mqa and not row.mqa
        changes.append(
            _rollup_columns(
                account_id, aggregate, scored, model.version, row.mqa_at or (at if newly_mqa else None)
            )
        )
        before = account_score.Standing(row.score, row.grade, row.engaged_people, row.mqa)
        if account_score.worth_announcing(model.account, before, scored):
            uow.emit(
                _scored_event(AccountScored, account_id, scored, model.version),
                lead_id=lead_id,
                occurred_at=at,
                key=account_id,
            )
        if newly_mqa:
            engaged = await account_store.engaged_member_ids(uow.conn, account_id)
            event = _scored_event(
                AccountMqaReached, account_id, scored, model.version, owner=row.owner, member_lead_ids=engaged
            )
            uow.emit(event, lead_id=lead_id, occurred_at=at, key=account_id)
    await account_store.save_rollups(uow.conn, changes)
    return scores


def _scored_event(
    kind: type[AccountScored], account_id: str, s: account_score.AccountScore, version: str, **extra: Any
) -> Any:
    return kind(
        account_id=account_id,
        score=s.score,
        fit_points=s.fit_points,
        grade=s.grade,
        engaged_people=s.engaged_people,
        mqa=s.mqa,
        model_version=version,
        explanation=list(s.explanation),
        **extra,
    )


def _rollup_columns(
    account_id: str, a: Aggregate, s: account_score.AccountScore, version: str, mqa_at: datetime | None
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "engagement": a.engagement,
        "engagement_at": a.engagement_at,
        "members": a.members,
        "engaged_people": a.engaged_people,
        "departments": dict(a.departments),
        "seniorities": dict(a.seniorities),
        "score": s.score,
        "fit_points": s.fit_points,
        "grade": s.grade,
        "mqa": s.mqa,
        "mqa_at": mqa_at,
        "explanation": [c.model_dump() for c in s.explanation],
        "model_version": version,
    }


async def _with_account_context(
    uow: UnitOfWork,
    model: ScoringModel,
    members: Sequence[_Member],
    rows: dict[str, Any],
    scores: dict[str, account_score.AccountScore],
) -> list[Rescored]:
    """A lead at an MQA account may qualify at the lower threshold; each lead that qualifies gets
    its account's context; an account that just became an MQA qualifies its other members that
    meet it."""

    def standing(account_id: str) -> tuple[int, str, int, bool]:
        """Score, grade, engaged people and MQA: as just rescored, else as stored."""
        if account_id in scores:
            s = scores[account_id]
            return s.score, s.grade, s.engaged_people, s.mqa
        row = rows[account_id]
        return row.score, row.grade, row.engaged_people, row.mqa

    def context(account_id: str, match: matching.Match) -> AccountContext:
        return _context(account_id, rows[account_id], standing(account_id)[:3], match)

    result = []
    for m in members:
        r = m.rescored
        if m.match is None:
            result.append(r)
            continue
        if standing(m.match.account_id)[3] and not r.qualifies and _qualifies_at_mqa(model, r):
            r = _qualified_by_account(model, r, rows[m.match.account_id].name)
        if r.qualifies:  # only `lead.mql_reached` carries the account: built for those alone
            r = dataclasses.replace(r, account=context(m.match.account_id, m.match))
        result.append(r)
    touched = {r.lead.lead_id for r in result}
    for account_id, s in sorted(scores.items()):
        if s.mqa and not rows[account_id].mqa:
            result += await _qualified_by_new_mqa(uow, model, account_id, touched, context)
    return result


def _context(
    account_id: str, row: Any, standing: tuple[int, str, int], match: matching.Match
) -> AccountContext:
    """The account as a lead's events carry it (standing: score, grade, engaged people)."""
    score, grade, engaged_people = standing
    return AccountContext(
        account_id=account_id,
        name=row.name,
        owner=row.owner,
        tier=row.tier,
        score=score,
        grade=grade,
        engaged_people=engaged_people,
        matched_by=match.matched_by,
        confidence=match.confidence,
    )


def _qualifies_at_mqa(model: ScoringModel, r: Rescored) -> bool:
    return lifecycle.qualifies_at_mqa_account(
        model, stage=r.lead.stage, recycled_at=r.lead.recycled_at, score=r.result, at=r.at
    )


def _qualified_by_account(model: ScoringModel, r: Rescored, account_name: str) -> Rescored:
    explanation = [*r.explanation, lifecycle.mqa_contribution(model, account_name)]
    return dataclasses.replace(r, qualifies=True, explanation=explanation)


async def _qualified_by_new_mqa(
    uow: UnitOfWork, model: ScoringModel, account_id: str, touched: set[str], context: Any
) -> list[Rescored]:
    """Members not in this batch whom the account's new MQA qualifies, rescored from their history."""
    assert model.account is not None
    lowered = model.account.lead_mql_at_mqa
    if lowered is None:
        return []
    lead_ids = await account_store.nurture_members(
        uow.conn, account_id, min_score=lowered.min_score, exclude=touched
    )
    if not lead_ids:
        return []
    leads = await lead_store.leads_by_ids(uow.conn, lead_ids)
    histories = await lead_store.histories(uow.conn, lead_ids)
    stored = await account_store.members_of(uow.conn, lead_ids)
    found = []
    for lead_id in lead_ids:
        lead, row = leads[lead_id], stored[lead_id]
        history = [LeadEvent(h.type, h.occurred_at, h.properties) for h in histories[lead_id]]
        if not history:
            continue
        r = lifecycle.rescore(model, lead, dict(lead.traits), history)
        match = matching.Match(account_id, row.matched_by, row.confidence, row.evidence or "")
        r = dataclasses.replace(r, account=context(account_id, match))
        if not r.qualifies and _qualifies_at_mqa(model, r):
            found.append(_qualified_by_account(model, r, context(account_id, match).name))
    return found


# --- rescoring after a model change ------------------------------------------------------------


async def refresh_members(uow: UnitOfWork, model: ScoringModel, evaluated: list[Rescored]) -> None:
    """A `leadflow rescore` page's step: each rescored lead's membership and share under the model
    in force (matched afresh when its facts changed, as on an event). Accounts are not moved by
    the difference here: the new model may decay, cap and count differently from the one their
    aggregates were summed under, so `recompute_accounts` rebuilds them from these rows once
    every lead is rescored."""
    if model.account is None or not evaluated:
        return
    config = model.account
    rows = []
    for m in await _match(uow, config, evaluated):
        if _unchanged_share(config, m):
            continue
        new_account = m.match.account_id if m.match else None
        if m.old_account != new_account and m.stored_digest is not None:
            _announce_change(uow, m)
        rows.append(_member_row(m))
    await account_store.save_members(uow.conn, rows)


@dataclasses.dataclass
class RecomputedAccounts:
    accounts: int = 0
    changed: int = 0  # score, grade or MQA moved
    became_mqa: int = 0
    stopped_mqa: int = 0
    qualified: list[Rescored] = dataclasses.field(default_factory=list)  # members the MQA qualifies


async def recompute_accounts(
    uow: UnitOfWork, model: ScoringModel, account_ids: list[str]
) -> RecomputedAccounts:
    """`leadflow rescore`'s last step, a page of accounts at a time: each account's aggregate
    rebuilt from its members' shares (as `refresh_members` left them) and scored under the model.
    Like leads on a rescore, only a change of MQA status is announced (`account.scored`, and
    `account.mqa_reached` for a new MQA); scores, grades and explanations are updated silently.
    At every MQA account, members in nurture that meet the lower threshold qualify (returned, to
    save and announce)."""
    assert model.account is not None
    config = model.account
    done = RecomputedAccounts()
    rows = await account_store.accounts_for_update(uow.conn, account_ids)
    shares = await account_store.member_shares(uow.conn, list(rows))
    half_life = account_score.half_life_days(config, model.decay)
    changes = []
    for account_id, row in rows.items():
        aggregate = Aggregate()
        members = shares.get(account_id, [])
        for _, state in members:
            aggregate = account_score.apply_change(aggregate, None, state, half_life)
        scored = account_score.score_account(
            config, Firmographics(row.tier, row.industry, row.size, row.country), aggregate
        )
        at = aggregate.engagement_at or utcnow()
        newly_mqa = scored.mqa and not row.mqa
        changes.append(
            _rollup_columns(
                account_id, aggregate, scored, model.version, row.mqa_at or (at if newly_mqa else None)
            )
        )
        done.accounts += 1
        done.changed += (scored.score, scored.grade, scored.mqa) != (row.score, row.grade, row.mqa)
        lead_id = members[0][0] if members else None
        if scored.mqa != row.mqa:
            done.became_mqa += newly_mqa
            done.stopped_mqa += not newly_mqa
            event = _scored_event(AccountScored, account_id, scored, model.version)
            uow.emit(event, lead_id=lead_id, occurred_at=at, key=account_id)
        if newly_mqa:
            engaged = await account_store.engaged_member_ids(uow.conn, account_id)
            event = _scored_event(
                AccountMqaReached, account_id, scored, model.version, owner=row.owner, member_lead_ids=engaged
            )
            uow.emit(event, lead_id=lead_id, occurred_at=at, key=account_id)
        if scored.mqa:

            def context(
                account_id: str, match: matching.Match, row: Any = row, s: Any = scored
            ) -> AccountContext:
                return _context(account_id, row, (s.score, s.grade, s.engaged_people), match)

            done.qualified += await _qualified_by_new_mqa(uow, model, account_id, set(), context)
    await account_store.save_rollups(uow.conn, changes)
    return done


# --- imports and edits -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImportSummary:
    created: int
    updated: int
    domains_taken: list[tuple[str, str]]  # (external id, domain) another imported account owns


async def import_accounts(uow: UnitOfWork, records: Sequence[AccountRecord]) -> ImportSummary:
    """Create or update accounts by external id: importing the same export twice changes nothing."""
    known = await account_store.account_by_external_id(
        uow.conn, [r.external_id for r in records if r.external_id]
    )
    created = updated = 0
    taken: list[tuple[str, str]] = []
    for record in records:
        account_id = known.get(record.external_id or "") or record.account_id()
        created += account_id not in known.values()
        updated += account_id in known.values()
        lost = await account_store.upsert_account(uow.conn, _account_row(account_id, record, "import"))
        taken += [(record.external_id or account_id, d) for d in lost]
    return ImportSummary(created, updated, taken)


class ExternalIdTaken(ValueError):
    """The external id is another account's."""


async def put_account(uow: UnitOfWork, account_id: str, record: AccountRecord) -> list[str]:
    """Create or replace one account's CRM fields; returns the domains another account owns."""
    if record.external_id is not None:
        owner = await account_store.account_by_external_id(uow.conn, [record.external_id])
        if owner.get(record.external_id, account_id) != account_id:
            raise ExternalIdTaken(record.external_id)
    return await account_store.upsert_account(uow.conn, _account_row(account_id, record, "api"))


def _account_row(account_id: str, record: AccountRecord, source: str) -> dict[str, Any]:
    normalized = matching.normalize_company_name(record.name)
    return {
        "account_id": account_id,
        "external_id": record.external_id,
        "name": record.name,
        "name_normalized": normalized,
        "name_block": matching.blocking_key(normalized),
        "domains": list(record.registrable_domains(registrable_domain)),
        "owner": record.owner,
        "tier": record.tier,
        "industry": record.industry,
        "size": record.size,
        "country": record.country,
        "source": source,
    }
