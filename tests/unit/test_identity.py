"""Identity: emails and anonymous ids resolve to one lead per person, merging history once."""

from __future__ import annotations

import itertools

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
