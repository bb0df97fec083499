"""Audiences, nurture tracks and run history end to end through `icp`, on a generated
Salesforce export (the CSV connector)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import icp_engine.mappings as bundled
import pytest
import yaml
from icp_engine.connectors.sample import write_sample_crm
from icp_engine.sync.audiences import GENERIC_COLUMNS, LINKEDIN_COLUMNS

from tests.cli_helpers import icp
from tests.crmsim import Clock, edit_rows, load_updates, read_rows

# LinkedIn's company list template, as Campaign Manager publishes it (see sync/audiences.py)
LINKEDIN_TEMPLATE = [
    "companyname",
    "companywebsitedomain",
    "companyemaildomain",
    "linkedincompanypageurl",
    "stocksymbol",
    "industry",
    "city",
    "state",
    "companycountry",
    "zipcode",
]


@pytest.fixture(scope="module")
def base_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("operate") / "export"
    write_sample_crm(directory, accounts=300)
    return directory


@pytest.fixture
def export(base_export: Path, tmp_path: Path) -> Path:
    shutil.copytree(base_export, tmp_path / "export")
    return tmp_path / "export"


def sync(export: Path, state: Path, *extra: str | Path) -> dict:
    code, out, err = icp(
        "sync", "--crm", "csv", "--source", export, "--state", state, "--json", *extra
    )
    assert code == 0, err
    return json.loads(out)


def audiences(export: Path, state: Path, out: Path, *extra: str | Path) -> dict:
    code, stdout, err = icp(
        "audiences", "export", "--crm", "csv", "--source", export, "--state", state,
        "--out", out, "--json", *extra,
    )  # fmt: skip
    assert code == 0, err
    return json.loads(stdout)


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_audience_files_follow_the_layouts_and_only_changes_are_flagged(
    export: Path, tmp_path: Path
) -> None:
    state, out = tmp_path / "state", tmp_path / "aud"
    _, accounts = read_rows(export / "Account.csv")
    target = accounts[0]["Id"]
    clock = Clock()

    def hostile(found: list[dict[str, str]]) -> list[dict[str, str]]:
        for row in found:
            if row["Id"] == target:
                row["Name"] = '=HYPERLINK("http://x.test","win")'
                row["Website"] = "https://www.Hostile-Example.com/about?x=1"
        return found

    edit_rows(export / "Account.csv", clock, hostile)
    sync(export, state)
    load_updates(export, clock)  # the admin loads the update file with Data Loader
    first = audiences(export, state, out)
    assert first["by"] == "tier" and first["first_export"] is True
    files = {(f["audience"], f["format"]): f for f in first["files"]}
    assert {a for a, _ in files} == {"tier-a", "tier-b", "tier-c", "tier-d"}
    assert sum(f["rows"] for (_, fmt), f in files.items() if fmt == "generic") == 300
    for (_, fmt), f in files.items():
        table = rows(Path(f["path"]))
        assert table[0] == (
            LINKEDIN_TEMPLATE if fmt == "linkedin" else ["domain", "name", "country"]
        )
        assert len(table) == f["rows"] + 1 and f["added"] == f["rows"] and f["removed"] == 0
    assert list(LINKEDIN_COLUMNS) == LINKEDIN_TEMPLATE and GENERIC_COLUMNS == (
        "domain",
        "name",
        "country",
    )
    generic = [
        r for f in files.values() if f["format"] == "generic" for r in rows(Path(f["path"]))[1:]
    ]
    hostile_row = next(r for r in generic if r[0] == "hostile-example.com")
    assert hostile_row[1] == '\'=HYPERLINK("http://x.test","win")'  # shown as text, not run
    assert all("/" not in r[0] and not r[0].startswith("www.") for r in generic)
    assert all(r[0] or r[1] for r in generic)  # something to match on in every row
    linkedin = rows(Path(files[("tier-a", "linkedin")]["path"]))[1]
    assert linkedin[1] == linkedin[2] != "" and linkedin[8] != ""  # domain twice, country

    again = audiences(export, state, out)  # nothing changed: tiny uploads
    assert again["first_export"] is False
    assert all(f["added"] == 0 and f["removed"] == 0 for f in again["files"])
    assert all(len(rows(Path(f["added_path"]))) == 1 for f in again["files"])  # header only

    tier_of = {r["Id"]: r["ICP_Tier__c"] for r in read_rows(export / "Account.csv")[1]}
    low = next(i for i, t in tier_of.items() if t == "D" and i != target)

    def upgrade(found: list[dict[str, str]]) -> list[dict[str, str]]:
        for row in found:
            if row["Id"] == low:
                row.update(
                    Industry="Software",
                    NumberOfEmployees="120",
                    AnnualRevenue="9000000",
                    Technologies__c="Salesforce;Outreach;Gong",
                    BillingCountry="USA",
                    Funding_Stage__c="Series B",
                    Employees_Last_Year__c="60",
                )
        return found

    edit_rows(export / "Account.csv", clock, upgrade)
    summary = sync(export, state)
    _code, out_text, _ = icp("runs", "show", str(summary["run_id"]), "--state", state, "--json")
    detail = json.loads(out_text)
    moved = {c["account_id"]: (c["from"], c["to"]) for c in detail["tier_changes"]}
    assert moved[low][0] == "D" and moved[low][1] in ("A", "B")
    new_tier = moved[low][1].lower()
    third = {(f["audience"], f["format"]): f for f in audiences(export, state, out)["files"]}
    name = next(r for r in accounts if r["Id"] == low)["Name"]
    assert third[(f"tier-{new_tier}", "generic")]["added"] == 1
    assert rows(Path(third[(f"tier-{new_tier}", "generic")]["added_path"]))[1][1] == name
    assert third[("tier-d", "generic")]["removed"] == 1
    assert rows(Path(third[("tier-d", "generic")]["removed_path"]))[1][1] == name
    untouched = [f for k, f in third.items() if k[0] not in (f"tier-{new_tier}", "tier-d")]
    assert all(f["added"] == 0 and f["removed"] == 0 for f in untouched)


def nurture_mappings(folder: Path, map_output: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    mapping = yaml.safe_load(bundled.default("csv.yaml").read_text(encoding="utf-8"))
    if map_output:
        mapping["outputs"]["nurture_track"] = {"field": "ICP_Nurture__c", "type": "text"}
    (folder / "csv.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False))
    operate = {
        "nurture": [
            {"track": "Expansion playbook", "when": [{"field": "is_customer", "eq": True}]},
            {"track": "Fast lane", "when": [{"field": "tier", "in": ["A", "B"]}]},
            {"track": "Education series"},
        ],
        "audiences": {"by": "nurture_track", "formats": ["generic"]},
    }
    (folder / "operate.yaml").write_text(yaml.safe_dump(operate, sort_keys=False))
    return folder


def test_nurture_track_is_written_only_when_mapped(export: Path, tmp_path: Path) -> None:
    plain = sync(export, tmp_path / "plain")
    unmapped = nurture_mappings(tmp_path / "unmapped", map_output=False)
    quiet = sync(export, tmp_path / "s1", "--dry-run", "--mappings", unmapped)
    assert quiet["counts"]["fields_to_write"] == plain["counts"]["fields_to_write"]

    mapped = nurture_mappings(tmp_path / "mapped", map_output=True)
    (export / "icp_updates.csv").unlink()
    summary = sync(export, tmp_path / "s2", "--mappings", mapped)
    assert summary["counts"]["fields_to_write"] == plain["counts"]["fields_to_write"] + 300
    header, written = read_rows(export / "icp_updates.csv")
    assert "ICP_Nurture__c" in header
    tracks = {r["ICP_Nurture__c"] for r in written}
    assert tracks == {"Expansion playbook", "Fast lane", "Education series"}
    for row in written:
        if row["ICP_Nurture__c"] == "Fast lane":
            assert row["ICP_Tier__c"] in ("A", "B")

    result = audiences(export, tmp_path / "s2", tmp_path / "aud", "--mappings", mapped)
    assert {f["audience"] for f in result["files"]} == {
        "nurture-expansion-playbook", "nurture-fast-lane", "nurture-education-series",
    }  # fmt: skip


def test_nurture_output_without_rules_and_bad_rules_name_file_and_line(tmp_path: Path) -> None:
    folder = nurture_mappings(tmp_path / "m", map_output=True)
    (folder / "operate.yaml").write_text(
        "nurture:\n  - track: Fast lane\n    when:\n      - {field: tierr, eq: A}\n"
    )
    code, _, err = icp("mappings", "validate", "--mappings", folder)
    assert code == 2 and "operate.yaml:4: nurture.0.when.0" in err and "tierr" in err
    (folder / "operate.yaml").write_text("audiences: {by: tier}\n")
    code, _, err = icp("mappings", "validate", "--mappings", folder)
    assert code == 2 and "outputs.nurture_track: needs nurture: rules in operate.yaml" in err


def test_status_trend_and_runs_show(export: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = sync(export, state)
    sync(export, state)
    code, out, _ = icp("status", "--state", state, "--json")
    trend = json.loads(out)["trend"]
    assert len(trend) == 1
    day = trend[0]
    assert day["runs"] == 2 and day["ok"] == 2 and day["failed_runs"] == 0
    assert day["written"] == 300 and day["failed"] == 0 and day["api_calls"] >= 0
    code, out, _ = icp("status", "--state", state)
    assert "Trend (last 14 days, UTC)" in out

    code, out, _ = icp("runs", "show", str(first["run_id"]), "--state", state)
    assert code == 0
    assert f"Run {first['run_id']}: csv sync" in out and "ok (exit 0)" in out
    assert "Criteria: manual" in out and "icp.yaml" in out
    assert "Accounts that changed tier (300)" in out  # first run: every account got a tier
    code, _, err = icp("runs", "show", "99", "--state", state)
    assert code == 2 and "no run 99" in err


@pytest.mark.slow
def test_report_has_a_sync_health_section_from_the_run_history(tmp_path: Path) -> None:
    export, state = tmp_path / "export", tmp_path / "state"
    write_sample_crm(export, accounts=2000)  # enough won and lost deals to learn from
    code, _, err = icp("train", "--crm", "csv", "--source", export, "--state", state)
    assert code == 0, err
    out = tmp_path / "report.html"
    report = ["report", "--crm", "csv", "--source", export, "--state", state, "--out", out]
    assert icp(*report)[0] == 0
    html = out.read_text()
    assert '<section id="health"' in html and "No sync has run" in html
    sync(export, state)
    sync(export, state)
    assert icp(*report)[0] == 0
    html = out.read_text()
    section = html.split('<section id="health"')[1].split("</section>")[0]
    assert "Sync health" in section and "Last successful run" in section
    cells = section.split("<tbody>")[1].split("</tr>")[0]
    assert ">2</td>" in cells and ">2000</td>" in cells  # 2 runs today, 2000 written
