"""Reading the YAML a user edits (config/*.yaml) into a pydantic schema, every error at its line.

People edit these files by hand, so a bad one refuses to load with messages they can act on:
a syntax error where the parser stopped, a duplicate key (PyYAML would silently keep the
last), and each schema or rule violation at the line of the key it is about. All problems
are raised together as the file's `ConfigError` subclass, which also decides their wording.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from shared.config_errors import ConfigError, ConfigProblem, Loc

Schema = TypeVar("Schema", bound=BaseModel)
# Rules a schema cannot express (references between sections, orderings): (where, message).
Check = Callable[[Schema], Iterable[tuple[Loc, str]]]


def load_config(
    path: str | Path,
    schema: type[Schema],
    error: type[ConfigError],
    *,
    empty_means_defaults: bool = False,
    under: str | None = None,
    check: Check[Schema] | None = None,
) -> Schema:
    """Read and validate one config file; raises `error` naming the file and each line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise error(str(path), [ConfigProblem(1, "", f"cannot read file ({e.strerror or e})")]) from None
    return parse_config(
        text,
        schema,
        error,
        source=str(path),
        empty_means_defaults=empty_means_defaults,
        under=under,
        check=check,
    )


def parse_config(
    text: str,
    schema: type[Schema],
    error: type[ConfigError],
    *,
    source: str,
    empty_means_defaults: bool = False,
    under: str | None = None,
    check: Check[Schema] | None = None,
) -> Schema:
    """Validate config YAML text; raises `error` naming `source` and each line.

    `empty_means_defaults`: a file without content (or `null`) is validated as an empty
    mapping, so it means the schema's defaults (or says which keys are required), instead of
    being refused as empty. `under`: the keys may also sit under this one top-level key.
    """
    root, data = _compose(text, source, error)
    if root is None and not empty_means_defaults:
        raise error(source, [ConfigProblem(1, "", "the file is empty")])
    if duplicates := list(_duplicate_keys(root, error)):
        raise error(source, duplicates)
    at: Loc = ()
    if under is not None and isinstance(data, dict) and list(data) == [under]:
        data, at = data[under], (under,)
    if empty_means_defaults and not data:
        data = {}
    try:
        config = schema.model_validate(data)
    except ValidationError as e:
        located = [_locate(root, (*at, *err["loc"]), error.describe(err), error) for err in e.errors()]
        raise error(source, located) from None
    if check is not None and (broken := [_locate(root, (*at, *loc), m, error) for loc, m in check(config)]):
        raise error(source, broken)
    return config


def _compose(text: str, source: str, error: type[ConfigError]) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the plain data (for pydantic) of one document."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as e:
        raise error(source, [_syntax_problem(e, error)]) from None
    except yaml.YAMLError as e:
        raise error(source, [ConfigProblem(1, "", error.unreadable(f"invalid YAML: {e}"))]) from None
    finally:
        loader.dispose()
    return root, data


def _syntax_problem(e: yaml.MarkedYAMLError, error: type[ConfigError]) -> ConfigProblem:
    # The parser notices a problem where it stops making sense, often a line after the
    # typo (an unclosed bracket); the context says where the broken construct began.
    mark = e.problem_mark or e.context_mark
    message = f"invalid YAML: {e.problem or e.context}"
    if e.problem and e.context and e.context_mark:
        message += f" ({e.context} at line {e.context_mark.line + 1})"
    return ConfigProblem(mark.line + 1 if mark else 1, "", error.unreadable(message))


def _duplicate_keys(
    node: yaml.Node | None, error: type[ConfigError], loc: Loc = ()
) -> Iterator[ConfigProblem]:
    # PyYAML silently keeps the last of two equal keys; in a hand-edited file that hides a
    # mistake, so it is an error here.
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):  # a list or mapping as a key: pydantic refuses it
                continue
            line = key.start_mark.line + 1
            if key.value in first_line:
                first = first_line[key.value]
                yield ConfigProblem(
                    line, error.path_of((*loc, key.value)), f"duplicate key (first at line {first})"
                )
            first_line.setdefault(key.value, line)
            yield from _duplicate_keys(value, error, (*loc, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, error, (*loc, i))


def _locate(root: yaml.Node | None, loc: Loc, message: str, error: type[ConfigError]) -> ConfigProblem:
    """At the line of the deepest node of `loc` that exists (a missing key points at its parent)."""
    if root is None:
        return ConfigProblem(1, error.path_of(loc), message)
    node, line = root, root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            pair = next(((k, v) for k, v in node.value if k.value == part), None)
            if pair is None:
                break
            node, line = pair[1], pair[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return ConfigProblem(line, error.path_of(loc), message)
