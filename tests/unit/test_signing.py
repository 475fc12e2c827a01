"""Webhook signatures: a sales tool can tell a leadflow webhook from a forgery or a replay."""

import hashlib
import hmac
from datetime import timedelta

import pytest

from shared.signing import (
    SIGNATURE_HEADER,
    retry_delays,
    sign,
    sign_with_each,
    verify,
)

SECRET = "whsec_current"
OLD_SECRET = "whsec_previous"
BODY = b'{"type":"handoff.created","data":{"handoff_id":"h1"}}'
SENT_AT = 1_780_000_000


def test_the_header_is_named_like_stripes():
    assert SIGNATURE_HEADER == "Leadflow-Signature"


def test_the_signature_is_an_hmac_of_the_timestamp_and_the_body():
    expected = hmac.new(SECRET.encode(), f"{SENT_AT}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, timestamp=SENT_AT) == f"t={SENT_AT},v1={expected}"


def test_a_signed_body_verifies():
    header = sign(SECRET, BODY, timestamp=SENT_AT)
    assert verify(SECRET, BODY, header, now=SENT_AT + 5)


def test_a_tampered_body_does_not_verify():
    header = sign(SECRET, BODY, timestamp=SENT_AT)
    assert not verify(SECRET, BODY.replace(b"h1", b"h2"), header, now=SENT_AT)


def test_a_signature_made_with_another_secret_does_not_verify():
    header = sign("whsec_attacker", BODY, timestamp=SENT_AT)
    assert not verify(SECRET, BODY, header, now=SENT_AT)


def test_a_changed_timestamp_does_not_verify():
    header = sign(SECRET, BODY, timestamp=SENT_AT).replace(f"t={SENT_AT}", f"t={SENT_AT + 60}")
    assert not verify(SECRET, BODY, header, now=SENT_AT + 60)


@pytest.mark.parametrize("age", [301, -301, 86_400])
def test_a_timestamp_outside_the_tolerance_is_refused_as_a_replay_or_skew(age: int):
    header = sign(SECRET, BODY, timestamp=SENT_AT)
    assert not verify(SECRET, BODY, header, now=SENT_AT + age)


@pytest.mark.parametrize("age", [0, 300, -300])
def test_a_timestamp_within_the_tolerance_is_accepted(age: int):
    header = sign(SECRET, BODY, timestamp=SENT_AT)
    assert verify(SECRET, BODY, header, now=SENT_AT + age)


def test_the_tolerance_can_be_tightened():
    header = sign(SECRET, BODY, timestamp=SENT_AT)
    assert not verify(SECRET, BODY, header, now=SENT_AT + 61, tolerance_s=60)


GOOD = sign(SECRET, BODY, timestamp=SENT_AT)
DIGEST = GOOD.split("v1=")[1]


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"v1={DIGEST}",  # no timestamp
        f"t={SENT_AT}",  # no signature
        f"t=,v1={DIGEST}",
        f"t=soon,v1={DIGEST}",
        f"t=-{SENT_AT},v1={DIGEST}",
        f"t={SENT_AT},t={SENT_AT},v1={DIGEST}",  # two timestamps
        f"t={SENT_AT},v1={DIGEST[:-1]}",  # truncated
        f"t={SENT_AT},v1={DIGEST[:-1]}é",  # non-ASCII
        f"t={SENT_AT},v1={DIGEST},",  # trailing comma
        f"t={SENT_AT};v1={DIGEST}",
    ],
)
def test_a_malformed_header_is_refused(header: str):
    assert not verify(SECRET, BODY, header, now=SENT_AT)


def test_spaces_and_upper_case_hex_are_tolerated():
    assert verify(SECRET, BODY, f"t={SENT_AT}, v1={DIGEST.upper()}", now=SENT_AT)


def test_entries_of_other_schemes_are_ignored():
    assert verify(SECRET, BODY, f"t={SENT_AT},v0=legacy,{GOOD.split(',')[1]}", now=SENT_AT)


def test_during_a_rotation_the_header_carries_both_signatures_and_either_secret_verifies():
    header = sign_with_each([OLD_SECRET, SECRET], BODY, timestamp=SENT_AT)
    assert header.count("v1=") == 2
    assert verify(OLD_SECRET, BODY, header, now=SENT_AT)
    assert verify(SECRET, BODY, header, now=SENT_AT)
    assert not verify("whsec_other", BODY, header, now=SENT_AT)


def test_an_empty_secret_is_a_configuration_mistake():
    with pytest.raises(ValueError, match="secret"):
        sign("", BODY, timestamp=SENT_AT)
    with pytest.raises(ValueError, match="secret"):
        verify("", BODY, GOOD, now=SENT_AT)


def test_retries_back_off_exponentially_up_to_an_hour():
    delays = retry_delays()
    assert delays[:4] == [timedelta(seconds=s) for s in (10, 20, 40, 80)]
    assert max(delays) == timedelta(hours=1)
    assert delays == sorted(delays)


def test_retries_add_up_to_at_most_24_hours_and_use_most_of_them():
    delays = retry_delays()
    total = sum(delays, timedelta(0))
    assert total <= timedelta(hours=24)
    assert timedelta(hours=24) - total < timedelta(hours=1)  # one more wait would pass the day


def test_a_retry_schedule_follows_its_parameters():
    delays = retry_delays(
        max_age=timedelta(minutes=10), first=timedelta(minutes=1), factor=3, cap=timedelta(minutes=5)
    )
    assert delays == [timedelta(minutes=m) for m in (1, 3, 5)]  # capped at 5; another 5 would make 14
    assert retry_delays(max_age=timedelta(seconds=5)) == []


def test_a_retry_schedule_that_would_never_end_is_refused():
    with pytest.raises(ValueError):
        retry_delays(first=timedelta(0))
    with pytest.raises(ValueError):
        retry_delays(factor=0.5)
