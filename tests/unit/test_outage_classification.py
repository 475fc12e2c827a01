"""Which errors are a dependency outage (503, retry the batch) and which are our fault or a bad
message (500, dead-letter): decided on the error itself and on the driver error it wraps."""

from __future__ import annotations

import asyncpg
import orjson
import pytest
from aiokafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordTooLargeError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.consumer import dead_letter_reference, is_transient
from shared.outages import DependencyUnavailable, is_outage


def wrapped(driver_error: Exception) -> DBAPIError:
    """An asyncpg error as SQLAlchemy hands it over."""
    return DBAPIError("SELECT 1", {}, driver_error)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(),
        FileNotFoundError(2, "No such file or directory"),  # the Unix socket of a stopped server
        OSError(113, "No route to host"),
        TimeoutError(),  # asyncpg's connect and command timeouts
        PoolTimeout("QueuePool limit reached"),
        DependencyUnavailable("Kafka did not acknowledge"),
        wrapped(asyncpg.AdminShutdownError("terminating connection due to administrator command")),  # 57P01
        wrapped(asyncpg.CrashShutdownError("crash")),  # 57P02
        wrapped(asyncpg.CannotConnectNowError("the database system is shutting down")),  # 57P03
        wrapped(asyncpg.QueryCanceledError("canceling statement due to statement timeout")),  # 57014
        wrapped(asyncpg.ConnectionDoesNotExistError("connection was closed")),  # 08003
        wrapped(asyncpg.TooManyConnectionsError("too many clients")),  # 53300
        KafkaConnectionError(),
        KafkaTimeoutError(),
        RequestTimedOutError(),
    ],
)
def test_a_dependency_that_is_down_or_too_slow_is_an_outage(error: Exception) -> None:
    assert is_outage(error)
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("no model for this event"),
        KeyError("lead_id"),
        wrapped(asyncpg.UniqueViolationError("duplicate key")),
        IntegrityError("INSERT", {}, asyncpg.NotNullViolationError("null value")),
        ProgrammingError("SELECT", {}, asyncpg.UndefinedTableError('relation "x" does not exist')),
    ],
)
def test_a_bad_request_or_a_bug_is_not_an_outage(error: Exception) -> None:
    assert not is_outage(error)
    assert not is_transient(error)


def test_a_serialization_failure_is_retried_but_is_not_an_outage() -> None:
    conflict = wrapped(asyncpg.SerializationError("could not serialize access"))
    assert is_transient(conflict)
    assert not is_outage(conflict)


@pytest.mark.parametrize("error", [NotLeaderForPartitionError(), KafkaConnectionError(), KafkaTimeoutError()])
def test_kafka_errors_a_retry_can_fix_are_transient(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [MessageSizeTooLargeError(), RecordTooLargeError(), InvalidTopicError(), TopicAuthorizationFailedError()],
)
def test_kafka_errors_no_retry_fixes_are_not_retried(error: Exception) -> None:
    assert not is_transient(error)


def test_a_dead_letter_reference_says_where_the_record_is_and_why_without_its_content() -> None:
    reference = orjson.loads(
        dead_letter_reference(
            topic="lead.events",
            partition=2,
            offset=41,
            size=5_242_880,
            key=b"ada@northwind.example" + b"x" * 5000,
            error="Invalid JSON",
            cause="MessageSizeTooLargeError: too large",
        )
    )
    assert reference["dead_letter"] == "reference"
    assert (reference["topic"], reference["partition"], reference["offset"], reference["size"]) == (
        "lead.events",
        2,
        41,
        5_242_880,
    )
    assert len(reference["key"]) == 1024
    assert reference["not_dead_lettered_whole"].startswith("MessageSizeTooLargeError")
