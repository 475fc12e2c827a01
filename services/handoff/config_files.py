"""Loading handoff's config files (config/sla.yaml, config/routing.yaml, config/return-reasons.yaml):
the edge where handoff reads files, so `sla`, `routing` and `return_reasons` stay pure."""

from __future__ import annotations

import functools
from collections.abc import Collection
from pathlib import Path

from services.handoff.return_reasons import ReturnReasons, ReturnReasonsFileError
from services.handoff.routing import RoutingConfig, RoutingConfigError, unknown_calendars
from services.handoff.sla import SlaConfig, SlaFileError
from shared.yaml_config import load_config


def load_sla_config(path: str | Path) -> SlaConfig:
    """Read and validate the SLA file, refusing it whole if anything is wrong."""
    return load_config(path, SlaConfig, SlaFileError, empty_means_defaults=True)


def load_routing_config(path: str | Path, *, calendars: Collection[str] | None = None) -> RoutingConfig:
    """Read and validate the routing file, refusing it whole if anything is wrong.

    The keys may sit at the top level or under one `routing:` key. `calendars`, when given
    (the SLA config's calendar names), is checked against the teams' calendars.
    """
    check = None if calendars is None else functools.partial(unknown_calendars, calendars=calendars)
    return load_config(
        path, RoutingConfig, RoutingConfigError, empty_means_defaults=True, under="routing", check=check
    )


def load_return_reasons(path: str | Path) -> ReturnReasons:
    """Read and validate the closed list of return reasons."""
    return load_config(path, ReturnReasons, ReturnReasonsFileError, empty_means_defaults=True)
