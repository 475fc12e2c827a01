"""Event types are declared once (shared/event_types.py) and referenced everywhere else."""

import ast
from pathlib import Path

from shared.event_types import WITHOUT_MODEL, EventType
from shared.events import EVENT_MODELS

ROOT = Path(__file__).parents[2]
CODE = ("shared", "services", "leadflow", "bench")
DECLARATION = ROOT / "shared" / "event_types.py"


def test_every_event_model_has_a_declared_type_and_every_declared_type_a_model():
    assert set(EVENT_MODELS) == set(EventType) - WITHOUT_MODEL
    for event_type, model in EVENT_MODELS.items():
        assert isinstance(model.event_type, EventType)
        assert model.event_type == event_type


def literals_of(path: Path) -> list[tuple[int, str]]:
    """String constants of a module that spell an event type (docstrings and prose never match
    a whole value, so they pass)."""
    names = {member.value for member in EventType}
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
    ]


def test_no_module_spells_an_event_type_as_a_literal():
    modules = [p for folder in CODE for p in sorted((ROOT / folder).rglob("*.py")) if p != DECLARATION]
    spelled = {
        f"{path.relative_to(ROOT)}:{line}": value for path in modules for line, value in literals_of(path)
    }
    assert spelled == {}, "use shared.event_types.EventType (or a model's event_type)"


def test_the_literal_check_finds_a_spelled_out_type(tmp_path: Path):
    module = tmp_path / "handler.py"
    module.write_text('"""Handles lead.scored events."""\nHANDLED = {"lead.scored": 1}\n')
    assert literals_of(module) == [(2, "lead.scored")]
