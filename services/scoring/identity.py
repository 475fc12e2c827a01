"""Who an event is about: resolving emails and anonymous ids to leads, for a whole batch.

Pure: `IdentityPlan` starts from what the database knows about the batch's
emails and anonymous ids, resolves each event in order, and ends with the
changes to make (new leads, emails learned, anonymous ids linked, anonymous
leads merged into known ones). Applying the plan is the store's job.

An event may also name a `previous_id` (an alias: another anonymous id of the same person,
such as Segment's `previousId`). Its lead and the event's become one, whichever ids they are
known by; two leads known by different emails are two people and stay apart (the event
counts as an alias conflict, `alias_conflicts`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


def identity_lock_keys(*, emails: Iterable[str], anonymous: Iterable[str]) -> list[int]:
    """The Postgres advisory-lock keys of these identities, in the one order every instance
    takes them (ascending), so two batches sharing identities wait for each other and never
    deadlock. A key is 64 bits of a hash: a collision only makes two batches wait."""
    named = [f"email:{e}" for e in emails] + [f"anonymous:{a}" for a in anonymous]
    keys = {int.from_bytes(hashlib.sha256(n.encode()).digest()[:8], "big", signed=True) for n in named}
    return sorted(keys)


@dataclass
class IdentityPlan:
    lead_of_email: dict[str, str]
    lead_of_anonymous: dict[str, str]
    email_of_lead: dict[str, str | None]
    new_lead_id: Callable[[], str]

    new_leads: dict[str, str | None] = field(default_factory=dict)
    emails_learned: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)
    alias_conflicts: int = 0

    def resolve(self, email: str | None, anonymous_id: str | None, previous_id: str | None = None) -> str:
        """The lead of an event; identifying an anonymous visitor merges their history once,
        and so does an alias (`previous_id`)."""
        lead_id = self._resolve(email, anonymous_id)
        return self._alias(lead_id, previous_id) if previous_id else lead_id

    def _resolve(self, email: str | None, anonymous_id: str | None) -> str:
        known = self.lead_of_email.get(email) if email else None
        anonymous = (
            self.final(self.lead_of_anonymous[anonymous_id])
            if anonymous_id in self.lead_of_anonymous
            else None
        )
        if known and anonymous and anonymous != known and self.email_of_lead.get(anonymous) is None:
            self._merge(absorbed=anonymous, into=known)
            return known
        if known:
            if anonymous_id and anonymous is None:
                self._link(anonymous_id, known)
            return known
        if anonymous and (email is None or self.email_of_lead.get(anonymous) is None):
            if email:
                self._learn_email(anonymous, email)
            return anonymous
        # A new person, or a known device now used by someone with another email.
        lead_id = self._create(email)
        if anonymous_id and anonymous is None:
            self._link(anonymous_id, lead_id)
        return lead_id

    def _alias(self, lead_id: str, previous_id: str) -> str:
        """One lead for the event's and the previous id's: the one known by an email, else the
        one stored before this batch, else the previous id's (the older identity)."""
        other = (
            self.final(self.lead_of_anonymous[previous_id]) if previous_id in self.lead_of_anonymous else None
        )
        if other is None:
            self._link(previous_id, lead_id)
            return lead_id
        if other == lead_id:
            return lead_id
        email, other_email = self.email_of_lead.get(lead_id), self.email_of_lead.get(other)
        if email and other_email:  # two known people: an alias does not make them one
            self.alias_conflicts += 1
            return lead_id
        new, other_new = lead_id in self.new_leads, other in self.new_leads
        if new != other_new:
            into, absorbed = (other, lead_id) if new else (lead_id, other)
        elif email or other_email:
            into, absorbed = (lead_id, other) if email else (other, lead_id)
        else:
            into, absorbed = other, lead_id
        moving = self.email_of_lead.get(absorbed)
        self._merge(absorbed=absorbed, into=into)
        if moving:  # only a lead new in this batch hands its email over: it is never created
            self._learn_email(into, moving)
        return into

    def final(self, lead_id: str) -> str:
        while lead_id in self.merged_into:
            lead_id = self.merged_into[lead_id]
        return lead_id

    @property
    def merges_of_stored_leads(self) -> dict[str, str]:
        """Merges whose absorbed lead is already in the database (new ones are simply not created)."""
        return {a: self.final(a) for a in self.merged_into if a not in self.new_leads}

    @property
    def leads_to_create(self) -> dict[str, str | None]:
        return {lead: email for lead, email in self.new_leads.items() if lead not in self.merged_into}

    @property
    def links_to_write(self) -> dict[str, str]:
        return {anonymous_id: self.final(lead) for anonymous_id, lead in self.links.items()}

    def _create(self, email: str | None) -> str:
        lead_id = self.new_lead_id()
        self.new_leads[lead_id] = email
        self.email_of_lead[lead_id] = email
        if email:
            self.lead_of_email[email] = lead_id
        return lead_id

    def _link(self, anonymous_id: str, lead_id: str) -> None:
        self.lead_of_anonymous[anonymous_id] = lead_id
        self.links[anonymous_id] = lead_id

    def _learn_email(self, lead_id: str, email: str) -> None:
        self.email_of_lead[lead_id] = email
        self.lead_of_email[email] = lead_id
        if lead_id in self.new_leads:
            self.new_leads[lead_id] = email
        else:
            self.emails_learned[lead_id] = email

    def _merge(self, *, absorbed: str, into: str) -> None:
        self.merged_into[absorbed] = into
        for anonymous_id, lead in list(self.lead_of_anonymous.items()):
            if self.final(lead) == into and lead != into:
                self._link(anonymous_id, into)
        self.emails_learned.pop(absorbed, None)
