"""The CSV connector: tolerant reading of Data Export files and the Data Loader update file."""

from __future__ import annotations

import csv
import os
import weakref
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from icp_engine.connectors.base import PullContext, PullReport, RecordUpdate
from icp_engine.connectors.canonical import RowIssue
from icp_engine.connectors.csvfiles import NULL_MARKER, UPDATES_FILE, CsvConnector
from icp_engine.connectors.errors import SourceError
from icp_engine.connectors.mapping import CrmMapping
from icp_engine.scoring.criteria import score_accounts
from icp_engine.scoring.features import build_features
from icp_engine.sync.config import load_config

ACCOUNT_HEADER = (
    "Id,Name,Website,Industry,NumberOfEmployees,AnnualRevenue,BillingCountry,"
    "Technologies__c,SystemModstamp"
)
OPPORTUNITY_HEADER = (
    "Id,AccountId,StageName,IsClosed,IsWon,Amount,CloseDate,CreatedDate,SystemModstamp"
)
OPPORTUNITIES = [
    OPPORTUNITY_HEADER,
    "006A,001A,Closed Won,true,TRUE,100,2025-01-01,2024-12-01,2025-01-02T00:00:00Z",
    "006B,001A,Closed Lost,1,0,200,2025-01-01,2024-12-01,2025-01-02T00:00:00Z",
    "006C,001B,Prospecting,false,False,,,2024-12-01,2025-01-02T00:00:00Z",
    "006D,001B,Prospecting,FALSE,,,,2024-12-01,2025-01-02T00:00:00Z",
]


@pytest.fixture(scope="module")
def mapping() -> CrmMapping:
    return load_config("csv", None).mapping


def write_csv(path: Path, lines: list[str], encoding: str = "utf-8", newline: str = "\n") -> Path:
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


def make_source(
    directory: Path,
    accounts: list[str],
    opportunities: list[str] | None = None,
    encoding: str = "utf-8",
) -> Path:
    write_csv(directory / "Account.csv", accounts, encoding)
    write_csv(directory / "Opportunity.csv", opportunities or OPPORTUNITIES)
    return directory


REPORTS: weakref.WeakKeyDictionary[CsvConnector, dict[str, PullReport]] = (
    weakref.WeakKeyDictionary()
)
"""The report of each connector's last pull of each object (what `issues` reads)."""


def pull_all(connector: CsvConnector, kind: str, since: datetime | None = None) -> pd.DataFrame:
    stream = connector.pull(kind, PullContext(since))  # type: ignore[arg-type]
    pages = list(stream)
    REPORTS.setdefault(connector, {})[kind] = stream.report
    return pd.concat(pages, ignore_index=True) if pages else pd.DataFrame()


def by_id(frame: pd.DataFrame, column: str = "account_id") -> dict[str, dict[str, object]]:
    return {row[column]: row for row in frame.to_dict("records")}


def issues(connector: CsvConnector, kind: str = "account") -> list[RowIssue]:
    return REPORTS[connector][kind].issues


# -- encodings ----------------------------------------------------------------------------


