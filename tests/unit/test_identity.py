"""Identity: emails and anonymous ids resolve to one lead per person, merging history once."""

from __future__ import annotations

import itertools

import pytest

from services.scoring.identity import IdentityPlan


def plan(
    lead_of_email: dict[str, str] | None = None,
    lead_of_anonymous: dict[str, str] | None = None,
    email_of_lead: dict[str, str | None] | None = None,
) -> IdentityPlan:
    ids = (f"new{n}" for n in itertools.count(1))
    return IdentityPlan(
        dict(lead_of_email or {}), dict(lead_of_anonymous or {}), dict(email_of_lead or {}), lambda: next(ids)
    )


def test_an_unknown_email_creates_one_lead_for_all_its_events() -> None:
    p = plan()
    assert p.resolve("ada@x.example", None) == p.resolve("ada@x.example", None) == "new1"
    assert p.leads_to_create == {"new1": "ada@x.example"}


def test_anonymous_views_then_identify_become_one_lead_with_the_email() -> None:
    p = plan()
    anonymous = p.resolve(None, "a1")
    identified = p.resolve("ada@x.example", "a1")
    assert anonymous == identified == "new1"
    assert p.leads_to_create == {"new1": "ada@x.example"}
    assert p.links_to_write == {"a1": "new1"}


def test_a_stored_anonymous_lead_merges_into_the_known_lead_once() -> None:
    p = plan({"ada@x.example": "known"}, {"a1": "anon"}, {"known": "ada@x.example", "anon": None})
    assert p.resolve("ada@x.example", "a1") == "known"
    assert p.resolve("ada@x.example", "a1") == "known"
    assert p.merges_of_stored_leads == {"anon": "known"}
    assert p.links_to_write == {"a1": "known"}
    assert p.resolve(None, "a1") == "known"  # later anonymous events follow the merge


def test_two_anonymous_ids_of_one_person_both_merge() -> None:
    p = plan(
        {"ada@x.example": "known"},
        {"a1": "anon1", "a2": "anon2"},
        {"known": "ada@x.example", "anon1": None, "anon2": None},
    )
    p.resolve("ada@x.example", "a1")
    p.resolve("ada@x.example", "a2")
    assert p.merges_of_stored_leads == {"anon1": "known", "anon2": "known"}


def test_a_merge_within_the_batch_creates_no_throwaway_lead() -> None:
    p = plan({"ada@x.example": "known"}, {}, {"known": "ada@x.example"})
    first = p.resolve(None, "a1")
    assert p.resolve("ada@x.example", "a1") == "known"
    assert p.final(first) == "known"
    assert p.leads_to_create == {}
    assert p.merges_of_stored_leads == {}


def test_a_shared_device_does_not_hand_one_persons_history_to_another() -> None:
    p = plan({}, {"laptop": "ada"}, {"ada": "ada@x.example"})
    bob = p.resolve("bob@x.example", "laptop")
    assert bob != "ada"
    assert p.leads_to_create == {bob: "bob@x.example"}
    assert p.merges_of_stored_leads == {}


def test_identity_locks_are_taken_in_one_order_whatever_the_batch_order():
    from services.scoring.identity import identity_lock_keys

    one = identity_lock_keys(emails=["ana@acme.com", "kim@acme.com"], anonymous=["a1"])
    other = identity_lock_keys(emails=["kim@acme.com", "ana@acme.com", "ana@acme.com"], anonymous=["a1"])
    assert one == other == sorted(one) and len(one) == 3
    # an email and an anonymous id with the same text are different identities
    assert identity_lock_keys(emails=["x"], anonymous=[]) != identity_lock_keys(emails=[], anonymous=["x"])
    assert all(-(2**63) <= key < 2**63 for key in one)  # Postgres bigint


def test_an_alias_between_two_anonymous_leads_makes_them_one_under_the_older_identity() -> None:
    p = plan({}, {"user:42": "before", "user:43": "after"}, {"before": None, "after": None})
    assert p.resolve(None, "user:43", "user:42") == "before"
    assert p.merges_of_stored_leads == {"after": "before"}
    assert p.links_to_write == {"user:43": "before"}
    assert p.resolve(None, "user:43") == "before"  # later events of the new id follow


def test_an_alias_to_an_id_never_seen_links_it_to_the_lead() -> None:
    p = plan({}, {"user:42": "lead"}, {"lead": None})
    assert p.resolve(None, "user:42", "anon-1") == "lead"
    assert p.links_to_write == {"anon-1": "lead"}
    assert p.merges_of_stored_leads == {} and p.leads_to_create == {}


def test_an_alias_whose_new_id_is_new_in_the_batch_creates_no_throwaway_lead() -> None:
    p = plan({}, {"user:42": "stored"}, {"stored": None})
    assert p.resolve(None, "user:43", "user:42") == "stored"
    assert p.leads_to_create == {} and p.merges_of_stored_leads == {}
    assert p.links_to_write == {"user:43": "stored"}


