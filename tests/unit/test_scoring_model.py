"""Loading the scoring model: a bad file refuses to load, naming the file, line and rule."""

from pathlib import Path

import pytest

from services.scoring.config_files import load_model, parse_model
from services.scoring.model import ModelError, ScoringModel

DEFAULT_MODEL = Path(__file__).parents[2] / "config" / "scoring-model.yaml"

VALID = """\
version: "2026-11-01"
grades:
  A: 60
  B: 40
  C: 20
fit:
  - id: title.vp
    title: '\\b(vp|vice president)\\b'
    points: 25
engagement:
  - id: pricing_page
    event: page_view
    where: {url: {contains: /pricing}}
    points: 5
    cap: 15
  - id: demo_request
    event: demo_request
    points: 30
undesirables:
  - id: free_mail
    domain: [gmail.com]
    points: -20
mql:
  min_score: 50
  min_grade: B
"""


def line_of(text: str, needle: str) -> int:
    """The 1-based line where `needle` first appears."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def error_of(text: str) -> str:
    with pytest.raises(ModelError) as caught:
        parse_model(text, source="scoring-model.yaml")
    return str(caught.value)


def test_default_model_file_loads():
    model = load_model(DEFAULT_MODEL)
    assert isinstance(model, ScoringModel)
    assert model.mql.min_grade in ("A", "B")
    assert model.decay is not None
    assert {"fit", "engagement", "undesirables"} <= set(model.model_dump(exclude_defaults=True))


def test_valid_model_parses_into_a_frozen_model():
    model = parse_model(VALID)
    assert model.version == "2026-11-01"
    assert model.engagement[0].where["url"].contains == "/pricing"
    with pytest.raises(ValueError):
        model.version = "other"  # type: ignore[misc]


def test_non_integer_points_names_the_line():
    text = VALID.replace("points: 30", "points: lots")
    line = line_of(text, "points: lots")
    assert error_of(text) == f"scoring-model.yaml line {line}: engagement[1].points: must be an integer"


def test_fractional_points_are_not_an_integer():
    text = VALID.replace("points: 30", "points: 2.5")
    assert "engagement[1].points: must be an integer" in error_of(text)


def test_unknown_key_names_the_line():
    text = VALID.replace("    cap: 15", "    cap: 15\n    decay_days: 30")
    line = line_of(text, "decay_days")
    assert error_of(text) == f"scoring-model.yaml line {line}: engagement[0].decay_days: unknown key"


def test_bad_regex_names_the_line():
    text = VALID.replace("'\\b(vp|vice president)\\b'", "'(vp|vice president'")
    line = line_of(text, "title: '(vp")
    assert error_of(text).startswith(
        f"scoring-model.yaml line {line}: fit[0].title: not a valid regex (missing )"
    )


def test_bad_regex_in_a_property_match_names_the_line():
    text = VALID.replace("{contains: /pricing}", "{regex: '[pricing'}")
    line = line_of(text, "[pricing")
    assert f"line {line}: engagement[0].where.url.regex: not a valid regex" in error_of(text)


def test_broken_yaml_syntax_names_the_line():
    text = VALID.replace("where: {url: {contains: /pricing}}", "where: {url: {contains: /pricing}")
    line = line_of(text, "where:")
    # The parser only notices on the next line; the message also points back to the brace.
    assert error_of(text) == (
        f"scoring-model.yaml line {line + 1}: invalid YAML: expected ',' or '}}', but got "
        f"'<scalar>' (while parsing a flow mapping at line {line})"
    )


def test_bad_indentation_names_the_line():
    text = VALID.replace("  B: 40", "   B: 40")
    assert error_of(text).startswith(f"scoring-model.yaml line {line_of(text, 'B: 40')}: invalid")


def test_missing_key_names_the_line_of_its_rule():
    text = VALID.replace("    points: 30\n", "")
    line = line_of(text, "- id: demo_request")
    assert error_of(text) == f"scoring-model.yaml line {line}: engagement[1].points: is required"


def test_duplicate_rule_id_names_the_second_rule():
    text = VALID.replace("id: demo_request", "id: pricing_page")
    line = line_of(text, "event: demo_request") - 1
    assert error_of(text) == (
        f"scoring-model.yaml line {line}: engagement[1].id: "
        "duplicate rule id 'pricing_page' (also engagement[0])"
    )


def test_duplicate_yaml_key_is_refused():
    text = VALID.replace("    points: 30", "    points: 30\n    points: 40")
    line = line_of(text, "points: 40")
    assert error_of(text) == (
        f"scoring-model.yaml line {line}: engagement[1].points: duplicate key (first at line {line - 1})"
    )


def test_grade_bands_must_be_in_order():
    text = VALID.replace("B: 40", "B: 70")
    assert (
        error_of(text) == f"scoring-model.yaml line {line_of(text, 'B: 70')}: grades.B: must be below A (60)"
    )


def test_rule_after_a_catch_all_of_the_same_event_is_refused():
    text = VALID.replace("    where: {url: {contains: /pricing}}\n", "").replace(
        "id: demo_request\n    event: demo_request", "id: pricing_again\n    event: page_view"
    )
    line = line_of(text, "id: pricing_again")
    assert error_of(text) == (
        f"scoring-model.yaml line {line}: engagement[1]: never scores: engagement[0] "
        "(page_view, no 'where') takes every page_view first; put narrower rules before it"
    )


def test_unknown_event_type_is_refused():
    text = VALID.replace("event: page_view", "event: page_veiw")
    line = line_of(text, "page_veiw")
    assert f"line {line}: engagement[0].event: unknown event type 'page_veiw'" in error_of(text)


def test_undesirable_needs_points_or_disqualify_but_not_both():
    text = VALID.replace("    points: -20", "    points: -20\n    disqualify: true")
    line = line_of(text, "- id: free_mail")
    assert error_of(text) == (
        f"scoring-model.yaml line {line}: undesirables[0]: give either negative points or disqualify: true"
    )


def test_undesirable_points_must_be_negative():
    text = VALID.replace("points: -20", "points: 20")
    assert "undesirables[0].points: must be less than 0" in error_of(text)


def test_property_match_takes_exactly_one_test():
    text = VALID.replace("{contains: /pricing}", "{contains: /pricing, equals: /pricing}")
    assert "engagement[0].where.url: give exactly one of: equals, contains, regex, in" in error_of(text)


def test_unquoted_norway_is_explained():
    text = VALID + "  # countries\n"
    text = text.replace("fit:\n", "fit:\n  - {id: country.nordics, country: [SE, NO], points: 5}\n")
    line = line_of(text, "country.nordics")
    assert f"line {line}: fit[0].country[1]: YAML reads this as true/false" in error_of(text)


def test_unquoted_date_version_asks_for_quotes():
    text = VALID.replace('version: "2026-11-01"', "version: 2026-11-01")
    assert error_of(text) == "scoring-model.yaml line 1: version: must be text (put it in quotes)"


def test_channel_alias_must_name_a_listed_channel():
    text = VALID + "channel:\n  points: {paid: 5}\n  aliases: {cpc: payed}\n"
    line = line_of(text, "aliases:")
    assert f"line {line}: channel.aliases.cpc: 'payed' is not a channel" in error_of(text)


def test_every_problem_is_reported_in_line_order():
    text = VALID.replace("points: 30", "points: lots").replace("B: 40", "B: forty")
    lines = error_of(text).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["grades.B", "engagement[1].points"]


def test_empty_file_is_refused():
    assert error_of("# nothing yet\n") == "scoring-model.yaml line 1: the file is empty"


def test_load_model_names_the_file(tmp_path: Path):
    path = tmp_path / "scoring-model.yaml"
    path.write_text(VALID.replace("min_grade: B", "min_grade: E"))
    with pytest.raises(ModelError) as caught:
        load_model(path)
    line = line_of(path.read_text(), "min_grade")
    assert str(caught.value) == f"{path} line {line}: mql.min_grade: must be 'A', 'B', 'C' or 'D'"


def test_missing_file_is_a_model_error(tmp_path: Path):
    with pytest.raises(ModelError, match="cannot read file"):
        load_model(tmp_path / "nope.yaml")


# --- caps per day and the cool-off ---------------------------------------------------------------


def test_cap_per_day_and_cooloff_parse():
    text = VALID.replace("    cap: 15\n", "    cap: 15\n    cap_per_day: 10\n").replace(
        "  min_grade: B\n", "  min_grade: B\n  cooloff_days: 14\n"
    )
    model = parse_model(text)
    assert model.engagement[0].cap_per_day == 10
    assert model.engagement[1].cap_per_day is None
    assert model.mql.cooloff_days == 14


def test_cap_per_day_must_be_a_positive_integer():
    text = VALID.replace("    cap: 15\n", "    cap: 15\n    cap_per_day: 0\n")
    line = line_of(text, "cap_per_day")
    assert error_of(text) == (
        f"scoring-model.yaml line {line}: engagement[0].cap_per_day: must be greater than 0"
    )
    assert "engagement[0].cap_per_day: must be an integer" in error_of(text.replace(": 0\n", ": 2.5\n"))


def test_cap_per_day_above_the_total_cap_is_refused():
    text = VALID.replace("    cap: 15\n", "    cap: 15\n    cap_per_day: 20\n")
    line = line_of(text, "cap_per_day")
    assert error_of(text) == (
        f"scoring-model.yaml line {line}: engagement[0].cap_per_day: 20 is above the rule's cap (15), "
        "so it never limits anything; lower it or remove it"
    )


def test_cap_per_day_without_a_total_cap_is_allowed():
    text = VALID.replace("    points: 30\n", "    points: 30\n    cap_per_day: 30\n")
    assert parse_model(text).engagement[1].cap_per_day == 30


@pytest.mark.parametrize(
    ("value", "message"),
    [("-1", "must be greater than or equal to 0"), ("soon", "must be a number"), (".inf", "finite number")],
)
def test_cooloff_days_must_be_a_finite_number_not_below_zero(value: str, message: str):
    text = VALID.replace("  min_grade: B\n", f"  min_grade: B\n  cooloff_days: {value}\n")
    line = line_of(text, "cooloff_days")
    assert error_of(text).startswith(f"scoring-model.yaml line {line}: mql.cooloff_days: ")
    assert message in error_of(text)


def test_cooloff_days_defaults_to_zero():
    assert parse_model(VALID).mql.cooloff_days == 0


def test_default_model_caps_page_views_per_day_and_requalifies_at_once():
    model = load_model(DEFAULT_MODEL)
    caps = {rule.id: rule.cap_per_day for rule in model.engagement}
    assert caps["page_view"] is not None and caps["pricing_page"] is not None
    assert model.mql.cooloff_days == 0  # the integration tests re-qualify a rejected lead at once
