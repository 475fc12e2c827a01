"""Intake's part of privacy: seal each event's personal fields before it leaves, and refuse the erased.

One call from the hot path (`seal_events`). A person's data key comes from this process's cache
(no round trip) or, the first time, from the vault; a destroyed key means the person was erased
and is suppressed: the event is refused with a 422 naming the rule (or dropped and counted, with
`LEADFLOW_PRIVACY_SUPPRESSED_EVENTS=drop`), so they do not reappear with the next page view.
The message key becomes the subject's keyed hash, never the address.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.metrics import INTAKE_EVENTS, count_rejected
from shared import sealing
from shared.problems import FieldError, invalid
from shared.sealing import SubjectKind
from shared.vault import Vault

ERASED_RULE = "erased"


@dataclass(frozen=True)
class EventSealer:
    vault: Vault
    engine: AsyncEngine
    suppressed: Literal["refuse", "drop"] = "refuse"

    def subjects(self, data: Mapping[str, Any]) -> dict[str, str]:
        """The subjects an event's payload names, by the field naming them; the first seals it."""
        named: dict[str, str] = {}
        if email := data.get("email"):
            named["email"] = self.vault.subject(SubjectKind.EMAIL, email)
        if anonymous_id := data.get("anonymous_id"):
            named["anonymous_id"] = self.vault.subject(SubjectKind.ANONYMOUS, anonymous_id)
        if previous_id := data.get("previous_id"):  # an alias naming an erased id is refused too
            named["previous_id"] = self.vault.subject(SubjectKind.ANONYMOUS, previous_id)
        return named


async def seal_events(
    sealer: EventSealer, envelopes: list[dict[str, Any]], *, batch: bool
) -> list[dict[str, Any]]:
    """The envelopes (JSON-ready dicts, as `handlers.envelope_record` builds them) sealed for
    `lead.events`, each with its subject as identity; an erased person's are refused."""
    named = [sealer.subjects(envelope["data"]) for envelope in envelopes]
    keys = await sealer.vault.keys_now(sealer.engine, {s for n in named for s in n.values()}, create=True)
    erased = [
        FieldError(f"events.{index}.{name}" if batch else name, ERASED_RULE, _WHY)
        for index, subjects in enumerate(named)
        for name, subject in subjects.items()
        if keys.get(subject) is None
    ]
    if erased and sealer.suppressed == "refuse":
        count_rejected(erased, events=len(envelopes))
        raise invalid(erased, title="The event cannot be accepted")
    sealed: list[dict[str, Any]] = []
    for envelope, subjects in zip(envelopes, named, strict=True):
        if any(keys.get(s) is None for s in subjects.values()):
            INTAKE_EVENTS.labels("dropped", ERASED_RULE).inc()
            continue
        subject = next(iter(subjects.values()))
        data = sealing.seal(envelope["type"], envelope["data"], subject=subject, key=keys[subject])
        sealed.append({**envelope, "data": data, "identity": subject})
    return sealed


_WHY = "this person was erased at their request (GDPR Art. 17); events about them are not accepted"
