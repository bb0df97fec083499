"""The sample CRM generator: deterministic, in Salesforce Data Export layout, with signal."""

from __future__ import annotations

import csv
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from icp_engine.connectors.sample import generate_accounts, generate_opportunities, write_sample_crm

TODAY = date(2026, 10, 31)
ACCOUNT_HEADER = [
    "Id", "Name", "Website", "Industry", "Type", "Ownership", "Rating", "AccountSource",
    "NumberOfEmployees", "AnnualRevenue", "BillingCountry", "BillingState", "YearStarted",
    "CreatedDate", "SystemModstamp", "Funding_Stage__c", "Employees_Last_Year__c",
    "Technologies__c", "ICP_Score__c", "ICP_Tier__c", "ICP_Segment__c", "ICP_Reasons__c",
    "ICP_Route__c",
]  # fmt: skip
OPPORTUNITY_HEADER = [
    "Id", "AccountId", "Name", "StageName", "IsClosed", "IsWon", "Amount", "CloseDate",
    "CreatedDate", "Type", "LeadSource", "SystemModstamp", "Loss_Reason__c",
]  # fmt: skip
TECHNOLOGY = {"Technology", "Software", "SaaS", "Internet", "Information Technology", "technolgy"}
GOVERNMENT = {"Government", "Education", "Public Sector", "Not For Profit"}
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000Z$")


def _read(path: Path) -> tuple[list[str], pd.DataFrame]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], pd.DataFrame(rows[1:], columns=rows[0])


def _salesforce_18(id15: str) -> str:
    """Salesforce's own 15 -> 18 character id conversion."""
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << k for k, c in enumerate(id15[chunk * 5 : chunk * 5 + 5]) if c.isupper())
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return id15 + suffix


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("crm")
    info = write_sample_crm(directory, accounts=800)
    assert info.directory == directory
    assert info.accounts == 800
    return directory


@pytest.fixture(scope="module")
def deals() -> pd.DataFrame:
    """Opportunities of 5,000 accounts, with their account's fields alongside."""
    accounts = generate_accounts(5000)
    opportunities = generate_opportunities(accounts)
    return opportunities.merge(
        accounts, left_on="AccountId", right_on="Id", suffixes=("", "_account")
    )


def test_same_arguments_write_byte_identical_files(tmp_path: Path) -> None:
    first = write_sample_crm(tmp_path / "a", accounts=300, seed=11)
    second = write_sample_crm(tmp_path / "b", accounts=300, seed=11)
    for name in ("Account.csv", "Opportunity.csv"):
        assert (first.directory / name).read_bytes() == (second.directory / name).read_bytes()


