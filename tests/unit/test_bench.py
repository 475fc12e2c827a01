"""The bench's pure parts: its percentiles, the quantiles it reads from a service's request
histogram, and the seeding columns, which come from the services' own tables."""

from __future__ import annotations

import pytest

from bench.quantiles import histogram_quantiles, percentile
from bench.seeding import (
    EVENT_COLUMNS,
    HANDOFF_COLUMNS,
    LEAD_COLUMNS,
    OUTCOME_COLUMNS,
    TIMER_COLUMNS,
)
from services.handoff import store as handoff_store
from services.scoring import store as scoring_store

METRICS = """\
# HELP leadflow_http_request_seconds HTTP requests.
# TYPE leadflow_http_request_seconds histogram
leadflow_http_request_seconds_bucket{le="0.001",method="GET",route="/v1/handoffs"} 0.0
leadflow_http_request_seconds_bucket{le="0.002",method="GET",route="/v1/handoffs"} 50.0
leadflow_http_request_seconds_bucket{le="0.01",method="GET",route="/v1/handoffs"} 100.0
leadflow_http_request_seconds_bucket{le="+Inf",method="GET",route="/v1/handoffs"} 100.0
leadflow_http_request_seconds_count{method="GET",route="/v1/handoffs"} 100.0
leadflow_http_request_seconds_sum{method="GET",route="/v1/handoffs"} 0.3
"""


def test_percentile_takes_the_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 51.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


def test_histogram_quantiles_interpolate_within_the_bucket_in_ms():
    p50, p99 = histogram_quantiles(METRICS, "GET", "/v1/handoffs") or (0.0, 0.0)
    assert p50 == pytest.approx(2.0)
    assert p99 == pytest.approx(2.0 + 8.0 * 49 / 50)


def test_histogram_quantiles_of_a_route_never_called_are_none():
    assert histogram_quantiles(METRICS, "POST", "/v1/handoffs/{handoff_id}/accept") is None


@pytest.mark.parametrize(
    ("columns", "table"),
    [
        (HANDOFF_COLUMNS, handoff_store.handoffs),
        (TIMER_COLUMNS, handoff_store.sla_timers),
        (LEAD_COLUMNS, scoring_store.leads),
        (EVENT_COLUMNS, scoring_store.lead_events),
        (OUTCOME_COLUMNS, scoring_store.handoff_outcomes),
    ],
)
def test_seeding_columns_are_the_service_tables_own(columns, table):
    assert all(column.table is table for column in columns)
    required = {c.name for c in table.c if not c.nullable and c.server_default is None and not c.identity}
    assert required <= {c.name for c in columns}
