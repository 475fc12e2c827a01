"""Lead-to-account matching, after LeanData's approach: domains first, then company names.

Pure: the caller gives the lead's facts (`facts_of`, with the registrable-domain function)
and the candidate accounts its indexes found (`candidate_keys` says what to look up: the
domains, the normalised name, the name's blocking key), and gets the chosen account, how it
was matched and how sure the match is.

The order of evidence, strongest first:
0. `group_id`: the lead's `group_id` trait (a Tracking API `group` call's groupId) is the
   account's external id: the sender said which company it is;
1. `domain`: the registrable domain of the email (never a free-mail one), then of the
   company_domain / website trait, is one of the account's domains;
2. `name_exact` (`+country` when the countries agree too): the company name equals the
   account's once legal suffixes ("Inc", "GmbH", "S.A.") and punctuation are gone;
3. `name_close+domain` / `name_close+country`: the names are close (rapidfuzz, threshold in
   the model file) AND one supporting criterion holds: a domain with the same name under
   another suffix (acme.de for acme.com), or the same country. A close name alone never
   matches: "Acme Analytics" must not become "Acme Robotics".
Among accounts equally matched, the model's tie-breakers decide (tier, most engaged, oldest),
then the account id, so every instance chooses the same.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rapidfuzz import fuzz

from services.scoring.accounts.free_mail import FREE_MAIL_DOMAINS
from services.scoring.model import AccountMatching

# Legal-form words dropped from the end of a name ("Acme Holdings Co., Ltd." -> "acme holdings").
LEGAL_SUFFIXES = frozenset(
    {
        "inc", "incorporated", "llc", "llp", "lp", "ltd", "limited", "corp", "corporation", "co",
        "company", "plc", "gmbh", "mbh", "ag", "kg", "ug", "se", "sa", "sas", "sarl", "sl", "srl",
        "spa", "bv", "nv", "oy", "oyj", "ab", "as", "asa", "aps", "pty", "kk", "pte", "pvt",
        "lda", "ltda", "sro", "kft", "zrt", "doo", "group",
    }
)  # fmt: skip
FIRST_WORD, SECOND_WORD = 6, 2  # letters of each that a fuzzy candidate's name shares (blocking_key)

Registrable = Callable[[str], str | None]


@dataclass(frozen=True)
class LeadFacts:
    """What matching reads of a lead; no personal data beyond the employer's domain."""

    email_domain: str | None  # registrable, None for free mail or no email
    company_domain: str | None  # registrable, from the company_domain or website trait
    company_name: str | None  # normalised
    country: str | None
    free_mail: bool = False
    group_id: str | None = None  # the sender's id of the company (Segment's groupId)

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(d for d in (self.email_domain, self.company_domain) if d)

    def digest(self) -> str:
        """Unchanged facts, unchanged match: the handler re-matches only when this moves."""
        facts = (
            self.email_domain or "",
            self.company_domain or "",
            self.company_name or "",
            self.country or "",
        )
        # a group id is appended only when there is one: other leads keep the digests stored before it
        return "|".join((*facts, f"group:{self.group_id}") if self.group_id else facts)


@dataclass(frozen=True)
class AccountCandidate:
    account_id: str
    name_normalized: str
    domains: tuple[str, ...]
    country: str | None
    tier: str | None
    engaged_people: int
    created_at: datetime
    external_id: str | None = None


@dataclass(frozen=True)
class Match:
    account_id: str
    matched_by: str  # group_id, domain, name_exact, name_exact+country, name_close+domain, name_close+country
    confidence: float  # 0..1
    evidence: str  # why, for the rep (no personal data: domains and company names only)


@dataclass(frozen=True)
class CandidateKeys:
    domains: tuple[str, ...]
    name: str | None
    block: str | None
    group_id: str | None = None


def normalize_company_name(name: str | None) -> str | None:
    """Casefolded, accents and punctuation gone, '&' as 'and', legal suffixes and a leading
    'the' dropped; None when nothing is left."""
    if not name:
        return None
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()
    text = text.replace("&", " and ")
    text = re.sub(r"(?<=\b[a-z])\.(?=[a-z]\b)", "", text)  # "s.a." -> "sa.", "b.v." -> "bv."
    tokens = re.findall(r"[a-z0-9]+", text)
    while tokens and tokens[-1] in LEGAL_SUFFIXES and len(tokens) > 1:
        tokens.pop()
    if len(tokens) > 1 and tokens[0] == "the":
        tokens.pop(0)
    return " ".join(tokens) or None


def blocking_key(normalized: str | None) -> str | None:
    """The fuzzy index's key: names that may be close share it. The first letters of the first
    word and of the second ("northwind traders" -> "northw|tr"): close names at a 90% threshold
    almost always agree there, and a block stays small even where many names start alike
    ("global ...", "first ..."). A typo in those letters is missed: the price of not comparing
    every name."""
    if not normalized:
        return None
    words = normalized.split()
    if len(words[0]) < 2 and len(words) == 1:
        return None
    return words[0][:FIRST_WORD] + ("|" + words[1][:SECOND_WORD] if len(words) > 1 else "")


