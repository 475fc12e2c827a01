"""Lead-to-account matching: which account a lead belongs to, how, and how sure we are."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from services.scoring.accounts.domains import registrable_domain
from services.scoring.accounts.matching import (
    AccountCandidate,
    CandidatePool,
    blocking_key,
    candidate_keys,
    choose_account,
    facts_of,
    normalize_company_name,
)
from services.scoring.model import AccountMatching


def account(
    account_id: str,
    name: str,
    domains: tuple[str, ...] = (),
    country: str | None = None,
    tier: str | None = None,
    engaged: int = 0,
    created: int = 1,
) -> AccountCandidate:
    return AccountCandidate(
        account_id,
        normalize_company_name(name) or "",
        domains,
        country,
        tier,
        engaged,
        datetime(2026, 1, created, tzinfo=UTC),
    )


ACME = account("acme", "Acme Inc", ("acme.co.uk", "acme.com"), country="GB", tier="enterprise")
ACME_ROBOTICS = account("acme-robotics", "Acme Robotics GmbH", ("acmerobotics.de",), country="DE")
NORTHWIND = account("northwind", "Northwind Traders, LLC", ("northwind.com",), country="US")
GLOBEX = account("globex", "Globex Corporation", ("globex.com",), country="US")
ACCOUNTS = [ACME, ACME_ROBOTICS, NORTHWIND, GLOBEX]
MATCHING = AccountMatching()


def match(email: str | None, **traits: Any) -> tuple[str, str] | None:
    facts = facts_of(email, traits, registrable_domain)
    found = choose_account(facts, ACCOUNTS, MATCHING, ("strategic", "enterprise"))
    return (found.account_id, found.matched_by) if found else None


CASES = [
    # subdomains and multi-part public suffixes reduce to the registrable domain
    ("sub-domain of the email", "jo@eu.acme.co.uk", {}, ("acme", "domain")),
    ("deep sub-domain", "jo@mail.london.acme.com", {}, ("acme", "domain")),
    ("website trait with a path", None, {"website": "https://www.acme.co.uk/about"}, ("acme", "domain")),
    ("company_domain trait, subdomain", None, {"company_domain": "shop.globex.com"}, ("globex", "domain")),
    (
        "the email domain wins over the trait",
        "jo@globex.com",
        {"company_domain": "acme.com"},
        ("globex", "domain"),
    ),
    # a suffix of several labels is not the company: co.uk alone matches nothing
    ("another company under co.uk", "jo@othercorp.co.uk", {}, None),
    # free mail never matches by domain, but the company name can
    ("gmail with no company", "jo@gmail.com", {}, None),
    ("gmail naming the company", "jo@gmail.com", {"company": "ACME, Inc."}, ("acme", "name_exact")),
    (
        "gmail naming the company and its country",
        "jo@gmail.com",
        {"company": "Acme Ltd", "country": "GB"},
        ("acme", "name_exact+country"),
    ),
    ("free mail typed as the company domain", None, {"company_domain": "gmail.com"}, None),
    # legal-suffix variants are the same name
    ("GmbH variant", "jo@yahoo.de", {"company": "Acme Robotics"}, ("acme-robotics", "name_exact")),
    ("S.A. variant", None, {"company": "Globex S.A."}, ("globex", "name_exact")),
    ("Co., Ltd. variant", None, {"company": "Northwind Traders Co., Ltd."}, ("northwind", "name_exact")),
    ("'The' and punctuation", None, {"company": "The Globex Corp."}, ("globex", "name_exact")),
    # a close name needs a supporting criterion
    (
        "close name with the same country",
        "jo@gmail.com",
        {"company": "Northwind Trader", "country": "US"},
        ("northwind", "name_close+country"),
    ),
    (
        "close name with a same-named domain elsewhere",
        "jo@northwind.de",
        {"company": "Northwind Trader"},
        ("northwind", "name_close+domain"),
    ),
    ("close name alone", "jo@gmail.com", {"company": "Northwind Trader"}, None),
    ("close name, another country", "jo@gmail.com", {"company": "Northwind Trader", "country": "FR"}, None),
    # near misses that must not match, even with the country agreeing
    ("another Acme", "jo@gmail.com", {"company": "Acme Analytics", "country": "DE"}, None),
    ("a longer name", "jo@gmail.com", {"company": "Globex Capital Partners", "country": "US"}, None),
    ("one letter off at the start", "jo@gmail.com", {"company": "Flobex", "country": "US"}, None),
    ("nothing to go on", None, {}, None),
]


@pytest.mark.parametrize(("email", "traits", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_lead_matches_the_account_its_evidence_points_to(
    email: str | None, traits: dict[str, Any], expected: tuple[str, str] | None
) -> None:
    assert match(email, **traits) == expected


def test_a_domain_match_is_surer_than_a_name_match() -> None:
    by_domain = choose_account(facts_of("jo@acme.com", {}, registrable_domain), ACCOUNTS, MATCHING)
    by_name = choose_account(
        facts_of("jo@gmail.com", {"company": "Northwind Trader", "country": "US"}, registrable_domain),
        ACCOUNTS,
        MATCHING,
    )
    assert by_domain is not None and by_name is not None
    assert by_domain.confidence == 1.0 > by_name.confidence > 0.5
    assert by_domain.evidence == "email domain acme.com"
    assert "northwind trader" in by_name.evidence and "country agrees" in by_name.evidence


TWINS = [
    account("b-commercial", "Initech", country="US", tier="commercial", engaged=9, created=1),
    account("a-strategic-new", "Initech", country="US", tier="strategic", engaged=1, created=20),
    account("c-strategic-old", "Initech", country="US", tier="strategic", engaged=1, created=2),
    account("d-strategic-busy", "Initech", country="US", tier="strategic", engaged=5, created=25),
]


@pytest.mark.parametrize(
    ("tie_breakers", "chosen"),
    [
        (("tier", "most_engaged", "oldest"), "d-strategic-busy"),
        (("tier", "oldest"), "c-strategic-old"),
        (("most_engaged",), "b-commercial"),
        (("oldest",), "b-commercial"),
        ((), "a-strategic-new"),  # nothing configured: the account id, so every instance agrees
    ],
)
def test_equally_good_matches_are_decided_by_the_configured_tie_breakers(
    tie_breakers: tuple[Any, ...], chosen: str
) -> None:
    facts = facts_of("jo@gmail.com", {"company": "Initech Inc", "country": "US"}, registrable_domain)
    config = AccountMatching(tie_breakers=tie_breakers)
    found = choose_account(facts, TWINS, config, ("strategic", "enterprise", "commercial"))
    assert found is not None and found.account_id == chosen and found.matched_by == "name_exact+country"


@pytest.mark.parametrize(
    ("host", "registrable"),
    [
        ("eu.acme.co.uk", "acme.co.uk"),
        ("www.globex.com.au", "globex.com.au"),
        ("https://shop.example.co.jp/path?q=1", "example.co.jp"),
        ("jo@mail.initech.com", "initech.com"),
        ("ACME.COM.", "acme.com"),
        ("co.uk", None),
        ("192.168.0.1", None),
        ("localhost", None),
        ("", None),
    ],
)
def test_registrable_domains_come_from_the_bundled_public_suffix_list(
    host: str, registrable: str | None
) -> None:
    assert registrable_domain(host) == registrable


def test_close_names_are_found_through_the_blocking_key_not_by_comparing_every_name() -> None:
    facts = facts_of(None, {"company": "Northwind Trader"}, registrable_domain)
    keys = candidate_keys(facts)
    assert keys.block == blocking_key(NORTHWIND.name_normalized) == "northw|tr"
    assert keys.name == "northwind trader" and keys.domains == ()


def test_each_lead_of_a_batch_is_compared_with_its_own_candidates_only() -> None:
    pool = CandidatePool(ACCOUNTS)
    by_domain = facts_of("jo@eu.acme.co.uk", {}, registrable_domain)
    by_name = facts_of(None, {"company": "Northwind Trader", "country": "US"}, registrable_domain)
    assert [c.account_id for c in pool.for_lead(by_domain)] == ["acme"]
    assert [c.account_id for c in pool.for_lead(by_name)] == ["northwind"]
    assert pool.for_lead(facts_of("jo@gmail.com", {}, registrable_domain)) == []


def test_a_group_id_that_is_an_accounts_external_id_matches_it_ahead_of_domains_and_names() -> None:
    crm = dataclasses.replace(GLOBEX, external_id="crm-globex")
    facts = facts_of("jo@acme.com", {"company": "Acme", "group_id": "crm-globex"}, registrable_domain)
    found = choose_account(facts, [*ACCOUNTS[:-1], crm], MATCHING)
    assert found is not None
    assert (found.account_id, found.matched_by, found.confidence) == ("globex", "group_id", 1.0)
    assert CandidatePool([*ACCOUNTS[:-1], crm]).for_lead(
        facts_of(None, {"group_id": "crm-globex"}, registrable_domain)
    ) == [crm]
    assert candidate_keys(facts).group_id == "crm-globex"


def test_a_group_id_no_account_has_leaves_the_groups_domain_and_name_to_match() -> None:
    traits = {"company": "Northwind Traders", "company_domain": "northwind.com", "group_id": "g-unknown"}
    assert match(None, **traits) == ("northwind", "domain")


def test_a_group_id_changes_the_facts_digest_only_when_there_is_one() -> None:
    plain = facts_of("jo@acme.com", {}, registrable_domain)
    assert plain.digest() == "acme.com|||"  # as stored before group ids
    assert facts_of("jo@acme.com", {"group_id": "g1"}, registrable_domain).digest() != plain.digest()
