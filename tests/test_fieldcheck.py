"""`icp mappings validate` finds what hurts: missing columns with a "did you mean", and
only the mapping files the admin actually has, for the CRM they target."""

from __future__ import annotations

import json
from pathlib import Path

import icp_engine.mappings as bundled
import pytest
from click.testing import CliRunner
from icp_engine.connectors.sample import write_sample_crm
from icp_engine.sync.cli.main import main


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fc") / "export"
    write_sample_crm(directory, accounts=40)
    return directory


@pytest.fixture
def csv_only(tmp_path: Path) -> Path:
    """A CSV-only admin's ./mappings: csv.yaml and icp.yaml, nothing else."""
    directory = tmp_path / "mappings"
    directory.mkdir()
    for name in ("csv.yaml", "icp.yaml"):
        (directory / name).write_text(bundled.default(name).read_text(encoding="utf-8"))
    return directory


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def validate(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main, ["mappings", "validate", *map(str, args)], catch_exceptions=False
    )
    return result.exit_code, result.stdout, result.stderr


def test_a_csv_only_admin_adding_an_extra_field_passes(csv_only: Path) -> None:
    # The issue: `product: Product__c` in csv.yaml failed on the bundled Salesforce and
    # HubSpot files ("unknown field 'product'") although the admin has neither.
    edit(
        csv_only / "csv.yaml",
        "      rating: Rating\n",
        "      rating: Rating\n      product: Product__c\n",
    )
    edit(
        csv_only / "icp.yaml",
        "  bonus:\n",
        "  bonus:\n    - name: buys Widgets\n      field: product\n      eq: Widgets\n"
        "      weight: 0.02\n",
    )
    code, out, err = validate("--mappings", csv_only)
    assert code == 0, err
    assert "csv.yaml" in out and "salesforce.yaml" not in out and "hubspot.yaml" not in out
    assert "0 errors" in out


def test_a_typo_in_a_column_the_criteria_use_is_an_error_with_did_you_mean(
    csv_only: Path, export: Path
) -> None:
    edit(csv_only / "csv.yaml", "employees: NumberOfEmployees", "employees: NumberOfEmployes")
    line = (csv_only / "csv.yaml").read_text().splitlines().index(
        "      employees: NumberOfEmployes"
    ) + 1
    code, _, err = validate("--mappings", csv_only, "--source", export)
    assert code == 2
    assert f"csv.yaml:{line}: objects.account.fields.employees" in err
    assert "Account.csv has no column 'NumberOfEmployes'" in err
    assert "did you mean 'NumberOfEmployees'?" in err
    assert "error:" in err and "Traceback" not in err


def test_a_missing_column_nothing_scores_on_is_a_warning(csv_only: Path, export: Path) -> None:
    edit(
        csv_only / "csv.yaml",
        "      rating: Rating\n",
        "      rating: Rating\n      product: Product__c\n",
    )
    code, out, err = validate("--mappings", csv_only, "--source", export, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["errors"] == []
    (warning,) = [w for w in report["warnings"] if "Product__c" in w]
    assert "'product' reads as empty" in warning


def test_validate_without_a_source_says_field_names_were_not_checked(csv_only: Path) -> None:
    code, out, _ = validate("--mappings", csv_only)
    assert code == 0 and "--source DIR" in out


def test_a_mapping_for_another_crm_layout_says_which_files_it_expected(
    csv_only: Path, export: Path
) -> None:
    code, _, err = validate("--mappings", csv_only, "--crm", "hubspot", "--source", export)
    assert code == 2 and "companies.csv" in err
