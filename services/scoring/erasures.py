"""scoring's erasure use cases: erase a person on request, and follow the services' confirmations.

The request runs in one transaction: the person's identities are resolved (email, anonymous
ids, leads merged into theirs), their vault keys destroyed (every copy of their events, on any
topic or dead-letter topic, now reads as erased; intake refuses the email), scoring's rows
deleted, and one `privacy.erasure_requested` per lead emitted for the other services, which
confirm with `privacy.erasure_confirmed`. See docs/privacy.md.
"""

from __future__ import annotations

import uuid

from services.scoring import erasure_store
from services.scoring.erasure import ERASING_SERVICES
from shared.envelope import Envelope
from shared.events import ErasureConfirmed, ErasureRequested, LeadEventAccepted
from shared.identities import normalize_email
from shared.logging import get_logger
from shared.sealing import SubjectKind
from shared.unit_of_work import UnitOfWork
from shared.vault import Vault, subjects_of_person

log = get_logger(__name__)


async def request_erasure(
    uow: UnitOfWork, vault: Vault, *, email: str | None, lead_id: str | None, requested_by: str
) -> str:
    """Erase the person with this email or lead id from scoring and announce it; the request's id."""
    email = normalize_email(email) if email else None
    person = await erasure_store.find_person(uow.conn, email=email, lead_id=lead_id)
    await vault.destroy(
        uow.conn,
        subjects_of_person(
            vault, email=person.email, anonymous_ids=person.anonymous_ids, lead_ids=person.lead_ids
        ),
    )
    await erasure_store.delete_person(uow.conn, person.lead_ids)
    request_id = str(uuid.uuid4())
    await erasure_store.add_request(
        uow.conn,
        request_id=request_id,
        requested_by=requested_by,
        subject=vault.subject(SubjectKind.EMAIL, person.email) if person.email else None,
        lead_ids=list(person.lead_ids),
    )
    await erasure_store.confirm(
        uow.conn, [{"request_id": request_id, "service": "scoring", "lead_id": i} for i in person.lead_ids]
    )
    for erased in person.lead_ids:
        uow.emit(ErasureRequested(request_id=request_id), lead_id=erased)
    await erasure_store.complete_if_confirmed(uow.conn, request_id, services=ERASING_SERVICES)
    log.info("erasure_requested", request_id=request_id, leads=len(person.lead_ids))
    return request_id


async def forget_late_arrivals(
    uow: UnitOfWork, events: list[LeadEventAccepted], lead_ids: list[str]
) -> set[str]:
    """The leads of events whose person was erased while the batch ran (their key destroyed after
    the consumer opened them), deleted again; their ids, so the batch does not rescore them."""
    if uow.vault is None:
        return set()
    subjects = {
        uow.vault.subject(kind, value): lead_id
        for event, lead_id in zip(events, lead_ids, strict=True)
        for kind, value in (
            (SubjectKind.EMAIL, event.email),
            (SubjectKind.ANONYMOUS, event.anonymous_id),
            (SubjectKind.ANONYMOUS, event.previous_id),
        )
        if value
    }
    destroyed = await uow.vault.destroyed_now(uow.conn, subjects)
    erased = {subjects[s] for s in destroyed}
    if erased:
        await erasure_store.delete_person(uow.conn, sorted(erased))
        log.info("erased_lead_events_dropped", leads=len(erased))
    return erased


async def record_confirmation(uow: UnitOfWork, envelope: Envelope, event: ErasureConfirmed) -> None:
    """A service erased its copy of one lead; the request completes with the last confirmation."""
    if envelope.lead_id is None:
        return
    row = {"request_id": event.request_id, "service": event.service, "lead_id": envelope.lead_id}
    await erasure_store.confirm(uow.conn, [row])
    await erasure_store.complete_if_confirmed(uow.conn, event.request_id, services=ERASING_SERVICES)
    log.info("erasure_confirmed", request_id=event.request_id, service=event.service)
