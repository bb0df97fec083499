"""The Salesforce connector replaying recorded HTTP exchanges, offline, with no server.

Recorded against the fake org with `ICP_RECORD=1 pytest tests/test_salesforce_cassettes.py`
(or against a sandbox with `ICP_RECORD=live`, see the README). Replay checks that the
connector sends exactly the recorded requests (method, path, query, JSON body) and reads
the recorded answers the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack

import pandas as pd
import pytest
from icp_engine.connectors.base import RecordUpdate
from icp_engine.connectors.salesforce.connector import SalesforceConnector
from icp_engine.sync.config import load_config

from tests.fakes.salesforce.soql import normalize_id
from tests.recording import CASSETTES, LIVE, RECORDING, cassette
from tests.sfdata import use_org

PLACEHOLDER = "https://sandbox.my.salesforce.test"
ACCOUNTS = [
    {"Id": normalize_id(f"0015g00000Cas{n:02d}"), "Name": f"Recorded {n}",
     "NumberOfEmployees": 40 + 30 * n, "Industry": "Technology" if n % 2 else "Retail",
     "BillingCountry": "US"}
    for n in range(7)
]  # fmt: skip


@pytest.fixture
def org_origin(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """While recording: a seeded fake org. While replaying: only the placeholder origin."""
    with ExitStack() as stack:
        if LIVE:  # a real sandbox: credentials from the environment (see the README)
            yield os.environ["SF_INSTANCE_URL"].rstrip("/")
        elif RECORDING:
            from tests.fakes.salesforce import FakeSalesforce

            org = stack.enter_context(FakeSalesforce(page_size=5))
            org.add_accounts(ACCOUNTS)
            org.delete("Account", ACCOUNTS[6]["Id"])
            use_org(monkeypatch, org)
            yield org.instance_url
        else:
            monkeypatch.setenv("SF_INSTANCE_URL", PLACEHOLDER)
            monkeypatch.setenv("SF_ACCESS_TOKEN", "replayed-session")
            for name in ("SF_USERNAME", "SF_PASSWORD", "SF_CONSUMER_KEY"):
                monkeypatch.delenv(name, raising=False)
            yield PLACEHOLDER


def connector(**settings: object) -> SalesforceConnector:
    mapping = load_config("salesforce", None).mapping
    return SalesforceConnector(
        mapping.model_copy(update={"settings": {"bulk_poll_seconds": 0.05, **settings}}),
        retry_wait=0.05,
    )


def test_replayed_pull_pages_and_collections_write(org_origin: str) -> None:
    with cassette("salesforce", "pull_and_write", org_origin, PLACEHOLDER):
        sf = connector()
        sf.connect()
        accounts = pd.concat(list(sf.pull("account")), ignore_index=True)
        ids = sorted(accounts["account_id"])
        sf.begin_write(3)
        results = sf.write(
            [
                RecordUpdate(ids[0], {"ICP_Score__c": 71, "ICP_Tier__c": "A"}),
                RecordUpdate(ids[1], {"ICP_Reasons__c": "r" * 300}),
                RecordUpdate(ACCOUNTS[6]["Id"], {"ICP_Score__c": 5}),
            ]
        )
    assert [r.ok for r in results] == [True, False, False]
    assert results[2].deleted  # an id the org does not hold
    if LIVE:
        return
    assert ids == sorted(a["Id"] for a in ACCOUNTS[:6])  # two pages; the deleted one is gone
    assert sf.api_calls == 4  # limits, two query pages, one collections call
    assert results[1].code == "STRING_TOO_LONG"


@pytest.mark.skipif(LIVE, reason="writes to fixed record ids of the fake org")
def test_replayed_bulk_ingest_job(org_origin: str) -> None:
    with cassette("salesforce", "bulk_ingest", org_origin, PLACEHOLDER):
        sf = connector(bulk_write_threshold=2)
        sf.connect()
        plan = sf.begin_write(3)
        results = sf.write(
            [RecordUpdate(a["Id"], {"ICP_Score__c": 10 + n}) for n, a in enumerate(ACCOUNTS[4:])]
        )
    by_id = {r.record_id: r for r in results}
    assert plan.method == "Bulk API 2.0" and plan.bulk
    assert by_id[ACCOUNTS[4]["Id"]].ok and by_id[ACCOUNTS[5]["Id"]].ok
    assert by_id[ACCOUNTS[6]["Id"]].deleted


def test_cassettes_hold_no_secret_and_no_real_host() -> None:
    files = sorted((CASSETTES / "salesforce").glob("*.yaml"))
    assert {f.stem for f in files} >= {"pull_and_write", "bulk_ingest"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "Authorization" not in text and "Bearer" not in text, path
        assert "127.0.0.1" not in text, path
        assert PLACEHOLDER.removeprefix("https://") in text, path
