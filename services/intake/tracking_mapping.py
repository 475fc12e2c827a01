"""Segment / RudderStack messages as intake events: the tracking plan's types, traits and
identities, or the reason a message maps to none (a failed event).

Pure. `map_message` takes one message as decoded JSON and returns the intake events it
becomes, already checked against the tracking plan and intake's limits (the handler checks
them again on the way out, with the same functions), or a `Failure` naming the rule. The
route publishes the events and records the failures; neither refuses the request.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from services.intake.domain import IntakeEvent, TrackingPlan, check_against_plan
from services.intake.event_limits import EventLimits, limit_problems
from services.intake.tracking_schemas import MessageType, TrackingMessage
from shared.config_errors import PydanticWordedConfigError
from shared.identities import ALIAS_CONFLICT
from shared.request_rules import printable
from shared.traits import employees

USER_ID_PREFIX = "user:"  # a userId that is not an email, as the anonymous id it is keyed by
_EVENT_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,100}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
REDACTED = "[redacted]"
# Property names whose values are a person's, whatever they hold (a sample never shows them).
_PERSONAL = {"email", "name", "first_name", "last_name", "full_name", "phone", "title", "ip", "address"}


class TrackMapping(BaseModel):
    """config/tracking-mapping.yaml: track event names that are not their type in snake_case."""

    model_config = ConfigDict(extra="forbid")

    version: str
    events: dict[str, str] = Field(default_factory=dict, description="event name -> tracking-plan type")
    _by_name: dict[str, str] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any) -> None:
        self._by_name = {snake_case(name): type_ for name, type_ in self.events.items()}

    def type_named(self, name: str) -> str | None:
        """The type a name is mapped to, however it is spaced or cased; else None."""
        return self._by_name.get(snake_case(name))


def unknown_types(mapping: TrackMapping, *, plan: TrackingPlan) -> list[tuple[tuple[str | int, ...], str]]:
    """The names mapped to a type the tracking plan lacks, where each one is in the file."""
    return [
        (("events", name), f"{type_!r} is not a type of the tracking plan")
        for name, type_ in mapping.events.items()
        if type_ not in plan.types
    ]


class TrackMappingError(PydanticWordedConfigError):
    what = "tracking mapping"


@dataclass(frozen=True)
class Failure:
    """Why a message became a failed event: a rule name from code, the field, a fixed text."""

    reason: str
    field: str
    detail: str


@dataclass(frozen=True)
class Rules:
    """What a message is mapped and checked against."""

    plan: TrackingPlan
    mapping: TrackMapping
    limits: EventLimits


def snake_case(name: str) -> str:
    """`Demo Request`, `demo request`, `DemoRequest` and `demo_request` are `demo_request`."""
    return _NOT_WORD.sub("_", _WORD_BREAK.sub("_", name.strip()).lower()).strip("_")


def type_of(message: TrackingMessage, mapping: TrackMapping) -> str | None:
    """The tracking-plan type a message names; None for a track event the plan lacks."""
    if message.type in ("page", "screen"):
        return "page_view"
    if message.type in ("identify", "group", "alias"):
        return "identify"
    name = message.event or ""
    return mapping.type_named(name) or snake_case(name) or None


def occurred_at(message: TrackingMessage, *, sent_at: datetime | None, received_at: datetime) -> datetime:
    """The client's time corrected for its clock's skew, as Segment does:
    `timestamp - (sentAt - receivedAt)`; without a time, when it was received."""
    at = message.timestamp or message.originalTimestamp
    if at is None:
        return received_at
    sent = message.sentAt or sent_at
    return at - (sent - received_at) if sent is not None else at


def map_message(
    raw: dict[str, Any],
    *,
    route_type: MessageType | None,
    batch_context: dict[str, Any],
    sent_at: datetime | None,
    received_at: datetime,
    rules: Rules,
) -> list[IntakeEvent] | Failure:
    """The intake events a message becomes, or why it becomes none."""
    if route_type is not None:
        raw = {**raw, "type": route_type}
    try:
        message = TrackingMessage.model_validate(raw)
    except ValidationError as exc:
        return _pydantic_failure(exc)
    if not message.userId and not message.anonymousId:
        return Failure("identity_required", "userId", "a message needs a userId or an anonymousId")
    type_ = type_of(message, rules.mapping)
    if type_ is None or type_ not in rules.plan.types:
        return Failure("unmapped_event", "event", "the event maps to no tracking-plan type")
    context = {**batch_context, **message.context}
    traits = traits_of({**_mapping(context.get("traits")), **message.traits})
    if message.type == "group":
        traits = company_traits(message.traits)
        if message.groupId:
            traits["group_id"] = message.groupId
    identities = identities_of(message, traits.pop("email", None))
    if isinstance(identities, Failure):
        return identities
    when = occurred_at(message, sent_at=sent_at, received_at=received_at)
    properties = properties_of(message, context)
    events = []
    for index, (email, anonymous_id, previous_id) in enumerate(identities):
        body = {
            "event_id": event_id_of(message.messageId, index),
            "type": type_,
            "occurred_at": when,
            "email": email,
            "anonymous_id": anonymous_id,
            "previous_id": previous_id,
            "traits": traits,
            "properties": properties,
        }
        checked = _checked(body, rules, now=received_at)
        if isinstance(checked, Failure):
            return checked
        events.append(checked)
    return events


Identities = tuple[str | None, str | None, str | None]  # an event's email, anonymous id, previous id


def identities_of(message: TrackingMessage, trait_email: Any) -> list[Identities] | Failure:
    """(email, anonymous id, previous id) of each event the message becomes.

    The person is the email of the traits, else the userId (an email itself, or an opaque id
    keyed as `user:<id>`); the anonymousId links earlier anonymous history. An identify that
    names both an opaque userId and another identity becomes two events, the second keyed by
    the userId, so that later messages carrying only the userId find the same person. Without
    an email to join them, the second names the anonymousId as its previous id (an alias); with
    one it does not, so a shared device (another person's email) is no alias conflict.
    """
    user = message.userId
    email = trait_email if isinstance(trait_email, str) and trait_email.strip() else None
    if email is None and user and _EMAIL.match(user):
        email, user = user, None
    user_key = f"{USER_ID_PREFIX}{user}" if user else None
    if message.type == "alias":
        return alias_identities(message, email=email, user_key=user_key)
    anonymous = message.anonymousId or user_key
    pairs: list[Identities] = [(email, anonymous, None)]
    if message.type == "identify" and user_key and user_key != anonymous:
        pairs.append((email, user_key, None if email else anonymous))
    return pairs


def alias_identities(
    message: TrackingMessage, *, email: str | None, user_key: str | None
) -> list[Identities] | Failure:
    """An alias links the previousId to the new id (the userId, else the anonymousId). The
    previousId was an anonymousId or an earlier userId, which cannot be told apart: one event
    names it as each (`<id>` and `user:<id>`). An email previousId is the person's email; two
    different emails are two people, which an alias does not merge (`alias_conflict`)."""
    previous = message.previousId
    if not previous:
        return Failure("alias_needs_previous_id", "previousId", "an alias links a previousId to the userId")
    current = user_key or message.anonymousId
    if _EMAIL.match(previous):
        if email is not None and email.strip().lower() != previous.strip().lower():
            return Failure(ALIAS_CONFLICT, "previousId", "an alias cannot make two emails one person")
        return [(previous, message.anonymousId, user_key)]
    forms = [previous, f"{USER_ID_PREFIX}{previous}"]
    if user_key and message.anonymousId and message.anonymousId not in forms:
        forms.append(message.anonymousId)  # the browser's id, when the alias names the userId
    return [(email, current, form) for form in forms if form != current]


_TRAIT_NAMES = {
    "firstName": "first_name",
    "lastName": "last_name",
    "companyDomain": "company_domain",
    "companySize": "company_size",
    "employees": "company_size",
}
_NAMED = {"first_name", "last_name", "title", "company", "company_domain", "company_size"}
_NAMED |= {"industry", "country", "phone", "department", "channel", "email", "group_id"}


def traits_of(raw: dict[str, Any]) -> dict[str, Any]:
    """Segment's traits as leadflow's (`firstName` → `first_name`, `name` split, the company
    object's fields); other scalar traits are kept as custom traits."""
    traits: dict[str, Any] = {}
    for key, value in raw.items():
        name = _TRAIT_NAMES.get(key, key)
        if key == "company" and isinstance(value, dict):
            traits.update({k: v for k, v in company_traits(value).items() if k not in traits})
        elif key == "address" and isinstance(value, dict):
            traits.setdefault("country", value.get("country"))
        elif _scalar(value) and name != "name":
            traits[name] = value
    full_name = raw.get("name")
    if isinstance(full_name, str) and not traits.get("first_name") and not traits.get("last_name"):
        first, _, last = full_name.strip().partition(" ")
        traits.update(first_name=first or None, last_name=last.strip() or None)
    return _fitted({k: v for k, v in traits.items() if v is not None})


def company_traits(raw: dict[str, Any]) -> dict[str, Any]:
    """A group's (or a `company` object's) traits as the person's company traits."""
    domain = raw.get("domain") or raw.get("company_domain") or _host(raw.get("website"))
    size = raw.get("employees", raw.get("employee_count", raw.get("company_size")))
    traits = {
        "company": raw.get("name") or raw.get("company"),
        "company_domain": domain,
        "company_size": size,
        "industry": raw.get("industry"),
    }
    return _fitted({k: v for k, v in traits.items() if v is not None and _scalar(v)})


def _fitted(traits: dict[str, Any]) -> dict[str, Any]:
    """Named traits in the types leadflow stores: a size as a number, a country as its code."""
    if "company_size" in traits:
        traits["company_size"] = employees(traits["company_size"])
    country = traits.get("country")
    if isinstance(country, str) and len(country.strip()) != 2:
        traits["country_name"] = traits.pop("country")
    elif isinstance(country, str):
        traits["country"] = country.strip().upper()
    return {k: v for k, v in traits.items() if v is not None and (k in _NAMED or _scalar(v))}


def properties_of(message: TrackingMessage, context: dict[str, Any]) -> dict[str, Any]:
    """Scalar properties (nested objects flattened as `a_b`, lists left out), the page's URL,
    the page or screen name, and the campaign as `campaign`, `source` and `utm_*`."""
    properties = _flat(message.properties)
    page = _mapping(context.get("page"))
    for key in ("url", "path", "title", "referrer"):
        if properties.get(key) in (None, "") and _scalar(page.get(key)) and page.get(key) is not None:
            properties[key] = page[key]
    if message.type in ("page", "screen") and message.name:
        properties.setdefault("name", message.name)
    if message.type == "screen" and properties.get("url") in (None, ""):
        properties["url"] = f"screen:{message.name or ''}"
    if message.type == "group" and message.groupId:
        properties.setdefault("group_id", message.groupId)
    campaign = _mapping(context.get("campaign"))
    for key, value in campaign.items():
        if _scalar(value) and value is not None:
            properties.setdefault(f"utm_{'campaign' if key == 'name' else key}", value)
    if campaign.get("name") is not None:
        properties.setdefault("campaign", campaign["name"])
    if campaign.get("source") is not None:
        properties.setdefault("source", campaign["source"])
    return properties


def event_id_of(message_id: str | None, index: int) -> str | None:
    """`messageId` as the idempotency key; a second event of the message gets a suffix; an id
    intake would not take (characters, length) is hashed, the same way each time."""
    if message_id is None:
        return None
    base = message_id if _EVENT_ID.match(message_id) else f"msg:{_digest(message_id)}"
    return base if index == 0 else f"{base}:{index}"


def redact(raw: Any) -> dict[str, Any]:
    """A sample of a failed message with nothing personal: identities, traits and the address
    redacted, texts that hold an `@` redacted, URLs without their query, texts cut short."""
    if not isinstance(raw, dict):
        return {"message": REDACTED}
    sample: dict[str, Any] = {}
    for key in ("type", "event", "name", "messageId", "timestamp", "originalTimestamp", "sentAt"):
        if key in raw:
            sample[key] = _plain(raw[key])
    for key in ("userId", "anonymousId", "previousId", "groupId"):
        if raw.get(key) is not None:
            sample[key] = REDACTED
    if isinstance(raw.get("traits"), dict):
        sample["traits"] = {_plain(k): REDACTED for k in list(raw["traits"])[:50]}
    if isinstance(raw.get("properties"), dict):
        sample["properties"] = {
            _plain(k): REDACTED if snake_case(str(k)) in _PERSONAL else _plain(v)
            for k, v in list(raw["properties"].items())[:50]
        }
    context = raw.get("context")
    if isinstance(context, dict):
        sample["context"] = {
            key: {_plain(k): _plain(v) for k, v in list(context[key].items())[:20]}
            for key in ("library", "page", "campaign")
            if isinstance(context.get(key), dict)
        }
    return sample


def _checked(body: dict[str, Any], rules: Rules, *, now: datetime) -> IntakeEvent | Failure:
    try:
        event = IntakeEvent.model_validate(body)
    except ValidationError as exc:
        return _pydantic_failure(exc)
    errors = check_against_plan(event, rules.plan, now=now) or limit_problems(event, rules.limits, now=now)
    if errors:
        first = errors[0]
        return Failure(first.rule, first.field, first.message)
    return event


def _pydantic_failure(exc: ValidationError) -> Failure:
    error = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(part) for part in error["loc"]) or "message"
    return Failure(error["type"], printable(field)[:200], error["msg"][:200])


def _flat(values: dict[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth < 3:
            flat.update(_flat(value, f"{name}_", depth + 1))
        elif _scalar(value):
            flat[name] = value
    return flat


def _plain(value: Any) -> Any:
    """A value fit for a sample: personal-looking text redacted, storable, short."""
    if isinstance(value, str):
        if "@" in value:
            return REDACTED
        if value.startswith(("http://", "https://")):
            parts = urlsplit(value)
            value = f"{parts.scheme}://{parts.netloc}{parts.path}"
        return printable(value)[:200]
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if -(2**53) <= value <= 2**53 else str(value)
    return f"[{type(value).__name__}]"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _host(url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    host = urlsplit(url if "//" in url else f"//{url}").hostname
    return host.removeprefix("www.") if host else None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]
