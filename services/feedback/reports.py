"""The figures feedback reports, computed from its own tables: return rates (overall, over
time, by group, by reason), the funnel per cohort, and rule attribution."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.feedback import store
from services.feedback.domain import (
    CohortFunnel,
    CohortKind,
    FeedbackConfig,
    Window,
    cohort_funnels,
    group_alert_key,
    previous_cohorts,
    rate_figure,
    ratio,
    series_points,
)


def reason_shares(counts: dict[str, int]) -> list[dict[str, Any]]:
    """Each reason's count and share of the sent-back leads, most frequent first."""
    total = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"reason": reason, "count": count, "share": count / total} for reason, count in ordered]


async def overall(conn: AsyncConnection, config: FeedbackConfig, window: Window) -> dict[str, Any]:
    figure = rate_figure(*await store.decision_counts(conn, window))
    reasons = await store.reason_counts(conn, window, None, config.score_bands)
    return {
        **asdict(figure),
        "threshold": config.threshold,
        "min_decisions": config.min_decisions,
        "above_threshold": figure.rate is not None and figure.rate > config.threshold,
        "reasons": reason_shares(reasons.get(None, {})),
    }


async def series(
    conn: AsyncConnection, *, end: datetime, length: timedelta, step: timedelta, points: int
) -> list[dict[str, Any]]:
    """The rate over the window ending at each point, oldest first."""
    ends = series_points(end, step=step, points=points)
    rows = await store.decision_series(conn, ends, length)
    return [{"at": at, **asdict(rate_figure(sent_back, decided))} for at, sent_back, decided in rows]


async def groups(
    conn: AsyncConnection, config: FeedbackConfig, window: Window, by: str, severities: dict[str, str | None]
) -> list[dict[str, Any]]:
    """The rate of each value of `by`, highest first, with its reasons and its open alert."""
    counts = (await store.grouped_decision_counts(conn, window, [by], config.score_bands))[by]
    reasons = await store.reason_counts(conn, window, by, config.score_bands)
    items = []
    for value, (sent_back, decided) in counts.items():
        figure = rate_figure(sent_back, decided)
        items.append(
            {
                "group": value,
                **asdict(figure),
                "above_threshold": figure.rate is not None and figure.rate > config.threshold,
                "alert": severities.get(group_alert_key(f"{by}:{value}")),
                "reasons": reason_shares(reasons.get(value, {})),
            }
        )
    return sorted(items, key=lambda i: (i["group"] is None, -(i["rate"] or 0.0), -i["denominator"]))


def _funnel_figures(f: CohortFunnel) -> dict[str, Any]:
    return {
        "mql": f.mql,
        "sal": f.sal,
        "sql": f.sql,
        "sqo": f.sqo,
        "returned": f.returned,
        "disqualified": f.disqualified,
        "conversion": f.conversion,
        "stage_seconds": {stage: asdict(time) for stage, time in f.stage_seconds.items()},
        "sla": {
            "decided": f.decided,
            "in_time": f.in_time,
            "compliance": f.compliance,
            "breaches": f.breaches,
        },
    }


async def funnel(conn: AsyncConnection, *, end: datetime, kind: CohortKind, count: int) -> dict[str, Any]:
    cohorts = previous_cohorts(end, kind, count)
    since = cohorts[0][1]
    funnels = cohort_funnels(await store.funnel_facts(conn, since), cohorts)
    return {
        "items": [
            {"cohort": f.cohort, "start": f.start, "end": f.end, **_funnel_figures(f)} for f in funnels
        ],
        "breaches_by_team": [
            {"team": team, "breaches": total, "open": still_open}
            for team, total, still_open in await store.breaches_by_team(conn, since)
        ],
    }


async def funnel_groups(
    conn: AsyncConnection, config: FeedbackConfig, *, end: datetime, kind: CohortKind, count: int, by: str
) -> dict[str, Any]:
    """The funnel of each value of `by` over the last `count` cohorts together, largest first:
    e.g. whether leads at matched accounts, or at strategic ones, convert better."""
    cohorts = previous_cohorts(end, kind, count)
    since, until = cohorts[0][1], cohorts[-1][2]
    grouped = await store.grouped_funnel_facts(conn, since, by, config.score_bands)
    items = []
    for value, facts in grouped.items():
        [figures] = cohort_funnels(facts, [(value or "", since, until)])
        items.append({"group": value, **_funnel_figures(figures)})
    items.sort(key=lambda i: (i["group"] is None, -i["mql"], i["group"] or ""))
    return {"start": since, "end": until, "items": items}


async def rule_attribution(conn: AsyncConnection, window: Window) -> list[dict[str, Any]]:
    """Per rule: the return rate of leads it contributed to against those it did not."""
    all_sent_back, all_decided = await store.decision_counts(conn, window)
    all_reasons = (await store.reason_counts(conn, window, None, []))[None] if all_sent_back else {}
    by_rule, by_reason = await store.rule_counts(conn, window)
    items = []
    for rule, (sent_back, decided) in by_rule.items():
        with_rule = rate_figure(sent_back, decided)
        without_rule = rate_figure(all_sent_back - sent_back, all_decided - decided)
        reasons = []
        for reason, total in sorted(all_reasons.items()):
            with_count = by_reason.get((rule, reason), 0)
            with_rate = ratio(with_count, decided)
            without_rate = ratio(total - with_count, all_decided - decided)
            reasons.append(
                {
                    "reason": reason,
                    "with_rate": with_rate,
                    "without_rate": without_rate,
                    "ratio": ratio(with_rate, without_rate),
                }
            )
        items.append(
            {
                "rule": rule,
                "with": asdict(with_rule),
                "without": asdict(without_rule),
                "ratio": ratio(with_rule.rate, without_rule.rate),
                "reasons": reasons,
            }
        )
    return sorted(items, key=lambda i: (i["ratio"] is None, -(i["ratio"] or 0.0), i["rule"]))
