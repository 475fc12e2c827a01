"""Business hours: SLA time only runs while the team is at work, in the team's own timezone."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pydantic
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from services.handoff.business_hours import BusinessCalendar, add_business_time, business_time_between

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOURS = timedelta(hours=1)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def calendar(
    timezone: str = "Europe/Berlin",
    day: list[list[str]] | None = None,
    days: tuple[str, ...] = WEEKDAYS,
    holidays: tuple[date, ...] = (),
) -> BusinessCalendar:
    spans = day or [["09:00", "17:00"]]
    return BusinessCalendar.model_validate(
        {
            "name": "team",
            "timezone": timezone,
            "weekly_hours": {d: spans for d in days},
            "holidays": list(holidays),
        }
    )


OFFICE = calendar()
LUNCH_BREAK = calendar(day=[["09:00", "12:30"], ["13:30", "17:00"]])


def berlin(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BERLIN)


def local(at: datetime, zone: ZoneInfo = BERLIN) -> datetime:
    return at.astimezone(zone).replace(tzinfo=None)


# --- The contract ---------------------------------------------------------------------------


def test_an_mql_late_on_friday_with_two_business_hours_is_due_monday_morning():
    friday = berlin(2026, 6, 12, 16, 30)
    due = add_business_time(OFFICE, friday, 2 * HOURS)
    assert local(due) == datetime(2026, 6, 15, 10, 30)


def test_deadlines_come_back_in_utc_whatever_timezone_went_in():
    friday_in_utc = datetime(2026, 6, 12, 14, 30, tzinfo=UTC)  # 16:30 in Berlin
    due = add_business_time(OFFICE, friday_in_utc, 2 * HOURS)
    assert due.tzinfo is UTC
    assert due == datetime(2026, 6, 15, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "due"),
    [
        (berlin(2026, 6, 9, 7, 0), datetime(2026, 6, 9, 10, 0)),  # Tuesday before opening
        (berlin(2026, 6, 9, 18, 0), datetime(2026, 6, 10, 10, 0)),  # Tuesday after closing
        (berlin(2026, 6, 13, 12, 0), datetime(2026, 6, 15, 10, 0)),  # Saturday
        (berlin(2026, 6, 12, 17, 0), datetime(2026, 6, 15, 10, 0)),  # Friday at closing time
    ],
)
def test_a_start_outside_business_hours_counts_from_the_next_opening(start: datetime, due: datetime):
    assert local(add_business_time(OFFICE, start, HOURS)) == due


def test_a_holiday_is_skipped():
    whit_monday = date(2026, 5, 25)
    team = calendar(holidays=(whit_monday,))
    friday = berlin(2026, 5, 22, 16, 0)
    assert local(add_business_time(team, friday, 2 * HOURS)) == datetime(2026, 5, 26, 10, 0)


def test_hours_that_stop_for_lunch_are_respected():
    before_lunch = berlin(2026, 6, 9, 12, 0)
    assert local(add_business_time(LUNCH_BREAK, before_lunch, HOURS)) == datetime(2026, 6, 9, 14, 0)


def test_a_start_during_lunch_counts_from_the_afternoon_opening():
    at_lunch = berlin(2026, 6, 9, 13, 0)
    assert local(add_business_time(LUNCH_BREAK, at_lunch, HOURS)) == datetime(2026, 6, 9, 14, 30)


def test_a_zero_duration_at_an_open_instant_is_the_start_itself():
    start = berlin(2026, 6, 9, 11, 15, 42)
    assert add_business_time(OFFICE, start, timedelta(0)) == start


def test_a_deadline_that_uses_up_the_day_ends_at_closing_time_not_the_next_opening():
    start = berlin(2026, 6, 12, 16, 0)
    assert local(add_business_time(OFFICE, start, HOURS)) == datetime(2026, 6, 12, 17, 0)


def test_business_time_between_counts_only_opening_hours():
    friday, monday = berlin(2026, 6, 12, 16, 30), berlin(2026, 6, 15, 10, 30)
    assert business_time_between(OFFICE, friday, monday) == 2 * HOURS
    assert business_time_between(LUNCH_BREAK, berlin(2026, 6, 9, 8), berlin(2026, 6, 9, 20)) == 7 * HOURS


def test_business_time_between_is_negative_when_the_end_comes_first():
    friday, monday = berlin(2026, 6, 12, 16, 30), berlin(2026, 6, 15, 10, 30)
    assert business_time_between(OFFICE, monday, friday) == -2 * HOURS


# --- Daylight saving: business hours are local wall-clock hours ------------------------------
# 2026: Europe/Berlin springs forward on 29 March and falls back on 25 October;
# America/New_York springs forward on 8 March and falls back on 1 November.


@pytest.mark.parametrize(
    ("timezone", "friday", "monday_utc"),
    [
        ("Europe/Berlin", date(2026, 3, 27), datetime(2026, 3, 30, 8, 30, tzinfo=UTC)),  # CET -> CEST
        ("Europe/Berlin", date(2026, 10, 23), datetime(2026, 10, 26, 9, 30, tzinfo=UTC)),  # CEST -> CET
        ("America/New_York", date(2026, 3, 6), datetime(2026, 3, 9, 14, 30, tzinfo=UTC)),  # EST -> EDT
        ("America/New_York", date(2026, 10, 30), datetime(2026, 11, 2, 15, 30, tzinfo=UTC)),  # EDT -> EST
    ],
)
def test_a_deadline_across_a_daylight_saving_weekend_lands_at_the_same_local_wall_time(
    timezone: str, friday: date, monday_utc: datetime
):
    zone = ZoneInfo(timezone)
    team = calendar(timezone)
    start = datetime.combine(friday, time(16, 30), tzinfo=zone)
    due = add_business_time(team, start, 2 * HOURS)
    assert due == monday_utc
    assert local(due, zone) == datetime.combine(friday + timedelta(days=3), time(10, 30))
    assert business_time_between(team, start, due) == 2 * HOURS


NIGHT_SHIFT = calendar(day=[["01:00", "04:00"]], days=("sun",))


def test_on_a_spring_forward_night_the_skipped_hour_is_not_worked():
    [(opens, closes)] = NIGHT_SHIFT.opening_hours(date(2026, 3, 29))
    assert closes - opens == 2 * HOURS


def test_on_a_fall_back_night_the_repeated_hour_is_worked():
    [(opens, closes)] = NIGHT_SHIFT.opening_hours(date(2026, 10, 25))
    assert closes - opens == 4 * HOURS


def test_an_opening_time_the_clocks_skip_means_the_moment_they_jump():
    team = calendar(day=[["02:30", "04:00"]], days=("sun",))
    [(opens, closes)] = team.opening_hours(date(2026, 3, 29))  # 02:00 -> 03:00 that night
    assert local(opens) == datetime(2026, 3, 29, 3, 0)
    assert closes - opens == HOURS


def test_an_opening_time_the_clocks_show_twice_means_its_first_occurrence():
    team = calendar(day=[["02:30", "04:00"]], days=("sun",))
    [(opens, closes)] = team.opening_hours(date(2026, 10, 25))  # 03:00 -> 02:00 that night
    assert opens == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 summer time
    assert closes - opens == timedelta(hours=2, minutes=30)


def test_hours_wholly_inside_a_skipped_hour_vanish_that_night():
    team = calendar(day=[["02:10", "02:50"], ["09:00", "17:00"]], days=("sun",))
    assert len(team.opening_hours(date(2026, 3, 29))) == 1
    assert len(team.opening_hours(date(2026, 3, 22))) == 2


# --- Properties -------------------------------------------------------------------------------

CALENDARS = [
    calendar(day=[["09:00", "12:30"], ["13:30", "17:30"]], holidays=(date(2026, 4, 3), date(2026, 12, 25))),
    # Night hours in New York cross both of its daylight-saving changes.
    calendar("America/New_York", day=[["00:30", "03:30"], ["22:00", "23:45"]], days=("sun", "mon", "sat")),
]
instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30))


@given(team=st.sampled_from(CALENDARS), start=instants, first=durations, second=durations)
def test_a_longer_duration_never_ends_earlier(
    team: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
):
    shorter, longer = sorted((first, second))
    assert add_business_time(team, start, shorter) <= add_business_time(team, start, longer)


@given(team=st.sampled_from(CALENDARS), raw_start=instants, duration=durations)
def test_business_time_between_undoes_add_business_time_for_starts_within_hours(
    team: BusinessCalendar, raw_start: datetime, duration: timedelta
):
    start = add_business_time(team, raw_start, timedelta(0))  # the first open instant from raw_start
    assert business_time_between(team, start, add_business_time(team, start, duration)) == duration


@given(team=st.sampled_from(CALENDARS), start=instants, duration=durations)
def test_business_time_between_undoes_add_business_time_from_any_start(
    team: BusinessCalendar, start: datetime, duration: timedelta
):
    assert business_time_between(team, start, add_business_time(team, start, duration)) == duration


@given(
    team=st.sampled_from(CALENDARS),
    start=instants,
    gap=st.timedeltas(-timedelta(days=30), timedelta(days=30)),
)
def test_business_time_never_exceeds_elapsed_time(team: BusinessCalendar, start: datetime, gap: timedelta):
    end = start + gap
    between = business_time_between(team, start, end)
    assert abs(between) <= abs(gap)
    assert between == timedelta(0) or (between > timedelta(0)) == (end > start)


# --- Speed ------------------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [timedelta(hours=2080), timedelta(days=365)])
def test_a_year_long_duration_reads_each_calendar_day_once(duration: timedelta, monkeypatch):
    # Work, not wall-clock time (a timed test fails on a busy machine): each function reads a
    # day's opening hours once, whole, instead of stepping through it minute by minute.
    days_read: list[date] = []
    opening_hours = BusinessCalendar.opening_hours

    def counted(calendar: BusinessCalendar, day: date) -> list[tuple[datetime, datetime]]:
        days_read.append(day)
        return opening_hours(calendar, day)

    monkeypatch.setattr(BusinessCalendar, "opening_hours", counted)
    start = berlin(2026, 1, 5, 9, 0)
    due = add_business_time(OFFICE, start, duration)
    spent = business_time_between(OFFICE, start, due)
    assert spent == duration
    calendar_days = (due.date() - start.date()).days + 1
    assert len(days_read) <= 2 * (calendar_days + 1)
    assert len(set(days_read)) <= calendar_days + 1


# --- Refusals ---------------------------------------------------------------------------------


def test_naive_datetimes_and_negative_durations_are_refused():
    with pytest.raises(ValueError, match="no timezone"):
        add_business_time(OFFICE, datetime(2026, 6, 9, 10, 0), HOURS)
    with pytest.raises(ValueError, match="negative"):
        add_business_time(OFFICE, berlin(2026, 6, 9, 10, 0), -HOURS)


def load(text: str) -> BusinessCalendar:
    return BusinessCalendar.model_validate(yaml.safe_load(text))


def test_a_calendar_reads_from_yaml_with_anchors_and_holidays():
    team = load(
        "name: emea\n"
        "timezone: Europe/Berlin\n"
        "weekly_hours:\n"
        '  mon: &day [["09:00", "12:30"], ["13:30", "17:30"]]\n'
        "  fri: *day\n"
        "holidays: [2026-12-25]\n"
    )
    assert team.weekly_hours["mon"] == [(time(9), time(12, 30)), (time(13, 30), time(17, 30))]
    assert team.holidays == [date(2026, 12, 25)]
    assert team.opening_hours(date(2026, 12, 25)) == []


@pytest.mark.parametrize(
    ("weekly_hours", "problem"),
    [
        ('{mon: [["17:00", "09:00"]]}', "must open before it closes"),
        ('{mon: [["09:00", "09:00"]]}', "must open before it closes"),
        ('{mon: [["09:00", "13:00"], ["12:00", "17:00"]]}', "in order and not overlap"),
        ('{mon: [["13:00", "17:00"], ["09:00", "12:00"]]}', "in order and not overlap"),
        ('{mon: [["09:00", 17:30]]}', "quote times"),
        ('{mon: [["9 am", "5 pm"]]}', "local time like"),
        ('{mon: [["09:00", "24:00"]]}', "local time like"),
        ('{monday: [["09:00", "17:00"]]}', "monday"),
        ("{mon: [], sat: []}", "no opening hours"),
    ],
)
def test_bad_weekly_hours_are_refused_saying_why(weekly_hours: str, problem: str):
    with pytest.raises(pydantic.ValidationError) as refused:
        load(f"name: team\ntimezone: Europe/Berlin\nweekly_hours: {weekly_hours}\n")
    assert problem in str(refused.value)


def test_an_unknown_timezone_is_refused():
    with pytest.raises(pydantic.ValidationError, match="unknown IANA timezone 'Europe/Berln'"):
        load('name: team\ntimezone: Europe/Berln\nweekly_hours: {mon: [["09:00", "17:00"]]}\n')


def test_a_calendar_cannot_be_changed_once_loaded():
    with pytest.raises(pydantic.ValidationError):
        OFFICE.timezone = "UTC"
