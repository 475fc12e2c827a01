"""Every config file a user edits refuses to load with the line of each problem.

The five files load through one loader (shared/yaml_config.py): a syntax error, a duplicate
key and a bad value each name their line, whatever the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.feedback.config_files import load_feedback_config
from services.feedback.domain import FeedbackConfigError
from services.handoff.config_files import load_routing_config, load_sla_config
from services.handoff.routing import RoutingConfigError
from services.handoff.sla import SlaConfigError
from services.intake.config_files import load_tracking_mapping, load_tracking_plan
from services.intake.domain import TrackingPlanError
from services.intake.tracking_mapping import TrackMappingError
from services.scoring.config_files import load_model
from services.scoring.model import ModelError
from shared.config_errors import ConfigError

CONFIG = Path(__file__).parents[2] / "config"


@dataclass(frozen=True)
class ConfigFile:
    name: str
    load: Callable[[Path], Any]
    error: type[ValueError]
    valid: str
    # A value the schema refuses: (text to replace, replacement, path of the problem).
    bad_value: tuple[str, str, str]

    def __str__(self) -> str:
        return self.name


FILES = [
    ConfigFile(
        "scoring-model.yaml",
        load_model,
        ModelError,
        'version: "1"\ngrades: {A: 60, B: 40, C: 20}\nmql:\n  min_score: 50\n  min_grade: B\n',
        ("min_score: 50", "min_score: fifty", "mql.min_score"),
    ),
    ConfigFile(
        "tracking-plan.yaml",
        load_tracking_plan,
        TrackingPlanError,
        'version: "1"\ntypes:\n  page_view:\n    required_properties: [url]\n',
        ("required_properties: [url]", "required_properties: url", "types.page_view.required_properties"),
    ),
    ConfigFile(
        "sla.yaml",
        load_sla_config,
        SlaConfigError,
        "policies:\n  - name: standard\n    decide_within_hours: 8\n    qualify_within_hours: 72\n",
        ("decide_within_hours: 8", "decide_within_hours: 0", "policies.0.decide_within_hours"),
    ),
    ConfigFile(
        "routing.yaml",
        load_routing_config,
        RoutingConfigError,
        "teams:\n  - name: emea\n    members: [ana]\nrules:\n  - name: all\n    assign: {team: emea}\n",
        ("members: [ana]", "members: ana", "teams.0.members"),
    ),
    ConfigFile(
        "feedback.yaml",
        load_feedback_config,
        FeedbackConfigError,
        "threshold: 0.1\nmin_decisions: 20\nwindow: 30d\n",
        ("min_decisions: 20", "min_decisions: 0", "min_decisions"),
    ),
    ConfigFile(
        "tracking-mapping.yaml",
        lambda path: load_tracking_mapping(path, load_tracking_plan(CONFIG / "tracking-plan.yaml")),
        TrackMappingError,
        'version: "1"\nevents:\n  Signed Up: trial_signup\n',
        ("Signed Up: trial_signup", "Signed Up: [trial_signup]", "events.Signed Up"),
    ),
]


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def refusal(file: ConfigFile, tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / file.name
    path.write_text(text)
    with pytest.raises(file.error) as refused:
        file.load(path)
    assert isinstance(refused.value, ConfigError)
    assert refused.value.source == str(path)
    return refused.value


def test_the_five_files_are_the_shipped_ones():
    assert {file.name for file in FILES} == {path.name for path in CONFIG.glob("*.yaml")}


@pytest.mark.parametrize("file", FILES, ids=str)
def test_the_shipped_file_and_the_valid_example_load(file: ConfigFile, tmp_path: Path):
    file.load(CONFIG / file.name)
    (tmp_path / file.name).write_text(file.valid)
    file.load(tmp_path / file.name)


@pytest.mark.parametrize("file", FILES, ids=str)
def test_a_syntax_error_names_its_line(file: ConfigFile, tmp_path: Path):
    text = file.valid + "\tindented: with a tab\n"
    error = refusal(file, tmp_path, text)
    line = line_of(text, "\tindented")
    assert [(p.line, p.path) for p in error.problems] == [(line, "")]
    assert "invalid YAML: found character '\\t' that cannot start any token" in error.problems[0].message
    assert f"{file.name} line {line}: " in str(error)


@pytest.mark.parametrize("file", FILES, ids=str)
def test_a_duplicate_key_names_its_line_and_the_first(file: ConfigFile, tmp_path: Path):
    first_key = file.valid.split(":", 1)[0]
    text = file.valid + f"{first_key}: again\n"
    error = refusal(file, tmp_path, text)
    line = len(text.splitlines())
    assert [tuple(p) for p in error.problems] == [(line, first_key, "duplicate key (first at line 1)")]
    assert str(error).endswith(f"{file.name} line {line}: {first_key}: duplicate key (first at line 1)")


@pytest.mark.parametrize("file", FILES, ids=str)
def test_a_bad_value_names_the_line_of_its_key(file: ConfigFile, tmp_path: Path):
    old, new, path = file.bad_value
    text = file.valid.replace(old, new)
    error = refusal(file, tmp_path, text)
    assert [(p.line, p.path) for p in error.problems] == [(line_of(text, new), path)]
    assert f"line {line_of(text, new)}: {path}: " in str(error)


def test_routing_under_a_routing_key_names_the_line_in_the_file(tmp_path: Path):
    file = FILES[3]
    text = "routing:\n" + "".join(f"  {line}\n" for line in file.valid.replace("[ana]", "ana").splitlines())
    error = refusal(file, tmp_path, text)
    assert [(p.line, p.path) for p in error.problems] == [
        (line_of(text, "members: ana"), "routing.teams.0.members")
    ]


def test_a_rule_the_schema_cannot_express_names_the_line_of_its_key(tmp_path: Path):
    file = FILES[3]
    text = file.valid.replace("members: [ana]", "members: [ana]\n    calendar: apac")
    path = tmp_path / file.name
    path.write_text(text)
    with pytest.raises(RoutingConfigError) as refused:
        load_routing_config(path, calendars=["emea"])
    assert [(p.line, p.path) for p in refused.value.problems] == [(line_of(text, "apac"), "teams.0.calendar")]
