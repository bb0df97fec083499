"""Mapping validation: every mistake in one pass, each located and explained.

Each test copies the bundled mapping files into a temporary directory, corrupts them and
checks the `ConfigProblem`s: file, line, key path, what was expected and what was found.
Line numbers are looked up in the corrupted text, so edits to the bundled files elsewhere
do not break these tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from icp_engine import mappings
from icp_engine.sync.config import CRMS, load_config, mappings_dir, validate_all
from icp_engine.sync.yamlfile import ConfigError, ConfigProblem


def copy_defaults(directory: Path, *names: str) -> Path:
    for name in names or ("csv.yaml", "icp.yaml"):
        (directory / name).write_text(mappings.default(name).read_text(encoding="utf-8"))
    return directory


def edit(path: Path, old: str, new: str) -> None:
    """Replace the first `old` in the file (which must be there) with `new`."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}; the bundled file changed"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    """1-based line of the `nth` line (comments aside) containing `needle`."""
    lines = path.read_text().splitlines()
    hits = [
        i for i, line in enumerate(lines, 1) if needle in line and not line.lstrip().startswith("#")
    ]
    assert len(hits) >= nth, f"{needle!r} not found {nth} time(s) in {path.name}"
    return hits[nth - 1]


def problems_of(crm: str, directory: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config(crm, directory)
    problems = caught.value.problems
    assert problems, "a ConfigError must list at least one problem"
    assert str(caught.value) == "\n".join(str(p) for p in problems)
    return problems


def only(problems: list[ConfigProblem], **match: object) -> ConfigProblem:
    """The single problem whose attributes equal `match` (path given as a tuple)."""
    found = [p for p in problems if all(getattr(p, k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one problem with {match}, got {problems}"
    return found[0]


@pytest.fixture
def mdir(tmp_path: Path) -> Path:
    return copy_defaults(tmp_path)


# -- the bundled files ---------------------------------------------------------------------


@pytest.mark.parametrize("crm", CRMS)
def test_bundled_defaults_load_cleanly(crm: str) -> None:
    config = load_config(crm, None)
    assert config.crm == crm
    assert config.mapping.crm == crm
    # the bundled hubspot.yaml maps standard properties only (issue 13, item 11): the two
    # shared criteria on custom properties are warnings there, not errors
    unmapped = {"funding_stage", "employee_growth"} if crm == "hubspot" else set()
    used = {w.message.split(" uses ")[1].split()[0].strip(",") for w in config.warnings}
    assert used == unmapped
    assert all("scores no account" in w.message for w in config.warnings)
    assert config.files == {
        "mapping": f"(bundled) mappings/{crm}.yaml",
        "icp": "(bundled) mappings/icp.yaml",
    }
    assert config.icp.all_criteria()


def test_unchanged_copies_load_cleanly(mdir: Path) -> None:
    config = load_config("csv", mdir)
    assert config.warnings == []
    assert config.files == {"mapping": str(mdir / "csv.yaml"), "icp": str(mdir / "icp.yaml")}


def test_validate_all_on_bundled_files_finds_only_the_unmapped_hubspot_criteria() -> None:
    errors, warnings = validate_all(None)
    assert errors == []  # changed deliberately for issue 13, item 11 (was: no warnings)
    assert [w.line for w in warnings] == [41, 45]
    assert all("hubspot.yaml does not map" in w.message for w in warnings)


# -- single mistakes -------------------------------------------------------------------------


def test_typo_in_key_suggests_the_right_one_and_lists_valid_keys(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "      weight:", "      wieght:")
    problems = problems_of("csv", mdir)
    typo = only(problems, path=("criteria", "must_have", 0, "wieght"))
    assert typo.file == str(icp)
    assert typo.line == line_of(icp, "wieght:")
    assert "unknown key 'wieght'" in typo.message
    assert "Did you mean 'weight'?" in typo.message
    valid = typo.message.split("Valid keys:")[1]
    for key in ("field", "weight", "name", "in", "between", "when"):
        assert key in [k.strip() for k in valid.split(",")]
    assert "in_" not in valid
    # The now-missing weight is what the suggestion already says: not reported twice.
    assert not [p for p in problems if p.path == ("criteria", "must_have", 0, "weight")]
    assert str(typo).startswith(f"{icp}:{typo.line}: criteria.must_have.0.wieght: unknown key")


def test_unknown_field_is_reported_beside_a_schema_mistake(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "      weight: 0.25", "      wieght: 0.25")
    edit(icp, "field: tech_count", "field: tech_cnt")
    paths = {p.path for p in problems_of("csv", mdir)}
    assert ("criteria", "must_have", 0, "wieght") in paths
    assert ("criteria", "strong_signal", 2, "field") in paths


def test_a_missing_key_without_a_typo_is_reported(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "      weight: 0.25\n", "")
    missing = only(problems_of("csv", mdir), path=("criteria", "must_have", 0, "weight"))
    assert "required" in missing.message


def test_typo_in_csv_field_block_lists_field_map_keys(mdir: Path) -> None:
    csv_yaml = mdir / "csv.yaml"
    edit(csv_yaml, "{field: YearStarted, type: number}", "{field: YearStarted, tpye: number}")
    problem = only(problems_of("csv", mdir), file=str(csv_yaml))
    assert problem.path == ("objects", "account", "fields", "year_started", "tpye")
    assert problem.line == line_of(csv_yaml, "tpye")
    assert "Did you mean 'type'?" in problem.message
    assert "Valid keys: field, type, values" in problem.message


def test_unknown_top_level_key(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "\ntiers:", "\ntierz:")
    problem = only(problems_of("csv", mdir), path=("tierz",))
    assert problem.line == line_of(icp, "tierz:")
    assert "Did you mean 'tiers'?" in problem.message
    assert "anti_patterns" in problem.message


def test_unknown_canonical_field_lists_valid_fields(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "field: tech_count", "field: tech_cnt")
    (problem,) = problems_of("csv", mdir)
    assert problem.file == str(icp)
    assert problem.path[0] == "criteria"
    assert problem.path[-1] == "field"
    assert problem.line == line_of(icp, "field: tech_cnt")
    assert "unknown field 'tech_cnt'" in problem.message
    valid = problem.message.split("valid fields:")[1]
    # mapped fields and derived ones (from features.available_fields)
    for name in ("tech_count", "employees", "industry", "region", "won_deals", "is_customer"):
        assert name in [v.strip() for v in valid.split(",")]


def test_cross_file_checks_wait_until_both_files_pass_the_schema(mdir: Path) -> None:
    edit(mdir / "icp.yaml", "field: tech_count", "field: tech_cnt")
    edit(mdir / "csv.yaml", "policy: if_unchanged", "policy: sometimes")
    problems = problems_of("csv", mdir)
    assert [p.path for p in problems] == [("outputs", "route", "policy")]


def test_between_with_low_above_high(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "between: [50, 500]", "between: [500, 50]")
    (problem,) = problems_of("csv", mdir)
    assert problem.path[:3] == ("criteria", "must_have", 0)
    # Located at the criterion (its first line) or at the `between` key itself.
    between_line = line_of(icp, "between: [500, 50]")
    assert problem.line in (line_of(icp, "- name:"), between_line)
    assert "low <= high" in problem.message
    assert "500" in problem.message
    assert "50" in problem.message


def test_two_operators_in_one_condition(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "      gte: 3\n", "      gte: 3\n      lt: 10\n")
    (problem,) = problems_of("csv", mdir)
    assert problem.path[0] == "criteria"
    assert "exactly one operator" in problem.message
    assert "gte, lt" in problem.message
    assert problem.line is not None
    assert problem.line <= line_of(icp, "lt: 10")


def test_invalid_yaml_reports_the_line(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "between: [50, 500]", "between: [50, 500")
    (problem,) = problems_of("csv", mdir)
    assert problem.file == str(icp)
    assert problem.path == ()
    assert problem.message.startswith("not valid YAML")
    assert "flow sequence" in problem.message
    bracket = line_of(icp, "between: [50, 500")
    # PyYAML notices the missing `]` where the next key starts, one line further down.
    assert problem.line in (bracket, bracket + 1)


def test_invalid_yaml_tab_indent(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "  A: ", "\tA: ")
    (problem,) = problems_of("csv", mdir)
    assert problem.line == line_of(icp, "\tA: ")
    assert "not valid YAML" in problem.message


def test_key_written_twice_names_both_lines(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "\n  A: ", "\n  A: 99\n  A: ")
    (problem,) = problems_of("csv", mdir)
    assert problem.path == ("tiers", "A")
    first, second = line_of(icp, "  A: "), line_of(icp, "  A: ", nth=2)
    assert second == first + 1
    assert problem.line == second
    assert f"first on line {first}" in problem.message
    assert "written twice" in problem.message


def test_key_written_twice_does_not_hide_other_mistakes(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "\n  A: ", "\n  A: 99\n  A: ")
    edit(icp, "      weight:", "      wieght:")
    paths = {p.path for p in problems_of("csv", mdir)}
    assert ("tiers", "A") in paths
    assert ("criteria", "must_have", 0, "wieght") in paths


def test_wrong_policy_lists_valid_values(mdir: Path) -> None:
    csv_yaml = mdir / "csv.yaml"
    edit(csv_yaml, "policy: if_unchanged", "policy: sometimes")
    (problem,) = problems_of("csv", mdir)
    assert problem.file == str(csv_yaml)
    assert problem.path == ("outputs", "route", "policy")
    assert problem.line == line_of(csv_yaml, "policy: sometimes")
    for value in ("overwrite", "if_unchanged", "if_empty", "'sometimes'"):
        assert value in problem.message


def test_unknown_output_key(mdir: Path) -> None:
    csv_yaml = mdir / "csv.yaml"
    edit(csv_yaml, "\n  route: {", "\n  routing: {")
    (problem,) = problems_of("csv", mdir)
    assert problem.path == ("outputs", "routing")
    assert problem.line == line_of(csv_yaml, "  routing: {")
    assert "unknown output 'routing'" in problem.message
    assert "score, tier, segment, reasons, route" in problem.message


def test_cap_tier_must_be_a_tier(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "cap_tier: B", "cap_tier: Z")
    (problem,) = problems_of("csv", mdir)
    assert problem.path[0] == "anti_patterns"
    assert problem.path[-1] == "cap_tier"
    assert problem.line == line_of(icp, "cap_tier: Z")
    assert "'Z'" in problem.message
    assert "valid: A, B, C, D" in problem.message


def test_catch_all_segment_must_be_last(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    text = icp.read_text()
    assert "  - name: Unsized\n" in text
    text = text.replace("  - name: Unsized\n", "")
    text = text.replace("  - name: Enterprise\n", "  - name: Unsized\n  - name: Enterprise\n")
    icp.write_text(text)
    (problem,) = problems_of("csv", mdir)
    assert problem.path[0] == "segments"
    assert problem.line == line_of(icp, "- name: Unsized")
    assert "Move it last" in problem.message


def test_lowest_tier_must_start_at_zero(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "  D: 0\n", "  D: 10\n")
    (problem,) = problems_of("csv", mdir)
    assert problem.path == ("tiers",)
    assert problem.line == line_of(icp, "tiers:")
    assert "lowest tier must start at 0" in problem.message


def test_crm_name_must_match_the_file(mdir: Path) -> None:
    csv_yaml = mdir / "csv.yaml"
    edit(csv_yaml, "crm: csv", "crm: hubspot")
    (problem,) = problems_of("csv", mdir)
    assert problem.path == ("crm",)
    assert problem.line == line_of(csv_yaml, "crm: hubspot")
    assert "must be 'csv'" in problem.message
    assert "'hubspot'" in problem.message


def test_unknown_crm_name_lists_valid_ones(mdir: Path) -> None:
    edit(mdir / "csv.yaml", "crm: csv", "crm: pipedrive")
    (problem,) = problems_of("csv", mdir)
    assert problem.path == ("crm",)
    for value in ("'csv'", "'salesforce'", "'hubspot'", "'pipedrive'"):
        assert value in problem.message


def test_wrong_type_says_what_was_found(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "      weight: 0.", "      weight: heavy # 0.")
    (problem,) = problems_of("csv", mdir)
    assert problem.path == ("criteria", "must_have", 0, "weight")
    assert problem.line == line_of(icp, "weight: heavy")
    assert "number" in problem.message
    assert "'heavy'" in problem.message


def test_mistakes_in_both_files_are_reported_together(mdir: Path) -> None:
    icp, csv_yaml = mdir / "icp.yaml", mdir / "csv.yaml"
    edit(icp, "      weight:", "      wieght:")  # 1: unknown key (suggests weight)
    edit(icp, "between: [100, 300]", "between: [300, 100]")  # 1, in a segment
    edit(icp, "      gte: 3\n", "      gte: 3\n      lt: 10\n")  # 1
    edit(csv_yaml, "policy: if_unchanged", "policy: sometimes")  # 1
    edit(csv_yaml, "{field: YearStarted, type: number}", "{field: YearStarted, tpye: 1}")  # 1
    problems = problems_of("csv", mdir)
    assert len(problems) == 5
    assert sum(p.file == str(icp) for p in problems) == 3
    assert sum(p.file == str(csv_yaml) for p in problems) == 2
    assert all(p.line is not None for p in problems)
    assert len({str(p) for p in problems}) == 5


def test_document_that_is_a_list(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    icp.write_text("- name: a\n- name: b\n")
    (problem,) = problems_of("csv", mdir)
    assert problem.file == str(icp)
    assert problem.line == 1
    assert "must be a mapping" in problem.message
    assert "Got list" in problem.message


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_file(mdir: Path, text: str) -> None:
    csv_yaml = mdir / "csv.yaml"
    csv_yaml.write_text(text)
    (problem,) = problems_of("csv", mdir)
    assert problem.file == str(csv_yaml)
    assert "must be a mapping" in problem.message
    assert "empty file" in problem.message


def test_not_utf8(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    icp.write_bytes(b"version: 1\nname: Soci\xe9t\xe9\n")
    (problem,) = problems_of("csv", mdir)
    assert problem.line == 2
    assert "UTF-8" in problem.message


# -- warnings, fallbacks, validate_all --------------------------------------------------------


def test_value_no_value_map_produces_is_a_warning(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(icp, "in: [Technology/SaaS,", "in: [Technologgy/SaaS,")
    config = load_config("csv", mdir)
    (warning,) = config.warnings
    assert warning.file == str(icp)
    assert warning.path[0] == "criteria"
    assert warning.path[-1] == "in"
    assert warning.line == line_of(icp, "Technologgy/SaaS")
    assert "'Technologgy/SaaS'" in warning.message
    assert "Technology/SaaS" in warning.message.split("'Technologgy/SaaS'")[1]


def test_value_slips_in_segments_anti_patterns_and_routing_are_warned(mdir: Path) -> None:
    icp = mdir / "icp.yaml"
    edit(
        icp, "{field: industry, eq: Financial Services}", "{field: industry, eq: Financial Servics}"
    )
    edit(icp, "    field: industry\n    eq: Government", "    field: industry\n    eq: Govrnment")
    paths = {w.path for w in load_config("csv", mdir).warnings}
    assert ("segments", 2, "when", 0, "eq") in paths
    assert ("anti_patterns", 2, "eq") in paths


def test_value_map_check_ignores_case(mdir: Path) -> None:
    edit(mdir / "icp.yaml", "in: [Technology/SaaS,", "in: [technology/saas,")
    assert load_config("csv", mdir).warnings == []


def test_directory_with_only_icp_uses_the_bundled_crm_mapping(tmp_path: Path) -> None:
    copy_defaults(tmp_path, "icp.yaml")
    edit(tmp_path / "icp.yaml", "name: Starting ICP", "name: Our ICP")
    config = load_config("csv", tmp_path)
    assert config.icp.name == "Our ICP"
    assert config.files == {
        "mapping": "(bundled) mappings/csv.yaml",
        "icp": str(tmp_path / "icp.yaml"),
    }
    assert config.mapping == load_config("csv", None).mapping


def test_directory_with_only_a_crm_mapping_uses_the_bundled_icp(tmp_path: Path) -> None:
    copy_defaults(tmp_path, "hubspot.yaml")
    edit(tmp_path / "hubspot.yaml", "crm: hubspot", "crm: salesforce")
    (problem,) = problems_of("hubspot", tmp_path)
    assert problem.file == str(tmp_path / "hubspot.yaml")
    config = load_config("csv", tmp_path)  # no csv.yaml there: both bundled
    assert config.files["mapping"] == "(bundled) mappings/csv.yaml"


def test_mappings_dir_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as caught:
        mappings_dir(missing)
    (problem,) = caught.value.problems
    assert problem.file == str(missing)
    assert "no such directory" in problem.message
    assert mappings_dir(tmp_path) == tmp_path


def test_validate_all_reports_each_problem_once(mdir: Path) -> None:
    copy_defaults(mdir, "salesforce.yaml", "hubspot.yaml")
    edit(mdir / "icp.yaml", "cap_tier: B", "cap_tier: Z")  # seen with all three CRMs
    edit(mdir / "hubspot.yaml", "crm: hubspot", "crm: hubspt")
    errors, warnings = validate_all(mdir)
    assert warnings == []
    assert sorted((Path(p.file).name, p.path[-1]) for p in errors) == [
        ("hubspot.yaml", "crm"),
        ("icp.yaml", "cap_tier"),
    ]


def test_validate_all_collects_warnings_once(mdir: Path) -> None:
    edit(mdir / "icp.yaml", "in: [Technology/SaaS,", "in: [Technologgy/SaaS,")
    errors, warnings = validate_all(mdir)
    assert errors == []
    # (the bundled hubspot.yaml's two unmapped criteria warn as well: issue 13, item 11)
    warnings = [w for w in warnings if "hubspot.yaml does not map" not in w.message]
    # The same slip is seen with each CRM mapping (the message names the CRM, so up to
    # three warnings); each distinct one is listed once, all at the same place.
    assert 1 <= len(warnings) <= len(CRMS)
    assert len({str(w) for w in warnings}) == len(warnings)
    assert {(w.file, w.line, w.path) for w in warnings} == {
        (str(mdir / "icp.yaml"), line_of(mdir / "icp.yaml", "Technologgy"), warnings[0].path)
    }


def test_a_criterion_on_a_field_the_mapping_does_not_map_warns_until_it_is_mapped(
    tmp_path: Path,
) -> None:
    """Shared criteria on a field another CRM's mapping provides score no account here and
    say so; mapping the field (the commented block in hubspot.yaml) silences the warning."""
    before = load_config("hubspot", None)
    assert [w.line for w in before.warnings] == [41, 45]
    text = mappings.default("hubspot.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    start = lines.index("      # funding_stage:")
    for i in range(start, start + 7):  # the commented block, uncommented
        lines[i] = "      " + lines[i].removeprefix("      # ")
    (tmp_path / "hubspot.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    after = load_config("hubspot", tmp_path)
    assert after.warnings == []
    assert after.mapping.objects.account.fields["funding_stage"].values["Series A-C"]
