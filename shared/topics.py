"""Topic names, with the configurable prefix applied in one place."""

from __future__ import annotations

from dataclasses import dataclass

from shared.events import BASE_TOPICS, FAILED_EVENTS, LEAD_EVENTS, LEAD_LIFECYCLE, OPS_ALERTS


@dataclass(frozen=True)
class Topics:
    prefix: str = ""

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def events(self) -> str:
        return self.name(LEAD_EVENTS)

    @property
    def lifecycle(self) -> str:
        return self.name(LEAD_LIFECYCLE)

    @property
    def alerts(self) -> str:
        return self.name(OPS_ALERTS)

    @property
    def failed_events(self) -> str:
        return self.name(FAILED_EVENTS)

    def group(self, service: str) -> str:
        """The consumer group of a service (`<prefix>leadflow-<service>`)."""
        return f"{self.prefix}leadflow-{service}"

    def dlq(self, topic: str) -> str:
        return f"{topic}.dlq"

    def all(self) -> list[str]:
        """Every topic leadflow uses, dead-letter topics included."""
        names = [self.name(base) for base in BASE_TOPICS]
        return names + [self.dlq(n) for n in names]
