"""Sample CRM data loaded into the fake Salesforce org, and the environment to reach it."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from icp_engine.connectors.salesforce.session import ENV_VARS
from icp_engine.connectors.sample import generate_accounts, generate_opportunities

from tests.fakes.salesforce import FakeSalesforce

_NUMBERS = {"NumberOfEmployees", "AnnualRevenue", "Employees_Last_Year__c", "Amount"}
_BOOLEANS = {"IsClosed", "IsWon"}
_SET_BY_ORG = {"SystemModstamp", "CreatedDate", "ICP_Score__c", "ICP_Tier__c", "ICP_Segment__c",
               "ICP_Reasons__c", "ICP_Route__c"}  # fmt: skip


def _typed(frame: pd.DataFrame) -> list[dict[str, Any]]:
    records = []
    for row in frame.to_dict("records"):
        record: dict[str, Any] = {}
        for name, value in row.items():
            if name in _SET_BY_ORG:
                continue
            if value in ("", None):
                record[name] = None
            elif name in _NUMBERS:
                number = float(str(value))
                record[name] = int(number) if number.is_integer() else number
            elif name in _BOOLEANS:
                record[name] = str(value).lower() == "true"
            else:
                record[name] = value
        records.append(record)
    return records


def seed_org(org: FakeSalesforce, accounts: int, seed: int = 7) -> tuple[list[str], list[str]]:
    """Load `accounts` generated accounts and their opportunities; return both id lists."""
    account_rows = generate_accounts(accounts, seed=seed)
    opportunity_rows = generate_opportunities(account_rows, seed=seed)
    account_ids = org.add_accounts(_typed(account_rows))
    opportunity_ids = org.add_opportunities(_typed(opportunity_rows))
    return account_ids, opportunity_ids


def use_org(monkeypatch: pytest.MonkeyPatch, org: FakeSalesforce) -> None:
    """Point the engine at the fake org with a session id, as a scheduler's env would."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SF_INSTANCE_URL", org.instance_url)
    monkeypatch.setenv("SF_ACCESS_TOKEN", org.access_token)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", org.ca_path)


def outputs(org: FakeSalesforce) -> dict[str, dict[str, Any]]:
    """The ICP fields of every live account in the org."""
    fields = ("ICP_Score__c", "ICP_Tier__c", "ICP_Segment__c", "ICP_Reasons__c", "ICP_Route__c")
    return {
        record_id: {f: record.get(f) for f in fields}
        for record_id, record in org.records("Account").items()
        if not record.get("IsDeleted")
    }