def test_another_seed_writes_other_data(tmp_path: Path) -> None:
    write_sample_crm(tmp_path / "a", accounts=300, seed=1)
    write_sample_crm(tmp_path / "b", accounts=300, seed=2)
    for name in ("Account.csv", "Opportunity.csv"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()


def test_files_have_the_data_export_headers_and_row_counts(written: Path) -> None:
    header, accounts = _read(written / "Account.csv")
    assert header == ACCOUNT_HEADER
    assert len(accounts) == 800
    header, opportunities = _read(written / "Opportunity.csv")
    assert header == OPPORTUNITY_HEADER
    assert 800 <= len(opportunities) <= 1600  # ~60% of accounts, ~2.6 deals each
    assert (accounts.filter(like="ICP_") == "").all().all()


def test_file_rows_are_the_generated_rows(written: Path) -> None:
    _, from_file = _read(written / "Account.csv")
    generated = generate_accounts(800)
    changed = ["Type"]  # write_sample_crm marks accounts with won deals as customers
    pd.testing.assert_frame_equal(
        from_file.drop(columns=changed), generated.drop(columns=changed), check_dtype=False
    )
    assert from_file["Name"].str.contains(",").any()  # ", Inc." survives csv quoting


def test_ids_are_unique_18_character_salesforce_ids(written: Path) -> None:
    _, accounts = _read(written / "Account.csv")
    _, opportunities = _read(written / "Opportunity.csv")
    for frame, prefix in ((accounts, "001"), (opportunities, "006")):
        ids = frame["Id"]
        assert ids.is_unique
        assert ids.str.len().eq(18).all()
        assert ids.str.startswith(prefix).all()
        assert all(_salesforce_18(i[:15]) == i for i in ids)


def test_a_few_opportunities_are_orphans(written: Path) -> None:
    _, accounts = _read(written / "Account.csv")
    _, opportunities = _read(written / "Opportunity.csv")
    orphans = ~opportunities["AccountId"].isin(accounts["Id"])
    assert 0 < orphans.mean() < 0.03
    assert opportunities["AccountId"].str.startswith("001").all()


def test_dates_are_consistent_and_not_after_today(written: Path) -> None:
    _, accounts = _read(written / "Account.csv")
    _, deals = _read(written / "Opportunity.csv")
    midnight = pd.Timestamp(TODAY, tz="UTC")
    for frame in (accounts, deals):
        assert frame["CreatedDate"].str.match(DATETIME).all()
        assert frame["SystemModstamp"].str.match(DATETIME).all()
        created = pd.to_datetime(frame["CreatedDate"], utc=True)
        modified = pd.to_datetime(frame["SystemModstamp"], utc=True)
        assert (created <= modified).all()
        assert (modified <= midnight).all()
    years = pd.to_numeric(accounts["YearStarted"].replace("", None)).dropna()
    assert years.between(1950, 2025).all()
    closed = deals["IsClosed"] == "true"
    close = pd.to_datetime(deals["CloseDate"], format="%Y-%m-%d", utc=True)
    created = pd.to_datetime(deals["CreatedDate"], utc=True)
    assert (close[closed] < midnight).all()
    assert (close[~closed] >= midnight).all()  # open deals expect to close later
    assert (close >= created.dt.normalize()).all()
    assert (pd.to_datetime(deals["SystemModstamp"], utc=True)[closed] >= close[closed]).all()


def test_stages_flags_and_loss_reasons_agree(written: Path) -> None:
    _, deals = _read(written / "Opportunity.csv")
    assert set(deals["IsClosed"]) == {"true", "false"}
    assert set(deals["IsWon"]) == {"true", "false"}
    won, closed = deals["IsWon"] == "true", deals["IsClosed"] == "true"
    assert not (won & ~closed).any()  # IsWon implies IsClosed
    assert ((deals["StageName"] == "Closed Won") == won).all()
    assert ((deals["StageName"] == "Closed Lost") == (closed & ~won)).all()
    assert 0.65 < closed.mean() < 0.85
    assert (deals.loc[closed & ~won, "Loss_Reason__c"] != "").mean() > 0.9
    assert (deals.loc[~(closed & ~won), "Loss_Reason__c"] == "").all()
    amounts = pd.to_numeric(deals["Amount"].replace("", None)).dropna()
    assert (amounts > 0).all()
    assert (amounts % 100 == 0).all()


def test_accounts_hold_values_the_way_a_crm_does(written: Path) -> None:
    _, accounts = _read(written / "Account.csv")
    assert {"Technology", "Software", "SaaS"} <= set(accounts["Industry"])
    assert {"United States", "USA", "US"} <= set(accounts["BillingCountry"])
    assert 0.01 < (accounts["Industry"] == "").mean() < 0.08
    assert 0.15 < (accounts["Technologies__c"] == "").mean() < 0.35
    employees = pd.to_numeric(accounts["NumberOfEmployees"].replace("", None)).dropna()
    assert employees.between(1, 50_000).all()
    assert 80 < employees.median() < 250
    revenue = accounts["AnnualRevenue"]
    assert revenue.str.fullmatch(r"\d*").all()  # integers, no separators
    assert 0.02 < (revenue == "0").mean() < 0.1  # pre-revenue startups
    customers = accounts["Type"].str.startswith("Customer").mean()
    assert 0.1 < customers < 0.5


def _win_rate(deals: pd.DataFrame, rows: pd.Series) -> float:
    closed = rows & (deals["IsClosed"] == "true")
    return float((deals.loc[closed, "IsWon"] == "true").mean())


def test_win_rates_carry_the_seed_icp_signal(deals: pd.DataFrame) -> None:
    everyone = pd.Series(True, index=deals.index)
    overall = _win_rate(deals, everyone)
    assert 0.3 < overall < 0.5
    employees = pd.to_numeric(deals["NumberOfEmployees"].replace("", None))
    sweet_spot = _win_rate(deals, employees.between(50, 500))
    enterprise = _win_rate(deals, employees > 5000)
    assert sweet_spot > enterprise + 0.15
    technology = _win_rate(deals, deals["Industry"].isin(TECHNOLOGY))
    government = _win_rate(deals, deals["Industry"].isin(GOVERNMENT))
    assert technology > government + 0.15
    assert _win_rate(deals, deals["AnnualRevenue"] == "0") < 0.1


def test_two_hundred_thousand_accounts_have_unique_ids() -> None:
    accounts = generate_accounts(200_000, seed=3)
    assert len(accounts) == 200_000
    assert accounts["Id"].nunique() == 200_000
    assert list(accounts.columns) == ACCOUNT_HEADER
