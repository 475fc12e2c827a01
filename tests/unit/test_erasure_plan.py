"""Every table that can hold something about a person is covered by its service's erasure plan.

A table another change adds with a lead id, an email or a personal column fails here until its
service's ERASURE_PLAN says what an erasure does to it (docs/privacy.md).
"""

from __future__ import annotations

import importlib

import pytest
from sqlalchemy import MetaData

from services.feedback import erasure as feedback_erasure
from services.handoff import erasure as handoff_erasure
from services.scoring import erasure_store as scoring_erasure

# Column names that name or describe a person, or carry a payload that may.
PERSONAL_COLUMNS = frozenset(
    {
        "lead_id",
        "email",
        "anonymous_id",
        "traits",
        "lead",
        "note",
        "payload",
        "properties",
        "body",
        "figures",
        "first_name",
        "last_name",
        "name",
        "phone",
        "title",
        "company",
        "ip",
        "user_agent",
        "sample",
    }
)
PLANS = {
    "scoring": scoring_erasure.ERASURE_PLAN,
    "handoff": handoff_erasure.ERASURE_PLAN,
    "feedback": feedback_erasure.ERASURE_PLAN,
}


def metadata_of(service: str) -> MetaData:
    importlib.import_module(f"services.{service}.app")  # every module that defines a table
    metadata: MetaData = importlib.import_module(f"services.{service}.store").metadata
    return metadata


@pytest.mark.parametrize("service", sorted(PLANS))
def test_every_table_with_a_personal_column_is_in_the_erasure_plan(service: str) -> None:
    tables = metadata_of(service).tables.values()
    uncovered = [
        table.fullname
        for table in tables
        if PERSONAL_COLUMNS & {c.name for c in table.columns} and table.fullname not in PLANS[service]
    ]
    assert not uncovered, f"{service}: say in its ERASURE_PLAN what an erasure does to {uncovered}"


@pytest.mark.parametrize("service", sorted(PLANS))
def test_the_plan_names_only_tables_that_exist(service: str) -> None:
    assert set(PLANS[service]) <= set(metadata_of(service).tables)