def facts_of(email: str | None, traits: Mapping[str, Any], registrable: Registrable) -> LeadFacts:
    email_domain = registrable(email) if email and "@" in email else None
    free = email_domain in FREE_MAIL_DOMAINS
    trait = _text(traits.get("company_domain")) or _text(traits.get("website"))
    company_domain = registrable(trait) if trait else None
    country = _text(traits.get("country"))
    return LeadFacts(
        email_domain=None if free else email_domain,
        company_domain=None if company_domain in FREE_MAIL_DOMAINS else company_domain,
        company_name=normalize_company_name(_text(traits.get("company"))),
        country=country.upper() if country and len(country) == 2 else None,
        free_mail=free,
        group_id=_text(traits.get("group_id")),
    )


def candidate_keys(facts: LeadFacts) -> CandidateKeys:
    """What to look up in the indexes: the domain map, the name map, the blocking key, the
    external id."""
    return CandidateKeys(facts.domains, facts.company_name, blocking_key(facts.company_name), facts.group_id)


class CandidatePool:
    """A batch's candidate accounts indexed by the keys that found them, so each lead is
    compared with its own few candidates, not with every candidate of the batch."""

    def __init__(self, candidates: Sequence[AccountCandidate]) -> None:
        self._by_key: dict[str, list[AccountCandidate]] = {}
        for c in candidates:
            keys = {f"d:{d}" for d in c.domains} | {f"n:{c.name_normalized}"}
            keys.add(f"b:{blocking_key(c.name_normalized)}")
            if c.external_id:
                keys.add(f"g:{c.external_id}")
            for key in keys:
                self._by_key.setdefault(key, []).append(c)

    def for_lead(self, facts: LeadFacts) -> list[AccountCandidate]:
        keys = candidate_keys(facts)
        wanted = [f"d:{d}" for d in keys.domains] + [f"n:{keys.name}", f"b:{keys.block}"]
        if keys.group_id:
            wanted.append(f"g:{keys.group_id}")
        found = {c.account_id: c for key in wanted for c in self._by_key.get(key, ())}
        return list(found.values())


def choose_account(
    facts: LeadFacts,
    candidates: Sequence[AccountCandidate],
    config: AccountMatching,
    tiers: Sequence[str] = (),
) -> Match | None:
    """The best account for the lead among the candidates, or None."""
    rank = _ranking(config, tiers)
    grouped = [c for c in candidates if facts.group_id and c.external_id == facts.group_id]
    if grouped:  # external ids are unique: one account at most
        return Match(grouped[0].account_id, "group_id", 1.0, f"group id {facts.group_id}")
    for domain, how, confidence in (
        (facts.email_domain, "email domain", 1.0),
        (facts.company_domain, "company domain", 0.95),
    ):
        if domain:
            found = [c for c in candidates if domain in c.domains]
            if found:
                best = min(found, key=rank)
                return Match(best.account_id, "domain", confidence, f"{how} {domain}")
    if not facts.company_name:
        return None
    exact = [c for c in candidates if c.name_normalized == facts.company_name]
    if exact:
        agreeing = [c for c in exact if facts.country and c.country == facts.country]
        best = min(agreeing or exact, key=rank)
        if agreeing:
            return Match(best.account_id, "name_exact+country", 0.9, _name_evidence(facts, best, "exact"))
        return Match(best.account_id, "name_exact", 0.8, _name_evidence(facts, best, "exact"))
    return _close_match(facts, candidates, config, rank)


def _close_match(
    facts: LeadFacts,
    candidates: Sequence[AccountCandidate],
    config: AccountMatching,
    rank: Callable[[AccountCandidate], tuple[Any, ...]],
) -> Match | None:
    assert facts.company_name is not None
    scored: list[tuple[float, str, AccountCandidate]] = []
    for c in candidates:
        similarity = fuzz.token_sort_ratio(facts.company_name, c.name_normalized)
        if similarity < config.name_threshold:
            continue
        support = _support(facts, c)
        if support is not None:
            scored.append((similarity, support, c))
    if not scored:
        return None
    similarity, support, best = min(scored, key=lambda s: (-s[0], s[1] != "domain", rank(s[2])))
    confidence = round(0.75 * similarity / 100, 3)
    return Match(
        best.account_id,
        f"name_close+{support}",
        confidence,
        _name_evidence(facts, best, f"{similarity:.0f}% close") + f", {support} agrees",
    )


def _support(facts: LeadFacts, account: AccountCandidate) -> str | None:
    """A domain of the same name under another suffix (acme.de ~ acme.com), else the country."""
    labels = {d.partition(".")[0] for d in facts.domains}
    if labels & {d.partition(".")[0] for d in account.domains}:
        return "domain"
    if facts.country and facts.country == account.country:
        return "country"
    return None


def _ranking(config: AccountMatching, tiers: Sequence[str]) -> Callable[[AccountCandidate], tuple[Any, ...]]:
    order = {tier: i for i, tier in enumerate(tiers)}

    def rank(c: AccountCandidate) -> tuple[Any, ...]:
        keys: list[Any] = []
        for breaker in config.tie_breakers:
            if breaker == "tier":
                keys.append(order.get(c.tier or "", len(order)))
            elif breaker == "most_engaged":
                keys.append(-c.engaged_people)
            else:
                keys.append(c.created_at)
        return (*keys, c.account_id)

    return rank


def _name_evidence(facts: LeadFacts, account: AccountCandidate, how: str) -> str:
    return f"company name '{facts.company_name}' {how} to '{account.name_normalized}'"


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
