"""One broken rule of a request: the field it is about and the rule's name.

Stdlib only, so pure domain modules can report what is wrong with a request without
importing the HTTP layer; `shared.problems` turns a list of these into problem+json.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str  # a dotted path into the request, e.g. `events.3.email`
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}
