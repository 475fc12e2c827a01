"""Which errors mean "a dependency is down" rather than "this request or message is bad".

One classification for the whole platform: the HTTP layer answers an outage with
503 and Retry-After (everything else unexpected is a 500), and the consumer
retries a batch on an outage or a transient Kafka error and dead-letters the
message otherwise. asyncpg's errors arrive wrapped in SQLAlchemy's `DBAPIError`
(the driver's error in `.orig`), socket errors and timeouts arrive bare.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiokafka.errors import KafkaError, KafkaTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class DependencyUnavailable(Exception):
    """Kafka or Postgres cannot be reached: the client should retry (503)."""


# SQLSTATEs of a server that is going away, not accepting connections, out of
# resources, or that cancelled a statement for running past statement_timeout.
# Class 08 (connection exceptions, asyncpg's ConnectionDoesNotExistError among them) and
# class 53 (insufficient resources: too many connections, disk full) count whole.
OUTAGE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57014"})
OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "53"})
# Worth retrying a batch for, though not an outage: serialization failure, deadlock.
CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The error, the driver error it wraps, and its causes (a few levels)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 5:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def sqlstate_of(exc: BaseException) -> str | None:
    for error in _chain(exc):
        code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def is_outage_sqlstate(code: str | None) -> bool:
    return code is not None and (code in OUTAGE_SQLSTATES or code[:2] in OUTAGE_SQLSTATE_CLASSES)


def kafka_error_is_transient(exc: KafkaError) -> bool:
    """Retriable broker and connection errors, and timeouts; not a record too large,
    an invalid topic or a refused authorization, which no retry will fix."""
    return bool(exc.retriable) or isinstance(exc, KafkaTimeoutError)


def is_outage(exc: BaseException) -> bool:
    """True when the error says a dependency (Postgres, Kafka) is unreachable or refusing work."""
    for error in _chain(exc):
        if isinstance(error, (DependencyUnavailable, OSError, PoolTimeout, InterfaceError, OperationalError)):
            # OSError covers ConnectionError, a Unix socket gone (FileNotFoundError) and
            # TimeoutError (connect and statement timeouts of asyncpg).
            return True
        if isinstance(error, KafkaError) and kafka_error_is_transient(error):
            return True
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
    return is_outage_sqlstate(sqlstate_of(exc))
