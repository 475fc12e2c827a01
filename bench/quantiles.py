"""Percentiles of measured latencies, and of a service's own request histogram."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def histogram_quantiles(metrics: str, method: str, route: str) -> tuple[float, float] | None:
    """p50 and p99 (ms) of a route from `leadflow_http_request_seconds`, interpolated in its buckets."""
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(metrics):
        if family.name != "leadflow_http_request_seconds":
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith("_bucket") and (labels["method"], labels["route"]) == (method, route):
                buckets.append((float(labels["le"]), sample.value))
    buckets.sort()
    if not buckets or not buckets[-1][1]:
        return None
    total = buckets[-1][1]

    def quantile(q: float) -> float:
        lower, below = 0.0, 0.0
        for bound, count in buckets:
            if count >= q * total:
                if bound == float("inf"):
                    return lower * 1000
                return 1000 * (lower + (bound - lower) * (q * total - below) / max(count - below, 1e-9))
            lower, below = bound, count
        return lower * 1000

    return quantile(0.5), quantile(0.99)
