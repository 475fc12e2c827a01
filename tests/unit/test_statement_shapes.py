"""A batch's look-ups by many keys are one statement text whatever the batch's size, so asyncpg
prepares each once per connection; an IN list is a text (and a Postgres prepare) per length."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import asyncpg

from services.scoring.store import leads
from shared.db import among


def sql(values: list[str]) -> str:
    statement = select(leads.c.lead_id).where(among(leads.c.lead_id, values))
    return str(statement.compile(dialect=asyncpg.dialect()))


def test_the_text_is_the_same_for_one_value_and_for_many() -> None:
    assert sql(["a"]) == sql([f"lead-{n}" for n in range(500)])
    assert "ANY" in sql(["a"])


def test_no_values_is_the_same_statement_too_not_a_special_empty_in() -> None:
    assert sql([]) == sql(["a"])