def test_utf8_with_bom(tmp_path: Path, mapping: CrmMapping) -> None:
    rows = [ACCOUNT_HEADER, "001A,Société Générale,,,,,,,2025-03-04T10:11:12Z"]
    connector = CsvConnector(mapping, make_source(tmp_path, rows, encoding="utf-8-sig"))
    assert (tmp_path / "Account.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    connector.connect()
    frame = pull_all(connector, "account")
    assert frame["account_id"].tolist() == ["001A"]  # `Id` found despite the BOM
    assert frame["name"].tolist() == ["Société Générale"]
    assert issues(connector) == []


def test_latin1_file(tmp_path: Path, mapping: CrmMapping) -> None:
    rows = [
        ACCOUNT_HEADER,
        "001A,Société Générale,,,,,France,,2025-03-04T10:11:12Z",
        "001B,Müller GmbH,,,,,Österreich,,2025-03-04T10:11:12Z",
    ]
    connector = CsvConnector(mapping, make_source(tmp_path, rows, encoding="latin-1"))
    with pytest.raises(UnicodeDecodeError):
        (tmp_path / "Account.csv").read_text(encoding="utf-8")
    frame = pull_all(connector, "account")
    assert frame["name"].tolist() == ["Société Générale", "Müller GmbH"]
    assert frame["country"].tolist() == ["France", "Österreich"]


# -- values ---------------------------------------------------------------------------------


def test_values_are_parsed(tmp_path: Path, mapping: CrmMapping) -> None:
    rows = [
        ACCOUNT_HEADER,
        '001A,Acme,https://www.Acme.com/about,Software,"1,200","$1,200.50",USA,'
        "Salesforce;HubSpot,2025-03-04T10:11:12.000+0000",
        "001B,Beta,beta.io,technolgy, 45 ,12,us,Salesforce; HubSpot,2025-03-04T10:11:12Z",
        "001C,Gamma,,  SOFTWARE ,,,Deutschland,,2025-03-04",
        "001D,Delta,http://www2.delta.co.uk:8080/x?y,Agriculture,,,Atlantis,,"
        "2025-03-04T12:11:12.000+0200",
    ]
    connector = CsvConnector(mapping, make_source(tmp_path, rows))
    rows_by_id = by_id(pull_all(connector, "account"))
    a, b, c, d = (rows_by_id[k] for k in ("001A", "001B", "001C", "001D"))

    assert a["employees"] == 1200.0
    assert a["annual_revenue"] == 1200.5
    assert b["employees"] == 45.0

    assert a["domain"] == "acme.com"
    assert b["domain"] == "beta.io"
    assert d["domain"] == "delta.co.uk"

    # value maps: case- and space-insensitive, misspellings listed in the map
    assert a["industry"] == "Technology/SaaS"
    assert b["industry"] == "Technology/SaaS"
    assert c["industry"] == "Technology/SaaS"
    assert d["industry"] == "Agriculture"  # unmapped values stay as written
    assert a["country"] == "United States"
    assert b["country"] == "United States"
    assert c["country"] == "Germany"
    assert d["country"] == "Atlantis"

    assert a["technologies"] == "Salesforce;HubSpot"
    assert b["technologies"] == "Salesforce;HubSpot"

    expected = pd.Timestamp("2025-03-04T10:11:12", tz="UTC")
    assert a["modified_at"] == expected
    assert b["modified_at"] == expected
    assert c["modified_at"] == pd.Timestamp("2025-03-04", tz="UTC")
    assert d["modified_at"] == expected
    assert str(pull_all(connector, "account")["modified_at"].dt.tz) == "UTC"
    assert issues(connector) == []


def test_empty_cells_are_null(tmp_path: Path, mapping: CrmMapping) -> None:
    rows = [ACCOUNT_HEADER, "001A,,,,,,  ,,2025-03-04"]
    frame = pull_all(CsvConnector(mapping, make_source(tmp_path, rows)), "account")
    (row,) = frame.to_dict("records")
    for name in ("name", "domain", "industry", "employees", "annual_revenue", "country"):
        assert pd.isna(row[name]), name
    assert pd.isna(row["technologies"])
    assert pd.isna(row["current_score"])


def test_current_output_values_are_read(tmp_path: Path, mapping: CrmMapping) -> None:
    rows = [
        "Id,Name,ICP_Score__c,ICP_Tier__c,SystemModstamp",
        "001A,Acme,73,A,2025-03-04",
        "001B,Beta,,,2025-03-04",
    ]
    frame = pull_all(CsvConnector(mapping, make_source(tmp_path, rows)), "account")
    rows_by_id = by_id(frame)
    assert rows_by_id["001A"]["current_score"] == 73.0
    assert rows_by_id["001A"]["current_tier"] == "A"
    assert pd.isna(rows_by_id["001B"]["current_score"])
    assert pd.isna(rows_by_id["001B"]["current_tier"])


def test_opportunity_booleans_and_dates(tmp_path: Path, mapping: CrmMapping) -> None:
    connector = CsvConnector(mapping, make_source(tmp_path, [ACCOUNT_HEADER]))
    frame = pull_all(connector, "opportunity")
    opps = by_id(frame, "opportunity_id")
    assert (opps["006A"]["is_closed"], opps["006A"]["is_won"]) == (True, True)
    assert (opps["006B"]["is_closed"], opps["006B"]["is_won"]) == (True, False)
    assert (opps["006C"]["is_closed"], opps["006C"]["is_won"]) == (False, False)
    assert (opps["006D"]["is_closed"],) == (False,)
    assert pd.isna(opps["006D"]["is_won"])
    assert opps["006A"]["amount"] == 100.0
    assert pd.isna(opps["006C"]["amount"])
    assert opps["006A"]["closed_at"] == pd.Timestamp("2025-01-01", tz="UTC")
    assert pd.isna(opps["006C"]["closed_at"])
    assert opps["006A"]["account_id"] == "001A"
    assert issues(connector, "opportunity") == []


# -- rows that cannot be read as they stand ------------------------------------------------


def test_bad_rows_are_skipped_and_reported_with_their_line(
    tmp_path: Path, mapping: CrmMapping
) -> None:
    rows = [
        ACCOUNT_HEADER,  # line 1
        "001A,Acme,,,10,,,,2025-03-04",  # line 2
        '001B,"Multi\nline\nname",,,20,,,,2025-03-04',  # lines 3-5
        "001C,Too,many,fields,1,2,3,4,5,6",  # line 6
        ",No id,,,30,,,,2025-03-04",  # line 7
        "001D,Bad number,,,lots,,,,2025-03-04",  # line 8
        "",  # line 9: blank, ignored
        "001E,Fine,,,50,,,,2025-03-04",  # line 10
    ]
    connector = CsvConnector(mapping, make_source(tmp_path, rows))
    frame = pull_all(connector, "account")
    assert frame["account_id"].tolist() == ["001A", "001B", "001D", "001E"]
    assert by_id(frame)["001B"]["name"] == "Multi\nline\nname"
    assert pd.isna(by_id(frame)["001D"]["employees"])

    found = {(i.line, i.column): i for i in issues(connector)}
    assert set(found) == {(6, None), (7, None), (8, "NumberOfEmployees")}
    assert "10 fields" in found[6, None].problem
    assert "9" in found[6, None].problem
    assert "skipped" in found[6, None].problem
    assert "no id" in found[7, None].problem
    bad = found[8, "NumberOfEmployees"]
    assert bad.record_id == "001D"
    assert bad.value == "lots"
    assert "number" in bad.problem
    assert bad.describe("Account.csv") == (
        "Account.csv, line 8 (record 001D): NumberOfEmployees='lots' "
        "is not a valid number; read as empty"
    )


def test_line_numbers_with_crlf_and_multiline_fields(tmp_path: Path, mapping: CrmMapping) -> None:
    rows = [
        "Id,Name,NumberOfEmployees",
        '001A,"a\r\nb\r\nc",1',  # lines 2-4
        "001B,x,1,extra",  # line 5
        "001C,y,lots",  # line 6
    ]
    write_csv(tmp_path / "Account.csv", rows, newline="\r\n")
    write_csv(tmp_path / "Opportunity.csv", OPPORTUNITIES)
    connector = CsvConnector(mapping, tmp_path)
    frame = pull_all(connector, "account")
    assert frame["account_id"].tolist() == ["001A", "001C"]
    assert sorted((i.line, i.column) for i in issues(connector)) == [
        (5, None),
        (6, "NumberOfEmployees"),
    ]


def test_unparseable_date_is_reported_and_empty(tmp_path: Path, mapping: CrmMapping) -> None:
    rows = [ACCOUNT_HEADER, "001A,Acme,,,,,,,2025-03-04", "001B,Beta,,,,,,,not a date"]
    connector = CsvConnector(mapping, make_source(tmp_path, rows))
    frame = pull_all(connector, "account")
    (issue,) = issues(connector)
    assert (issue.line, issue.column, issue.value) == (3, "SystemModstamp", "not a date")
    assert "datetime" in issue.problem
    # an unreadable modstamp falls back to the file time, like a missing one
    mtime = pd.Timestamp((tmp_path / "Account.csv").stat().st_mtime, unit="s", tz="UTC")
    assert frame["modified_at"].tolist() == [pd.Timestamp("2025-03-04", tz="UTC"), mtime]


def test_column_with_only_unparseable_dates(tmp_path: Path, mapping: CrmMapping) -> None:
    rows = [ACCOUNT_HEADER, "001A,Acme,,,,,,,not a date", "001B,Beta,,,,,,,2025-13-45"]
    connector = CsvConnector(mapping, make_source(tmp_path, rows))
    frame = pull_all(connector, "account")
    assert frame["account_id"].tolist() == ["001A", "001B"]
    assert sorted(i.line for i in issues(connector)) == [2, 3]


# -- incremental pulls and deletions --------------------------------------------------------


def test_pull_since_returns_rows_modified_at_or_after(tmp_path: Path, mapping: CrmMapping) -> None:
    rows = [
        ACCOUNT_HEADER,
        "001A,Old,,,,,,,2025-01-01T00:00:00Z",
        "001B,Boundary,,,,,,,2025-02-01T00:00:00.000+0000",
        "001C,New,,,,,,,2025-03-01",
        "001D,Unknown,,,,,,,",
    ]
    source = make_source(tmp_path, rows)
    os.utime(source / "Account.csv", (1_700_000_000, 1_700_000_000))  # 2023-11-14
    connector = CsvConnector(mapping, source)

    everything = by_id(pull_all(connector, "account"))
    assert everything["001D"]["modified_at"] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")

    since = datetime(2025, 2, 1, tzinfo=UTC)
    assert pull_all(connector, "account", since)["account_id"].tolist() == ["001B", "001C"]

    os.utime(source / "Account.csv", (1_900_000_000, 1_900_000_000))  # 2030: newer than since
    assert pull_all(connector, "account", since)["account_id"].tolist() == [
        "001B",
        "001C",
        "001D",
    ]
    assert pull_all(connector, "account", datetime(2031, 1, 1, tzinfo=UTC)).empty


def test_deleted_ids(tmp_path: Path, mapping: CrmMapping) -> None:
    rows = [ACCOUNT_HEADER, "001A,A,,,,,,,", " 001B ,B,,,,,,,"]
    connector = CsvConnector(mapping, make_source(tmp_path, rows))
    assert connector.deleted_ids("account", None, {"001A", "001B", "001Z"}) == {"001Z"}
    assert connector.deleted_ids("account", None, set()) == set()
    assert connector.deleted_ids("opportunity", None, {"006A", "006X"}) == {"006X"}


def test_malformed_row_is_not_reported_deleted(tmp_path: Path, mapping: CrmMapping) -> None:
    rows = [ACCOUNT_HEADER, "001A,A,,,,,,,", "001B,B,with,a,stray,comma,,,,"]
    connector = CsvConnector(mapping, make_source(tmp_path, rows))
    assert connector.deleted_ids("account", None, {"001A", "001B"}) == set()


# -- files that cannot be read at all -------------------------------------------------------


def test_missing_file_is_a_source_error_naming_the_path(
    tmp_path: Path, mapping: CrmMapping
) -> None:
    write_csv(tmp_path / "Opportunity.csv", OPPORTUNITIES)
    connector = CsvConnector(mapping, tmp_path)
    with pytest.raises(SourceError, match=r"Account\.csv: file not found"):
        connector.connect()
    with pytest.raises(SourceError, match=str(tmp_path / "Account.csv")):
        connector.deleted_ids("account", None, {"001A"})
    with pytest.raises(SourceError, match="no such directory"):
        CsvConnector(mapping, tmp_path / "nope").connect()


def test_pull_of_missing_file_is_a_source_error(tmp_path: Path, mapping: CrmMapping) -> None:
    connector = CsvConnector(mapping, tmp_path)
    with pytest.raises(SourceError, match=str(tmp_path / "Account.csv")):
        list(connector.pull("account", None))


def test_missing_id_column(tmp_path: Path, mapping: CrmMapping) -> None:
    rows = ["AccountNumber,Name", "1,Acme"]
    connector = CsvConnector(mapping, make_source(tmp_path, rows))
    with pytest.raises(SourceError) as caught:
        list(connector.pull("account", None))
    message = str(caught.value)
    assert str(tmp_path / "Account.csv") in message
    assert "line 1" in message
    assert "'Id'" in message
    assert "AccountNumber, Name" in message


def test_header_only_and_empty_files(tmp_path: Path, mapping: CrmMapping) -> None:
    connector = CsvConnector(mapping, make_source(tmp_path, [ACCOUNT_HEADER]))
    assert pull_all(connector, "account").empty
    assert issues(connector) == []
    (tmp_path / "Account.csv").write_bytes(b"")  # issue 10: empty is damage, not "no rows"
    with pytest.raises(SourceError, match=r"Account\.csv: the file is empty"):
        pull_all(CsvConnector(mapping, tmp_path), "account")


# -- missing optional columns ---------------------------------------------------------------


MINIMAL = [
    "Id,Name,Industry,NumberOfEmployees,BillingCountry",
    "001A,Acme,Software,100,US",
    "001B,Beta,,5,DE",
]


def test_mapped_column_missing_from_the_file_reads_as_empty(
    tmp_path: Path, mapping: CrmMapping
) -> None:
    frame = pull_all(CsvConnector(mapping, make_source(tmp_path, MINIMAL)), "account")
    assert frame["technologies"].isna().all()
    assert frame["funding_stage"].isna().all()
    assert frame["annual_revenue"].isna().all()


def test_bundled_criteria_score_a_file_without_enrichment_columns(
    tmp_path: Path, mapping: CrmMapping
) -> None:
    config = load_config("csv", None)
    connector = CsvConnector(mapping, make_source(tmp_path, MINIMAL))
    accounts = pull_all(connector, "account")
    opportunities = pull_all(connector, "opportunity")
    scored = score_accounts(build_features(accounts, opportunities), config.icp, 255)
    assert scored["account_id"].tolist() == ["001A", "001B"]


def test_mapped_column_missing_from_the_file_is_reported(
    tmp_path: Path, mapping: CrmMapping, caplog: pytest.LogCaptureFixture
) -> None:
    connector = CsvConnector(mapping, make_source(tmp_path, MINIMAL))
    with caplog.at_level("WARNING"):
        pull_all(connector, "account")
    assert "Account.csv has no column Technologies__c (mapped to technologies)" in caplog.text


# -- the update file ------------------------------------------------------------------------


def read_updates(path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    ids = [row["Id"] for row in rows]
    assert len(ids) == len(set(ids)), f"an Id written twice: {ids}"
    return header, {row["Id"]: row for row in rows}


def output_header(mapping: CrmMapping) -> list[str]:
    return ["Id", *(o.field for o in mapping.outputs.values())]


def test_update_file(tmp_path: Path, mapping: CrmMapping) -> None:
    connector = CsvConnector(mapping, tmp_path)
    batch = [
        RecordUpdate("001A", {"ICP_Score__c": 73.0, "ICP_Tier__c": "A"}),
        RecordUpdate("001B", {"ICP_Route__c": None, "ICP_Score__c": 12.5}),
    ]
    results = connector.write(batch)
    assert [(r.record_id, r.ok) for r in results] == [("001A", True), ("001B", True)]
    reasons = RecordUpdate("001C", {"ICP_Reasons__c": "+25 employees 50-500; +20 x"})
    connector.write([reasons])
    assert not (tmp_path / UPDATES_FILE).exists()  # accepted, published only by hand_over
    connector.hand_over([*batch, reasons], 7)

    out = tmp_path / UPDATES_FILE
    assert connector.describe_target() == str(out)
    header, rows = read_updates(out)
    assert header == output_header(mapping)
    assert header[:2] == ["Id", "ICP_Score__c"]
    assert rows["001A"] == {
        "Id": "001A",
        "ICP_Score__c": "73",
        "ICP_Tier__c": "A",
        "ICP_Segment__c": "",
        "ICP_Reasons__c": "",
        "ICP_Route__c": "",
    }
    assert rows["001B"]["ICP_Score__c"] == "12.5"
    assert rows["001B"]["ICP_Route__c"] == NULL_MARKER == "#N/A"
    assert rows["001B"]["ICP_Tier__c"] == ""
    # a cell starting with "+" is a formula to a spreadsheet: quoted (OWASP CSV injection)
    assert rows["001C"]["ICP_Reasons__c"] == "'+25 employees 50-500; +20 x"
    assert connector.write_calls == 2
    assert (tmp_path / "icp_updates-run-000007.csv").read_bytes() == out.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "icp_updates-run-000007.csv",
        UPDATES_FILE,
    ]  # no temporary file left behind


def test_update_file_at_out_path(tmp_path: Path, mapping: CrmMapping) -> None:
    out = tmp_path / "exports" / "changes.csv"
    connector = CsvConnector(mapping, tmp_path, out)
    connector.hand_over([RecordUpdate("001A", {"ICP_Tier__c": "B"})], 3)
    assert read_updates(out)[1]["001A"]["ICP_Tier__c"] == "B"
    assert (tmp_path / "exports" / "changes-run-000003.csv").exists()
    assert not (tmp_path / UPDATES_FILE).exists()


def test_hand_over_of_nothing_is_a_header_only_file(tmp_path: Path, mapping: CrmMapping) -> None:
    connector = CsvConnector(mapping, tmp_path)
    connector.hand_over([], 1)
    out = tmp_path / UPDATES_FILE
    assert out.read_text(encoding="utf-8").splitlines() == [",".join(output_header(mapping))]


def test_run_files_are_kept_up_to_the_retention_setting(
    tmp_path: Path, mapping: CrmMapping
) -> None:
    connector = CsvConnector(mapping.model_copy(update={"settings": {"keep_runs": 3}}), tmp_path)
    for run in (1, 2, 5, 9, 10):
        connector.hand_over([RecordUpdate(f"001{run}", {"ICP_Tier__c": "A"})], run)
    kept = [p.name for p in connector.run_files()]
    assert kept == [f"icp_updates-run-{n:06d}.csv" for n in (5, 9, 10)]
    assert set(read_updates(tmp_path / UPDATES_FILE)[1]) == {"00110"}


def test_describe_lists_the_headers(tmp_path: Path, mapping: CrmMapping) -> None:
    connector = CsvConnector(mapping, make_source(tmp_path, [ACCOUNT_HEADER]))
    described = connector.describe()
    assert list(described["account"]) == ACCOUNT_HEADER.split(",")
    assert list(described["opportunity"]) == OPPORTUNITY_HEADER.split(",")
