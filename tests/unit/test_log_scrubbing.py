"""Personal data never reaches a log line: fields named like it are masked, emails anywhere
become `[email]`, and SQL parameters and Postgres row details are cut from error text."""

from __future__ import annotations

import json
import logging

import structlog
from sqlalchemy.exc import IntegrityError

from shared.logging import (
    REDACTED,
    ScrubFilter,
    configure_logging,
    get_logger,
    scrub_personal_data,
    scrub_text,
)

ERROR = (
    "(sqlalchemy.dialects.postgresql.asyncpg.IntegrityError) "
    "<class 'asyncpg.exceptions.UniqueViolationError'>: "
    'duplicate key value violates unique constraint "leads_email_key"\n'
    "DETAIL:  Key (email)=(ada.lovelace@northwind.example) already exists.\n"
    "[SQL: INSERT INTO scoring.leads (email, traits) VALUES ($1::VARCHAR, $2::JSONB)]\n"
    '[parameters: (\'ada.lovelace@northwind.example\', \'{"first_name": "Ada", "last_name": "Lovelace"}\')]\n'
    "(Background on this error at: https://sqlalche.me/e/21/gkpj)"
)


def test_error_text_loses_emails_parameters_and_row_details_but_keeps_the_statement() -> None:
    scrubbed = scrub_text(ERROR)
    assert "ada.lovelace" not in scrubbed and "Ada" not in scrubbed and "Lovelace" not in scrubbed
    assert "[parameters: redacted]" in scrubbed and "DETAIL:  redacted" in scrubbed
    assert "INSERT INTO scoring.leads" in scrubbed and "UniqueViolationError" in scrubbed
    assert scrub_text("write to ops@leadflow.example now") == "write to [email] now"


def test_personal_fields_are_masked_however_deep() -> None:
    event = scrub_personal_data(
        None,
        "info",
        {
            "event": "x",
            "email": "a@b.example",
            "lead": {"traits": {"first_name": "Ada"}, "id": "l-1"},
            "n": 3,
        },
    )
    assert event == {"event": "x", "email": REDACTED, "lead": {"traits": REDACTED, "id": "l-1"}, "n": 3}


def test_json_log_lines_of_an_exception_carry_no_personal_data(capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging(service="test", json=True)
    try:
        try:
            raise IntegrityError("INSERT ...", {"email": "ada.lovelace@northwind.example"}, Exception(ERROR))
        except IntegrityError:
            get_logger("t").exception("failed", error=ERROR, first_name="Ada")
        logging.getLogger("uvicorn.error").error("boom %s", "ada.lovelace@northwind.example", exc_info=True)
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "ada.lovelace" not in err and "Lovelace" not in err and '"Ada"' not in err
    line = json.loads(err.splitlines()[0])
    assert line["first_name"] == REDACTED and "IntegrityError" in line["exception"]


def test_the_standard_library_filter_formats_then_scrubs() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "to %s", ("ada@northwind.example",), None)
    assert ScrubFilter().filter(record) and record.getMessage() == "to [email]"
