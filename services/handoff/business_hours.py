"""Business-hours calendars: when a team works, and how much working time lies between two instants.

Opening hours are local wall-clock times in the calendar's timezone, so "09:00-17:00" stays
09:00-17:00 on both sides of a daylight-saving change. Business time is real elapsed time
inside opening hours. Datetimes go in timezone-aware and come out in UTC.

Daylight saving only bites for hours set in the night (about 01:00-03:00). One rule covers it:
an opening or closing time means the first instant the local clock reads that time or later.
So a time the clocks skip (02:30 on a spring-forward night) means the moment they jump
(03:00), and a time the clocks show twice (fall back) means its first occurrence; a repeated
hour inside opening hours is worked, so it counts.
"""

import re
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
from pydantic import BeforeValidator, Field, PrivateAttr, field_validator, model_validator

_ONE_DAY = timedelta(days=1)
_ONE_SECOND = timedelta(seconds=1)
_WALL_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @classmethod
    def of(cls, day: date) -> "Weekday":
        return _WEEK[day.weekday()]


_WEEK = tuple(Weekday)


def _wall_time(value: Any) -> Any:
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise ValueError("opening hours are local wall-clock times; drop the UTC offset")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 17:30 as the base-60 number 1050, while 09:30 stays a string.
        raise ValueError('YAML read this time as a number; quote times, e.g. "17:30"')
    match = _WALL_TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError('must be a local time like "09:00" or "17:30"')
    hour, minute, second = match.groups()
    return time(int(hour), int(minute), int(second or 0))


WallTime = Annotated[time, BeforeValidator(_wall_time)]


class BusinessCalendar(pydantic.BaseModel):
    """A team's working week in its own timezone, minus holidays."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    timezone: str
    # Days left out are closed; each day's spans are [open, close) and must be in order.
    weekly_hours: dict[Weekday, list[tuple[WallTime, WallTime]]]
    # Whole days closed, as dates in the calendar's timezone.
    holidays: list[date] = []

    _zone: ZoneInfo = PrivateAttr()
    _closed: frozenset[date] = PrivateAttr()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone {value!r} (e.g. Europe/Berlin)") from None
        return value

    @field_validator("weekly_hours")
    @classmethod
    def _spans_in_order(
        cls, value: dict[Weekday, list[tuple[time, time]]]
    ) -> dict[Weekday, list[tuple[time, time]]]:
        for day, spans in value.items():
            for opens, closes in spans:
                if opens >= closes:
                    raise ValueError(f"{day}: {opens:%H:%M}-{closes:%H:%M} must open before it closes")
            for (_, closes), (opens, _) in pairwise(spans):
                if opens < closes:
                    raise ValueError(
                        f"{day}: spans must be in order and not overlap ({closes:%H:%M} > {opens:%H:%M})"
                    )
        return value

    @model_validator(mode="after")
    def _open_some_day(self) -> Self:
        # Without any opening hours no deadline could ever be reached.
        if not any(self.weekly_hours.values()):
            raise ValueError(f"calendar {self.name!r} has no opening hours on any day")
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._zone = ZoneInfo(self.timezone)
        self._closed = frozenset(self.holidays)

    def opening_hours(self, day: date) -> list[tuple[datetime, datetime]]:
        """The spans open on local date `day`, as UTC instants; empty on holidays and closed days."""
        if day in self._closed:
            return []
        spans = self.weekly_hours.get(Weekday.of(day), [])
        instants = [(self._instant(day, opens), self._instant(day, closes)) for opens, closes in spans]
        # A span lying wholly in a skipped hour vanishes on that night.
        return [(opens, closes) for opens, closes in instants if opens < closes]

    def local_date(self, at: datetime) -> date:
        return _utc(at).astimezone(self._zone).date()

    def _instant(self, day: date, wall: time) -> datetime:
        """The first instant the local clock reads `wall` or later on `day` (see the module doc)."""
        naive = datetime.combine(day, wall)
        first = naive.replace(tzinfo=self._zone).astimezone(UTC)  # fold=0: the first occurrence
        if first.astimezone(self._zone).replace(tzinfo=None) == naive:
            return first
        return self._jump_before(naive.replace(tzinfo=self._zone, fold=1).astimezone(UTC), first)

    def _jump_before(self, before: datetime, after: datetime) -> datetime:
        """When the clocks jumped, knowing it was after `before` and at or before `after`.

        zoneinfo does not expose transitions; bisecting takes ~13 steps and only runs for
        times a spring-forward skips. Transitions fall on whole seconds.
        """
        offset_after = after.astimezone(self._zone).utcoffset()
        while after - before > _ONE_SECOND:
            middle = before + timedelta(seconds=(after - before).total_seconds() // 2)
            if middle.astimezone(self._zone).utcoffset() == offset_after:
                after = middle
            else:
                before = middle
        return after


def add_business_time(calendar: BusinessCalendar, start: datetime, duration: timedelta) -> datetime:
    """The instant `duration` of opening hours after `start` (UTC).

    A start outside opening hours counts from the next opening; a duration that ends exactly
    at a closing time ends there, not at the next opening.
    """
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, got {duration}")
    now, remaining = _utc(start), duration
    day = calendar.local_date(now)
    # Ends: the validator guarantees opening hours every week, and holidays are finite.
    while True:
        for opens, closes in calendar.opening_hours(day):
            if closes <= now:
                continue
            begin = max(opens, now)
            if remaining <= closes - begin:
                return begin + remaining
            remaining -= closes - begin
        day += _ONE_DAY


def business_time_between(calendar: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """Opening hours between `start` and `end`: how much of an SLA is used. Negative if `end` < `start`."""
    begin, finish = _utc(start), _utc(end)
    if finish < begin:
        return -business_time_between(calendar, end, start)
    total = timedelta(0)
    day, last = calendar.local_date(begin), calendar.local_date(finish)
    while day <= last:
        for opens, closes in calendar.opening_hours(day):
            total += max(timedelta(0), min(closes, finish) - max(opens, begin))
        day += _ONE_DAY
    return total


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} has no timezone; business time needs aware datetimes")
    return at.astimezone(UTC)
