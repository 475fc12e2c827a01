"""The error of a config file that does not load: the file, and each problem at its line.

Stdlib only, so the pure modules that declare a config's schema can also declare its error
class (`ModelError`, `SlaConfigError`, ...) without importing YAML; `shared.yaml_config`
finds the problems and raises them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, NamedTuple

# Where in a document: keys and list indexes from the root, as pydantic reports them.
Loc = tuple[str | int, ...]


class ConfigProblem(NamedTuple):
    """One thing wrong with a config file; problems sort by line."""

    line: int  # 1-based
    path: str  # e.g. `fit[0].title`; empty for the file as a whole
    message: str


class ConfigError(ValueError):
    """A config file that cannot load; str() gives one "FILE line N: path: message" per problem.

    Subclasses name the kind of file. This class words problems as the scoring model always
    has: `engagement[1].points: must be an integer`.
    """

    def __init__(self, source: str, problems: Iterable[ConfigProblem]) -> None:
        self.source = source
        self.problems = tuple(sorted(problems))
        super().__init__("\n".join(self._format(*problem) for problem in self.problems))

    def _format(self, line: int, path: str, message: str) -> str:
        where = f"{path}: " if path else ""
        return f"{self.source} line {line}: {where}{message}"

    @classmethod
    def path_of(cls, loc: Loc) -> str:
        text = ""
        for part in loc:
            if isinstance(part, int):
                text += f"[{part}]"
            elif not part.startswith(("[", "function-")):  # pydantic's internal loc markers
                text += f".{part}" if text else part
        return text

    @classmethod
    def describe(cls, error: Mapping[str, Any]) -> str:
        """A pydantic error (one of `ValidationError.errors()`) in words a config's editor uses."""
        message = _PLAIN_WORDS.get(error["type"])
        if message is None and error["type"] == "value_error":
            message = str(error["ctx"]["error"])
        if message is None:
            message = str(error["msg"]).replace("Input should be", "must be")
        return message

    @classmethod
    def unreadable(cls, reason: str) -> str:
        """The message of a file that is not YAML at all."""
        return reason


_PLAIN_WORDS = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "string_type": "must be text (put it in quotes)",
    "bool_type": "must be true or false",
    "missing": "is required",
    "extra_forbidden": "unknown key",
    "model_type": "must be a mapping of keys to values",
    "dict_type": "must be a mapping of keys to values",
    "tuple_type": "must be a list",
}


class PydanticWordedConfigError(ConfigError):
    """A config error in pydantic's own words: `calendars.0.timezone: Field required`.

    The tracking plan, SLA, routing and feedback files reported problems this way before
    they had line numbers, and people (and tests) match on those words, so they keep them.
    """

    what: ClassVar[str] = "config"  # e.g. "SLA config"

    @classmethod
    def path_of(cls, loc: Loc) -> str:
        return ".".join(str(part) for part in loc) or "(top level)"

    @classmethod
    def describe(cls, error: Mapping[str, Any]) -> str:
        return str(error["msg"])

    @classmethod
    def unreadable(cls, reason: str) -> str:
        return f"cannot read {cls.what}: {reason}"
