"""Names that would reach a SOQL query or a file path are validated as API names (exit 2
with file:line), before any connector is built."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from icp_engine import mappings
from icp_engine.sync.cli.main import main
from icp_engine.sync.config import load_config
from icp_engine.sync.yamlfile import ConfigError


def copy(directory: Path, crm: str) -> Path:
    for name in (f"{crm}.yaml", "icp.yaml"):
        (directory / name).write_text(mappings.default(name).read_text(encoding="utf-8"))
    return directory


def replace_line(path: Path, old: str, new: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    number = next(i for i, line in enumerate(lines) if old in line)
    lines[number] = lines[number].replace(old, new)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return number + 1


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("object: Account", "object: \"Account WHERE Name != ''\"", "objects.account.object"),
        ("object: Opportunity", "object: Opportunity--", "objects.opportunity.object"),
        ("name: Name", "name: Name FROM User", "objects.account.fields.name"),
        ("{field: ICP_Score__c,", '{field: "ICP_Score__c, Name",', "outputs.score.field"),
    ],
)
def test_soql_names_are_api_names(tmp_path: Path, old: str, new: str, key: str) -> None:
    path = copy(tmp_path, "salesforce") / "salesforce.yaml"
    line = replace_line(path, old, new)
    with pytest.raises(ConfigError) as caught:
        load_config("salesforce", tmp_path)
    (problem,) = caught.value.problems
    assert problem.file == str(path) and problem.line == line
    assert str(problem).startswith(f"{path}:{line}: {key}: ")
    assert "not a Salesforce" in problem.message
    result = CliRunner().invoke(
        main, ["sync", "--crm", "salesforce", "--mappings", str(tmp_path), "--state", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    assert "Nothing was written" in result.output


def test_csv_object_name_cannot_escape_the_source_directory(tmp_path: Path) -> None:
    path = copy(tmp_path, "csv") / "csv.yaml"
    line = replace_line(path, "object: Account", "object: ../../etc/passwd")
    with pytest.raises(ConfigError) as caught:
        load_config("csv", tmp_path)
    (problem,) = caught.value.problems
    assert problem.line == line and "file name" in problem.message


def test_bundled_mappings_pass() -> None:
    for crm in ("csv", "salesforce", "hubspot"):
        load_config(crm, None)
