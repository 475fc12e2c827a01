"""structlog set-up: console in dev, JSON in production, a trace id on every line, no
personal data.

The trace id lives in a context variable: the HTTP middleware binds the request's
id, the consumer binds each message's `trace_id`, so a log line anywhere in the
call carries it without being passed around.

Personal data is scrubbed at the root, from every line, structlog's and the standard
library's alike (`scrub_personal_data`, `ScrubFilter`): fields named like personal data are
masked, email addresses anywhere in a value become `[email]`, and what databases put in
error messages — SQLAlchemy's `[parameters: ...]` and Postgres' `DETAIL:` lines (`Key
(email)=(...)`, `Failing row contains (...)`) — is cut out. Engines also hide parameters
(shared/db.py), so this is the second of two guards.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog

_trace_id: ContextVar[str | None] = ContextVar("trace_id", default=None)


def new_trace_id() -> str:
    """32 random hex digits (a uuid4's spelling, without building a UUID on every request)."""
    return secrets.token_hex(16)


def current_trace_id() -> str | None:
    return _trace_id.get()


@contextmanager
def trace_context(trace_id: str | None) -> Iterator[str]:
    """Run a block under `trace_id` (a fresh one when None)."""
    tid = trace_id or new_trace_id()
    token = _trace_id.set(tid)
    try:
        yield tid
    finally:
        _trace_id.reset(token)


def _add_trace_id(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    tid = _trace_id.get()
    if tid is not None:
        event_dict.setdefault("trace_id", tid)
    return event_dict


PERSONAL_FIELDS = frozenset(
    {"email", "emails", "name", "first_name", "last_name", "full_name", "phone", "traits", "to_email"}
)
REDACTED = "[redacted]"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
_PG_DETAIL = re.compile(r"(DETAIL:\s+)[^\n]*")


def scrub_text(text: str) -> str:
    """`text` without email addresses, SQL parameter dumps or Postgres' row details."""
    text = _SQL_PARAMETERS.sub("[parameters: redacted]", text)
    text = _PG_DETAIL.sub(r"\g<1>redacted", text)
    return _EMAIL.sub("[email]", text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in PERSONAL_FIELDS else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_scrub(v) for v in value]
    if isinstance(value, BaseException):
        return scrub_text(f"{type(value).__name__}: {value}")
    return value


def scrub_personal_data(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The structlog processor: runs after exceptions are formatted, before rendering."""
    for key, value in event_dict.items():
        event_dict[key] = REDACTED if key.lower() in PERSONAL_FIELDS else _scrub(value)
    return event_dict


class ScrubFilter(logging.Filter):
    """The same for the standard library's records (uvicorn, SQLAlchemy, aiokafka)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub_text(record.getMessage()), None
        if record.exc_info:
            record.exc_text = scrub_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub_text(record.stack_info)
        return True


def configure_logging(*, service: str, level: str = "INFO", json: bool = False) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_trace_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            scrub_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries log through stdlib logging; keep them quiet unless they warn.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