def test_an_alias_keeps_the_lead_known_by_an_email_whichever_side_it_is_on() -> None:
    stored = (
        {"ada@x.example": "ada"},
        {"anon-1": "anon", "user:42": "ada"},
        {"ada": "ada@x.example", "anon": None},
    )
    p = plan(*stored)
    assert p.resolve(None, "anon-1", "user:42") == "ada"
    assert p.merges_of_stored_leads == {"anon": "ada"}
    p = plan(*stored)
    assert p.resolve(None, "user:42", "anon-1") == "ada"
    assert p.merges_of_stored_leads == {"anon": "ada"}


def test_a_new_email_in_the_batch_moves_to_the_stored_lead_an_alias_names() -> None:
    p = plan({}, {"user:42": "stored"}, {"stored": None})
    assert p.resolve("ada@x.example", "user:43", "user:42") == "stored"
    assert p.leads_to_create == {}
    assert p.emails_learned == {"stored": "ada@x.example"}
    assert p.resolve("ada@x.example", None) == "stored"


def test_an_alias_between_two_people_known_by_email_merges_nothing_and_counts_a_conflict() -> None:
    p = plan(
        {"ada@x.example": "ada", "bob@x.example": "bob"},
        {"user:1": "ada", "user:2": "bob"},
        {"ada": "ada@x.example", "bob": "bob@x.example"},
    )
    assert p.resolve(None, "user:2", "user:1") == "bob"
    assert p.merges_of_stored_leads == {} and p.alias_conflicts == 1


class Stored:
    """What the store holds between batches: each plan's changes applied as the store applies
    them (`store.apply_identity_changes`), events moved with their leads."""

    def __init__(self) -> None:
        self.lead_of_email: dict[str, str] = {}
        self.lead_of_anonymous: dict[str, str] = {}
        self.email_of_lead: dict[str, str | None] = {}
        self.events: dict[str, list[str]] = {}
        self.ids = (f"lead{n}" for n in itertools.count(1))

    def consume(self, batch: list[tuple[str, str | None, str | None, str | None]]) -> None:
        p = IdentityPlan(
            dict(self.lead_of_email),
            dict(self.lead_of_anonymous),
            dict(self.email_of_lead),
            lambda: next(self.ids),
        )
        leads = [p.resolve(email, anonymous, previous) for _, email, anonymous, previous in batch]
        for lead, email in p.leads_to_create.items():
            self.email_of_lead[lead] = email
        for lead, email in p.emails_learned.items():
            self.email_of_lead[lead] = email
        for absorbed, into in p.merges_of_stored_leads.items():
            self.events.setdefault(into, []).extend(self.events.pop(absorbed, []))
            self.lead_of_anonymous = {
                a: into if lead == absorbed else lead for a, lead in self.lead_of_anonymous.items()
            }
            self.email_of_lead.pop(absorbed)
        self.lead_of_anonymous.update(p.links_to_write)
        self.lead_of_email = {email: lead for lead, email in self.email_of_lead.items() if email}
        for (name, *_), lead in zip(batch, leads, strict=True):
            self.events.setdefault(p.final(lead), []).append(name)


# The Tracking API's events (services/intake/tracking_mapping.py): a page view of the browser,
# calls a backend sends with only the userId, and the identify naming the email (its two events).
PAGE = ("page", None, "anon-1", None)
TRACKS = [("track1", None, "user:42", None), ("track2", None, "user:42", None)]
IDENTIFY = [
    ("identify", "ada@x.example", "anon-1", None),
    ("identify:1", "ada@x.example", "user:42", None),
]


@pytest.mark.parametrize("before", [0, 1, 2])
@pytest.mark.parametrize("batched", [False, True])
def test_user_id_only_events_land_on_the_lead_of_the_identify_naming_the_email_in_any_order(
    before: int, batched: bool
) -> None:
    events = [PAGE, *TRACKS[:before], *IDENTIFY, *TRACKS[before:]]
    stored = Stored()
    for batch in [events] if batched else [[e] for e in events[:-2]] + [events[-2:]]:
        stored.consume(batch)
    [lead] = [lead for lead, names in stored.events.items() if names]
    assert sorted(stored.events[lead]) == sorted(name for name, *_ in events)
    assert stored.email_of_lead == {lead: "ada@x.example"}
    assert {stored.lead_of_anonymous[a] for a in ("anon-1", "user:42")} == {lead}


def test_an_alias_chain_of_opaque_ids_keeps_one_lead_with_the_whole_timeline() -> None:
    """anonymous → identify(userId 42, no email) → alias(42 → 43) → track with only 43."""
    stored = Stored()
    for batch in [
        [PAGE],
        [("identify", None, "anon-1", None), ("identify:1", None, "user:42", "anon-1")],
        [("alias", None, "user:43", "42"), ("alias:1", None, "user:43", "user:42")],
        [("track", None, "user:43", None)],
    ]:
        stored.consume(batch)
    [lead] = [lead for lead, names in stored.events.items() if names]
    assert len(stored.events[lead]) == 6
    assert {stored.lead_of_anonymous[a] for a in ("anon-1", "user:42", "user:43")} == {lead}


def test_an_alias_within_one_batch_creates_one_lead_for_both_ids() -> None:
    p = plan()
    first = p.resolve(None, "user:42")
    assert p.resolve(None, "user:43", "user:42") == first
    assert p.resolve(None, "user:43") == first
    assert p.leads_to_create == {first: None}
    assert p.links_to_write == {"user:42": first, "user:43": first}
