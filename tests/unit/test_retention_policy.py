"""What retention keeps and what is due to go: durations per kind, 0 as forever, the inbox
never shorter than what a topic can still redeliver, runs bounded in batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.feedback import retention as feedback_retention
from services.feedback import store as feedback_store
from services.handoff import retention as handoff_retention
from services.scoring import retention as scoring_retention
from services.scoring.config_files import load_model
from services.scoring.lifecycle import event_types_kept_forever
from shared.retention_policy import (
    DataKind,
    RetentionPolicy,
    another_batch,
    cutoff,
    inbox_keep,
    kafka_retention_ms,
    keep_for,
    lock_name,
    redelivery_horizon,
)
from shared.settings import Settings

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
MODEL = load_model("config/scoring-model.yaml")


def test_rows_older_than_the_retention_are_due_and_younger_ones_are_not() -> None:
    policy = RetentionPolicy.from_days({"webhook_deliveries": 30, "raw_events": 395})
    due_before = policy.cutoff(DataKind.WEBHOOK_DELIVERIES, NOW)
    assert due_before == NOW - timedelta(days=30)
    assert NOW - timedelta(days=31) < due_before < NOW - timedelta(days=29)
    assert policy.cutoff(DataKind.RAW_EVENTS, NOW) == NOW - timedelta(days=395)


def test_zero_keeps_a_kind_forever_and_so_does_a_kind_without_a_setting() -> None:
    policy = RetentionPolicy.from_days({"handoff_history": 0})
    assert policy.cutoff(DataKind.HANDOFF_HISTORY, NOW) is None
    assert policy.cutoff(DataKind.EVENT_CONFLICTS, NOW) is None
    assert keep_for(None) is None


def test_a_negative_retention_or_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="forever"):
        keep_for(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        cutoff(datetime(2026, 12, 1), timedelta(days=1))


def test_the_shipped_defaults_are_the_documented_ones_and_cover_every_kind_but_none_forever() -> None:
    days = Settings().retention_days
    assert days == {
        "raw_events": 395,
        "handoff_history": 730,
        "webhook_deliveries": 30,
        "dead_letters": 30,
        "inbox": 14,
        "event_conflicts": 90,
        "idempotency_keys": 7,
    }
    assert set(days) == {kind.value for kind in DataKind}


def test_dead_letter_topics_keep_their_records_for_the_retention_or_forever() -> None:
    assert kafka_retention_ms(timedelta(days=30)) == str(30 * 86_400_000)
    assert kafka_retention_ms(None) == "-1"


def test_a_topic_can_redeliver_records_for_its_retention_plus_a_segment_and_a_day() -> None:
    week_ms = 7 * 86_400_000
    assert redelivery_horizon(week_ms, week_ms) == timedelta(days=15)
    assert redelivery_horizon(week_ms, None) == timedelta(days=8)
    assert redelivery_horizon(-1, week_ms) is None  # retention.ms -1: records kept forever
    assert redelivery_horizon(None, week_ms) is None


def test_the_inbox_keeps_ids_at_least_as_long_as_any_topic_can_redeliver_them() -> None:
    fourteen = timedelta(days=14)
    assert inbox_keep(fourteen, [timedelta(days=8)]) == fourteen
    assert inbox_keep(fourteen, [timedelta(days=8), timedelta(days=38)]) == timedelta(days=38)
    assert inbox_keep(fourteen, [timedelta(days=8), None]) is None  # a topic that keeps all
    assert inbox_keep(None, [timedelta(days=8)]) is None
    assert inbox_keep(fourteen, []) == fourteen


def test_a_run_goes_on_while_batches_come_back_full_and_stops_at_its_bound() -> None:
    assert another_batch(5000, batch_rows=5000, pruned=5000, max_rows=None)
    assert not another_batch(4999, batch_rows=5000, pruned=9999, max_rows=None)
    assert another_batch(5000, batch_rows=5000, pruned=10_000, max_rows=20_000)
    assert not another_batch(5000, batch_rows=5000, pruned=20_000, max_rows=20_000)


def test_each_table_has_a_lock_of_its_own_per_service_and_kind() -> None:
    names = {
        lock_name("handoff", DataKind.WEBHOOK_DELIVERIES, "webhook_deliveries"),
        lock_name("feedback", DataKind.WEBHOOK_DELIVERIES, "webhook_deliveries"),
        lock_name("handoff", DataKind.INBOX, "inbox"),
    }
    assert len(names) == 3


def test_events_a_disqualifier_tests_are_kept_so_an_unsubscribed_lead_stays_disqualified() -> None:
    assert event_types_kept_forever(MODEL) == ["unsubscribe"]
    raw_events = next(t for t in scoring_retention.targets(MODEL) if t.kind is DataKind.RAW_EVENTS)
    assert raw_events.params == {"kept_types": ["unsubscribe"]}


def test_feedback_prunes_none_of_the_tables_its_figures_are_computed_from() -> None:
    figures = {feedback_store.handoff_facts, feedback_store.fact_rules, feedback_store.sla_breaches}
    figures.add(feedback_store.alerts)
    assert not {t.table for t in feedback_retention.TARGETS} & figures


def test_handoff_prunes_history_entries_but_never_the_handoffs() -> None:
    tables = {t.table.name for t in handoff_retention.TARGETS}
    assert tables == {"handoff_history", "webhook_deliveries", "idempotency_keys"}


def test_the_command_refuses_a_service_that_keeps_no_tables_before_touching_anything() -> None:
    from typer.testing import CliRunner

    from leadflow.commands import app

    result = CliRunner().invoke(app, ["retention", "run", "--service", "intake", "--dry-run"])
    assert result.exit_code == 2
    assert "intake keeps no tables" in result.output
