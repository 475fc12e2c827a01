"""scoring's use cases: record a batch of events and rescore their leads; follow the lifecycle.

Each handler runs inside the consumer's transaction for its batch and emits
through the outbox, so the score change and its events commit together. The
rules they apply are in `lifecycle` (MQL, stages, attribution) and `domain` (the score).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from services.scoring import lifecycle, model_store, score_state_store, store
from services.scoring.accounts.domains import load_suffix_list
from services.scoring.accounts.handlers import Departure, departing_members, roll_up_accounts
from services.scoring.domain import LeadEvent
from services.scoring.erasures import forget_late_arrivals, record_confirmation
from services.scoring.feature_state import FeatureState
from services.scoring.identity import IdentityPlan, identity_lock_keys
from services.scoring.learned_scoring import LearnedScoring
from services.scoring.lifecycle import Rescored
from services.scoring.metrics import (
    EVENTS_CONFLICTING,
    FEATURE_STATE_BUILD_SECONDS,
    FEATURE_STATES_BUILT,
    LEARNED_HOOK_BATCH_SECONDS,
    LEARNED_HOOK_LEADS,
    LEARNED_HOOK_SECONDS,
    MQLS,
    RESCORE_BATCH_SECONDS,
)
from services.scoring.model import ScoringModel
from services.scoring.score_state import LeadState
from services.scoring.score_state_store import Features
from services.scoring.state_scoring import feature_folder, save_states, score_states, state_scorer
from shared.consumer import BatchHandler, Handler
from shared.envelope import Envelope
from shared.events import (
    ErasureConfirmed,
    HandoffCreated,
    HandoffTransition,
    LeadEventAccepted,
    MqlReached,
    TrackingMessageFailed,
)
from shared.identities import ALIAS_CONFLICT
from shared.logging import get_logger
from shared.unit_of_work import UnitOfWork

log = get_logger(__name__)


def make_handlers(
    model: ScoringModel, learned: LearnedScoring | None = None
) -> tuple[Mapping[str, Handler], Mapping[str, BatchHandler]]:
    """Per-message handlers (lifecycle) and the batch handler of lead events."""
    if model.account is not None:
        load_suffix_list()  # matching's, before the first batch

    async def on_lead_events(uow: UnitOfWork, items: list[tuple[Envelope, LeadEventAccepted]]) -> None:
        await record_events(uow, model, items, learned)

    handlers: dict[str, Handler] = {event_type: follow_lifecycle for event_type in lifecycle.FOLLOWED}
    handlers[HandoffCreated.event_type] = record_handoff
    handlers[ErasureConfirmed.event_type] = record_confirmation
    return handlers, {LeadEventAccepted.event_type: on_lead_events}


async def record_events(
    uow: UnitOfWork,
    model: ScoringModel,
    items: list[tuple[Envelope, LeadEventAccepted]],
    learned: LearnedScoring | None = None,
) -> None:
    """Attach each event to its lead (learning identity on the way), store the new ones,
    and rescore every lead that got one: one pass over the database per batch.

    An event_id seen before (in the table or earlier in the batch) keeps its first body; one
    that comes back with another body is recorded as a conflict rather than silently dropped."""
    lead_ids, departed = await resolve_leads(uow, [event for _, event in items])
    digests = [event.body_digest() for _, event in items]
    first: dict[str, int] = {}
    for index, (_, event) in enumerate(items):
        first.setdefault(event.event_id, index)
    rows = [
        {
            "event_id": event_id,
            "lead_id": lead_ids[index],
            "type": items[index][1].type,
            "occurred_at": items[index][1].occurred_at,
            "properties": items[index][1].properties,
            "body_digest": digests[index],
        }
        for event_id, index in first.items()
    ]
    new_ids = await store.add_events(uow.conn, rows)
    erased = await forget_late_arrivals(uow, [event for _, event in items], lead_ids)
    touched: dict[str, list[tuple[Envelope, LeadEventAccepted]]] = {}
    repeated: list[tuple[LeadEventAccepted, str, str]] = []
    for index, ((envelope, event), lead_id) in enumerate(zip(items, lead_ids, strict=True)):
        if lead_id in erased:
            continue
        if first[event.event_id] == index and event.event_id in new_ids:
            touched.setdefault(lead_id, []).append((envelope, event))
        else:
            repeated.append((event, lead_id, digests[index]))
    if repeated:
        await record_conflicts(uow, repeated)
    if touched:
        await rescore(uow, model, touched, learned, departed)
    elif departed:  # a merge whose events were all seen before: the absorbed shares still leave
        await roll_up_accounts(uow, model, [], departed)


async def record_conflicts(uow: UnitOfWork, repeated: list[tuple[LeadEventAccepted, str, str]]) -> None:
    """Of events whose id was stored already, those with another body: a row each, a log line
    without personal data (the event_id may be an email), and the counter once committed."""
    stored = await store.stored_digests(uow.conn, {event.event_id for event, _, _ in repeated})
    rows: list[dict[str, Any]] = [
        {
            "event_id": event.event_id,
            "lead_id": lead_id,
            "type": event.type,
            "occurred_at": event.occurred_at,
            "stored_digest": stored_digest,
            "received_digest": digest,
        }
        for event, lead_id, digest in repeated
        if (stored_digest := stored.get(event.event_id)) is not None and stored_digest != digest
    ]
    if not rows:
        return  # redeliveries, or events stored before digests were
    for row in rows:
        log.warning(
            "event_id_reused_with_another_body",
            lead_id=row["lead_id"],
            type=row["type"],
            stored_digest=row["stored_digest"][:16],
            received_digest=row["received_digest"][:16],
        )
    await store.record_conflicts(uow.conn, rows)
    uow.once_before_commit("metrics:conflicts", count_conflicts)


async def count_conflicts(uow: UnitOfWork) -> None:
    """Count the conflicts the transaction commits, not those of a message rolled back to its
    savepoint (`leadflow_events_conflicting_total`)."""
    EVENTS_CONFLICTING.inc(await store.conflicts_recorded_now(uow.conn))


async def resolve_leads(
    uow: UnitOfWork, events: list[LeadEventAccepted]
) -> tuple[list[str], list[Departure]]:
    """The lead of each event, creating, linking and merging leads as identity is learned; and
    the account shares of the leads merged away (for the roll-up to take out)."""
    emails = {e.email for e in events if e.email}
    anonymous = {e.anonymous_id for e in events if e.anonymous_id}
    anonymous |= {e.previous_id for e in events if e.previous_id}  # an alias: its id is locked too
    # An anonymous visitor's events (keyed by the anonymous id) and the identify naming them
    # (keyed by the email) may be consumed by two instances at once. Each batch holds a lock on
    # every identity it resolves, so such batches take turns, and the second reads what the
    # first committed (each statement sees the latest commits): no history is split or lost.
    await store.lock_identities(uow.conn, identity_lock_keys(emails=emails, anonymous=anonymous))
    lead_of_email, lead_of_anonymous, email_of_lead = await store.identities(
        uow.conn, emails=emails, anonymous=anonymous
    )
    plan = IdentityPlan(
        lead_of_email, lead_of_anonymous, email_of_lead, new_lead_id=lambda: str(uuid.uuid4())
    )
    resolved = []
    for event in events:
        conflicts = plan.alias_conflicts
        resolved.append(plan.resolve(event.email, event.anonymous_id, event.previous_id))
        if plan.alias_conflicts > conflicts:
            record_alias_conflict(uow, event, lead_id=resolved[-1])
    # Read before the merge deletes the absorbed leads and, with them, their account memberships.
    departed = await departing_members(uow, plan.merges_of_stored_leads)
    await store.apply_identity_changes(
        uow.conn,
        create=plan.leads_to_create,
        emails_learned=plan.emails_learned,
        merges=plan.merges_of_stored_leads,
        links=plan.links_to_write,
    )
    # A merge moved events under the known lead: its state no longer holds them all.
    await score_state_store.forget_states(uow.conn, sorted(set(plan.merges_of_stored_leads.values())))
    return [plan.final(lead_id) for lead_id in resolved], departed


def record_alias_conflict(uow: UnitOfWork, event: LeadEventAccepted, *, lead_id: str) -> None:
    """An alias between two people known by different emails merges nothing: the event stays
    with its own lead, and the failed-events view lists it (reason `alias_conflict`)."""
    failed = TrackingMessageFailed(
        reason=ALIAS_CONFLICT,
        field="previousId",
        detail="the alias names two people known by different emails; they are not merged",
        message_type="alias",
        received_at=event.received_at,
    )
    uow.emit(failed, lead_id=lead_id, occurred_at=event.occurred_at)


async def rescore(
    uow: UnitOfWork,
    model: ScoringModel,
    touched: dict[str, list[tuple[Envelope, LeadEventAccepted]]],
    learned: LearnedScoring | None = None,
    departed: list[Departure] | None = None,
) -> None:
    """Fold each touched lead's new events into its score and feature states and score it from
    those; emit what changed. A lead without a state under this model (new, merged, or folded
    under other rules) has it rebuilt from its history once, as has a feature state an event
    came too late for (older than the days it keeps). `departed`: the account shares of
    leads this batch merged away."""
    with RESCORE_BATCH_SECONDS.time():
        await _rescore(uow, model, touched, learned, departed)


async def _rescore(
    uow: UnitOfWork,
    model: ScoringModel,
    touched: dict[str, list[tuple[Envelope, LeadEventAccepted]]],
    learned: LearnedScoring | None,
    departed: list[Departure] | None,
) -> None:
    scorer, folder = state_scorer(model), feature_folder(model)
    # Feature states are kept while a predictive model is active (only it reads them) or being
    # put in force; without, the stored ones are dropped as they fall behind, and the recently
    # active leads' are built again before a model is put in force (`feature_warmup`).
    featured = learned is not None and learned.keeps_features
    lead_ids = sorted(touched)
    leads = await store.leads_by_ids(uow.conn, lead_ids)
    stored = await score_state_store.states_and_features(
        uow.conn, lead_ids, model_key=scorer.key, features_key=folder.key if featured else None
    )
    rebuilt = await store.histories(
        uow.conn, [i for i in lead_ids if i not in stored.scores or (featured and i not in stored.features)]
    )
    scored: dict[str, tuple[dict[str, Any], LeadState]] = {}
    features: dict[str, FeatureState] = {}
    for lead_id in lead_ids:
        traits = dict(leads[lead_id].traits)
        for _, event in touched[lead_id]:
            traits.update(event.traits)
        new = [LeadEvent(e.type, e.occurred_at, e.properties) for _, e in touched[lead_id]]
        # The history, when read, already holds the new events (stored above).
        history = [LeadEvent(row.type, row.occurred_at, row.properties) for row in rebuilt.get(lead_id, ())]
        if lead_id in stored.scores:
            scored[lead_id] = traits, scorer.fold(stored.scores[lead_id], new)
        else:
            scored[lead_id] = traits, scorer.fold(LeadState(), history)
        if not featured:
            continue
        if lead_id not in stored.features:
            started = time.perf_counter()
            features[lead_id] = folder.build(history)
            if len(history) > len(new):  # not a new lead: its history is folded again
                FEATURE_STATES_BUILT.inc()
                FEATURE_STATE_BUILD_SECONDS.inc(time.perf_counter() - started)
        elif not (folded := folder.fold(stored.features[lead_id], new)).exact:
            started = time.perf_counter()
            features[lead_id] = folder.build(await lead_history(uow, lead_id))  # a very late event
            FEATURE_STATES_BUILT.inc()
            FEATURE_STATE_BUILD_SECONDS.inc(time.perf_counter() - started)
        else:
            features[lead_id] = folded
    evaluated = await score_states(uow, scorer, leads, scored)
    if learned is not None:  # the likelihood, and the learned MQL rule and exploration
        evaluated = await learned_decisions(uow, learned, evaluated, features)
    # Then (one step, after) the leads roll up into their accounts, which may qualify a lead
    # with its account's context; the shares of leads merged away leave theirs.
    evaluated = await roll_up_accounts(uow, model, evaluated, departed or [])
    # The roll-up may add members outside this batch (qualified by their account's new MQA):
    # they carry the trace of the batch's first event.
    batch_trace = next(iter(touched.values()))[-1][0].trace_id
    for rescored in evaluated:
        items = touched.get(rescored.lead.lead_id)
        announce(uow, rescored, trace_id=items[-1][0].trace_id if items else batch_trace)
    await store.save_rescored(uow.conn, evaluated, cause="event")
    states = {lead_id: state for lead_id, (_, state) in scored.items()}
    await save_states(uow, scorer, evaluated, states, (folder, features) if featured else Features.DROPPED)


async def lead_history(uow: UnitOfWork, lead_id: str) -> list[LeadEvent]:
    rows = (await store.histories(uow.conn, [lead_id]))[lead_id]
    return [LeadEvent(row.type, row.occurred_at, row.properties) for row in rows]


async def learned_decisions(
    uow: UnitOfWork, learned: LearnedScoring, evaluated: list[Rescored], features: Mapping[str, FeatureState]
) -> list[Rescored]:
    """The active model's likelihood and the learned MQL rule on each rescore.

    The model's features come from each lead's running feature state (folded with the score
    state, `feature_state`), so a judged lead's history is not read: the hook's cost does not
    grow with it. Only the leads it judges have their account read, and their likelihoods
    come from one model call for the batch.
    """
    judged = [r.lead.lead_id for r in evaluated if learned.judges(r)]
    if not judged:
        return learned.apply_all(evaluated, {})
    started = time.perf_counter()
    if missing := [lead_id for lead_id in judged if lead_id not in features]:
        # A model became active while this batch was scored without feature states.
        folder = feature_folder(learned.model)
        rows = await store.histories(uow.conn, missing)
        features = {
            **features,
            **{
                i: folder.build(LeadEvent(r.type, r.occurred_at, r.properties) for r in rows[i])
                for i in missing
            },
        }
        FEATURE_STATES_BUILT.inc(len(missing))
        FEATURE_STATE_BUILD_SECONDS.inc(time.perf_counter() - started)
    accounts = await model_store.account_facts(uow.conn, judged)
    decided = learned.apply_all(evaluated, {lead_id: features[lead_id] for lead_id in judged}, accounts)
    LEARNED_HOOK_SECONDS.inc(elapsed := time.perf_counter() - started)
    LEARNED_HOOK_BATCH_SECONDS.observe(elapsed)
    LEARNED_HOOK_LEADS.inc(len(judged))
    return decided


def announce(uow: UnitOfWork, rescored: Rescored, *, trace_id: str | None, scored: bool = True) -> None:
    """Emit `lead.scored` (if asked and the score changed) and `lead.mql_reached` (if it qualified)."""
    for event in rescored.events(scored=scored):
        uow.emit(event, lead_id=rescored.lead.lead_id, occurred_at=rescored.at, trace_id=trace_id)
    if rescored.qualifies:
        uow.once_before_commit("metrics:mqls", count_mqls)


async def count_mqls(uow: UnitOfWork) -> None:
    """Count the MQLs the transaction commits (`leadflow_mqls_total`).

    Run as it commits, so an MQL of a message rolled back to its savepoint is not
    counted; a commit that then fails (an outage: the batch is retried) counts its
    MQLs again.
    """
    for emitted in uow.emitted:
        if emitted.envelope.type == MqlReached.event_type:
            MQLS.labels(emitted.envelope.data["grade"]).inc()


async def follow_lifecycle(uow: UnitOfWork, envelope: Envelope, event: HandoffTransition) -> None:
    """Track the lead's stage from sales decisions; a rejection or return recycles it to nurture,
    a reopen takes it back."""
    if envelope.lead_id is None:
        return
    await store.record_decision(  # every decision: what training learns from
        uow.conn, envelope, cycle=event.cycle, handoff_id=event.handoff_id, reason=event.reason
    )
    lead = await store.lead_by_id(uow.conn, envelope.lead_id, lock=True)
    if lead is None:
        return
    change = lifecycle.follow(
        envelope.type,
        lead_stage=lead.stage,
        lead_cycle=lead.cycle,
        decided_cycle=event.cycle,
        at=envelope.occurred_at,
    )
    if change is None:
        return
    if change.clears_outcome:
        await store.clear_outcome(uow.conn, lead_id=lead.lead_id, cycle=event.cycle)
    if change.outcome is not None:
        await store.record_outcome(
            uow.conn, lead_id=lead.lead_id, cycle=lead.cycle, outcome=change.outcome, at=envelope.occurred_at
        )
    await store.update_lead(uow.conn, lead.lead_id, **change.values)


async def record_handoff(uow: UnitOfWork, envelope: Envelope, event: HandoffCreated) -> None:
    """Remember when the lead was handed off, and whether to explore: training's examples
    start there (their features are taken as of the MQL moment)."""
    if envelope.lead_id is not None:
        await store.record_decision(
            uow.conn,
            envelope,
            cycle=event.cycle,
            handoff_id=event.handoff_id,
            at=event.mql_at or envelope.occurred_at,
            exploration=event.exploration,
            propensity=event.propensity,
        )
