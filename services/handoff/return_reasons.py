"""The closed list of reasons sales may give for sending a lead back (config/return-reasons.yaml).

Pure: the file's schema and its error. The list is closed so returns can be counted by
reason; `other` is always on it and always needs a note, so nothing falls through unexplained.
"""

from __future__ import annotations

import re
from typing import Self

import pydantic
from pydantic import Field, model_validator

from shared.config_errors import PydanticWordedConfigError

OTHER = "other"
_NAME = r"^[a-z][a-z0-9_]{0,63}$"


class ReturnReasonsFileError(PydanticWordedConfigError, ValueError):
    """The return reasons file does not load; each problem names its line."""

    what = "return reasons"


class ReturnReasons(pydantic.BaseModel):
    """Which reasons a reject or return may give, and which of them need a note."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    reasons: tuple[str, ...] = Field(
        default=("inaccurate_data", "incomplete_data", "not_a_fit", "not_ready", "duplicate", OTHER),
        min_length=1,
    )
    need_a_note: tuple[str, ...] = (OTHER,)

    @model_validator(mode="after")
    def _closed_and_explained(self) -> Self:
        for name in self.reasons:
            if not re.match(_NAME, name):
                raise ValueError(
                    f"reason {name!r} must be lower_snake_case (a-z, 0-9, _), at most 64 characters"
                )
        if len(set(self.reasons)) != len(self.reasons):
            raise ValueError("reasons must not repeat")
        if OTHER not in self.reasons or OTHER not in self.need_a_note:
            raise ValueError("`other` must be a reason, and one that needs a note")
        if unknown := sorted(set(self.need_a_note) - set(self.reasons)):
            raise ValueError(f"need_a_note names reasons not listed: {', '.join(unknown)}")
        return self

    def listed(self) -> str:
        return ", ".join(self.reasons)
