"""The Salesforce connector against a fake org on loopback: real HTTPS, real simple-salesforce."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from icp_engine.connectors.base import PullContext, RecordUpdate
from icp_engine.connectors.errors import ConnectError, LimitReachedError, TransientError
from icp_engine.connectors.salesforce.connector import SalesforceConnector
from icp_engine.sync.config import load_config

from tests.fakes.salesforce import FakeSalesforce
from tests.sfdata import seed_org


def connector(**settings: Any) -> SalesforceConnector:
    mapping = load_config("salesforce", None).mapping
    settings = {"bulk_poll_seconds": 0.05, **settings}
    return SalesforceConnector(
        mapping.model_copy(update={"settings": settings}), retry_wait=0.05, sleep=lambda _: None
    )


pytestmark = pytest.mark.org(page_size=200)


def pull_all(sf: SalesforceConnector, kind: str, since: datetime | None = None) -> pd.DataFrame:
    frames = list(sf.pull(kind, PullContext(since)))  # type: ignore[arg-type]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def test_full_pull_pages_through_every_record_with_current_outputs(org: FakeSalesforce) -> None:
    account_ids, opportunity_ids = seed_org(org, 450)
    first = account_ids[0]
    org.edit("Account", first, {"ICP_Score__c": 87.0, "ICP_Tier__c": "A"})
    sf = connector()
    sf.connect()
    accounts = pull_all(sf, "account")
    opportunities = pull_all(sf, "opportunity")

    assert sorted(accounts["account_id"]) == sorted(account_ids)
    assert sorted(opportunities["opportunity_id"]) == sorted(opportunity_ids)
    row = accounts.set_index("account_id").loc[first]
    assert row["current_score"] == 87 and row["current_tier"] == "A"
    assert str(accounts["modified_at"].dtype).startswith("datetime64")
    assert opportunities["is_won"].isin([True, False]).all()
    pages = -(-450 // 200) + -(-len(opportunity_ids) // 200)
    assert sf.api_calls == 1 + pages  # limits + one call per page
    queries = [r for r in org.requests if "/query" in r.path]
    account_queries = [str(r.query) for r in queries if "FROM Account " in str(r.query)]
    assert len(account_queries) == 1  # the next pages follow nextRecordsUrl
    assert "ICP_Score__c" in account_queries[0]


def test_incremental_pull_reads_changes_and_deletions_in_one_query(org: FakeSalesforce) -> None:
    account_ids, _ = seed_org(org, 50)
    since = org.now() + timedelta(milliseconds=1)
    org.edit("Account", account_ids[1], {"Industry": "Retail"})
    org.delete("Account", account_ids[2])
    sf = connector(commit_overlap=0)  # no look-back for late commits (tested end to end)
    sf.connect()
    calls = sf.api_calls
    changed = pull_all(sf, "account", since)

    assert list(changed["account_id"]) == [account_ids[1]]
    assert changed["industry"].iloc[0] == "E-commerce/Retail"  # through the value map
    assert sf.deleted_ids("account", since, set(account_ids)) == {account_ids[2]}
    assert sf.api_calls == calls + 1
    assert any("/queryAll" in r.path for r in org.requests)


def test_missing_mapped_field_reads_as_empty_after_one_describe(
    org: FakeSalesforce, caplog: pytest.LogCaptureFixture
) -> None:
    seed_org(org, 20)
    org.remove_field("Account", "Funding_Stage__c")
    sf = connector()
    with caplog.at_level(logging.WARNING):
        accounts = pull_all(sf, "account")
    assert len(accounts) == 20 and accounts["funding_stage"].isna().all()
    assert "Funding_Stage__c" in caplog.text
    assert sum("describe" in r.path for r in org.requests) == 1


def test_transient_read_failures_are_retried(org: FakeSalesforce) -> None:
    seed_org(org, 450)
    sf = connector()
    sf.connect()
    org.fail(503, times=1, path_contains="/query")
    org.drop(times=1, path_contains="/query")
    assert len(pull_all(sf, "account")) == 450


def test_collections_write_reports_each_record(org: FakeSalesforce) -> None:
    ids, _ = seed_org(org, 6)
    org.delete("Account", ids[2])
    org.lock_rows([ids[3]])
    org.add_validation_rule(
        "Account", lambda r: "Segment is locked" if r.get("ICP_Segment__c") == "Locked" else None
    )
    sf = connector()
    sf.connect()
    sf.begin_write(6)
    updates = [
        RecordUpdate(ids[0], {"ICP_Score__c": 87.4, "ICP_Tier__c": "A"}),
        RecordUpdate(ids[1], {"ICP_Reasons__c": "x" * 300}),
        RecordUpdate(ids[2], {"ICP_Score__c": 10}),
        RecordUpdate(ids[3], {"ICP_Score__c": 20}),
        RecordUpdate(ids[4], {"ICP_Segment__c": "Locked"}),
        RecordUpdate(ids[5], {"ICP_Segment__c": None}),
    ]
    results = {r.record_id: r for r in sf.write(updates)}

    assert results[ids[0]].ok and org.records("Account")[ids[0]]["ICP_Score__c"] == 87
    assert results[ids[1]].code == "STRING_TOO_LONG" and not results[ids[1]].transient
    assert results[ids[2]].deleted
    assert results[ids[3]].code == "UNABLE_TO_LOCK_ROW" and results[ids[3]].transient
    assert results[ids[4]].code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert "Segment is locked" in (results[ids[4]].message or "")
    assert results[ids[5]].ok and org.records("Account")[ids[5]].get("ICP_Segment__c") is None
    assert sf.write_calls == 1
    patch = [r for r in org.requests if r.method == "PATCH"]
    assert len(patch) == 1 and patch[0].path.endswith("/composite/sobjects")


def test_large_change_sets_go_through_a_bulk_ingest_job(org: FakeSalesforce) -> None:
    ids, _ = seed_org(org, 30)
    org.delete("Account", ids[0])
    org.lock_rows([ids[1]])
    sf = connector(bulk_write_threshold=10, bulk_job_size=100)
    plan = sf.begin_write(30)
    assert (plan.method, plan.bulk, plan.batch_size) == ("Bulk API 2.0", True, 100)
    assert "bulk_write_threshold" in plan.note
    updates = [
        RecordUpdate(i, {"ICP_Score__c": n, "ICP_Route__c": None}) for n, i in enumerate(ids)
    ]
    results = {r.record_id: r for r in sf.write(updates)}

    assert results[ids[0]].deleted
    assert results[ids[1]].transient and results[ids[1]].code == "UNABLE_TO_LOCK_ROW"
    assert all(results[i].ok for i in ids[2:])
    stored = org.records("Account")
    assert [stored[i]["ICP_Score__c"] for i in ids[2:5]] == [2, 3, 4]
    assert any("/jobs/ingest" in r.path for r in org.requests)


def test_large_pulls_use_a_bulk_query_job(org: FakeSalesforce) -> None:
    ids, _ = seed_org(org, 450)
    sf = connector(bulk_pull_threshold=300)
    accounts = pull_all(sf, "account")
    assert sorted(accounts["account_id"]) == sorted(ids)
    assert any("/jobs/query" in r.path for r in org.requests)


def test_write_stops_before_the_share_of_the_daily_allowance(org: FakeSalesforce) -> None:
    ids, _ = seed_org(org, 3)
    org.daily_limit = 1000
    org.api_usage = 499
    sf = connector(api_share=0.5)
    sf.connect()  # this call takes usage to 500: half the allowance
    sf.begin_write(1)
    with pytest.raises(LimitReachedError, match="500 of its 1000"):
        sf.write([RecordUpdate(ids[0], {"ICP_Score__c": 1})])
    assert not any(r.method == "PATCH" for r in org.requests)


def test_org_limit_exceeded_stops_writing(org: FakeSalesforce) -> None:
    ids, _ = seed_org(org, 3)
    sf = connector(api_share=1.0)
    sf.connect()
    org.api_usage = org.daily_limit
    sf.begin_write(1)
    with pytest.raises(LimitReachedError, match="REQUEST_LIMIT_EXCEEDED"):
        sf.write([RecordUpdate(ids[0], {"ICP_Score__c": 1})])


def test_whole_call_failures_are_transient(org: FakeSalesforce) -> None:
    ids, _ = seed_org(org, 3)
    sf = connector()
    sf.connect()
    sf.begin_write(1)
    org.fail(503, times=1, method="PATCH")
    with pytest.raises(TransientError, match="503"):
        sf.write([RecordUpdate(ids[0], {"ICP_Score__c": 1})])
    org.drop(times=1, method="PATCH")
    with pytest.raises(TransientError, match="connection"):
        sf.write([RecordUpdate(ids[0], {"ICP_Score__c": 1})])


def test_revoked_session_id_exits_3_without_the_token(org: FakeSalesforce) -> None:
    sf = connector()
    sf.connect()
    org.revoke_session()
    with pytest.raises(ConnectError) as caught:
        list(sf.pull("account", None))
    assert "INVALID_SESSION_ID" in str(caught.value)
    assert org.access_token not in str(caught.value)


def test_password_login_logs_in_again_when_the_session_is_revoked(
    org: FakeSalesforce, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_org(org, 5)
    monkeypatch.delenv("SF_INSTANCE_URL")
    monkeypatch.delenv("SF_ACCESS_TOKEN")
    monkeypatch.setenv("SF_USERNAME", org.username)
    monkeypatch.setenv("SF_PASSWORD", org.password)
    monkeypatch.setenv("SF_SECURITY_TOKEN", org.security_token)
    mapping = load_config("salesforce", None).mapping
    sf = SalesforceConnector(mapping, session=org.redirecting_session(), retry_wait=0.05)
    sf.connect()
    org.revoke_session()
    assert len(pull_all(sf, "account")) == 5


def test_rejected_password_is_a_connect_error_naming_no_secret(
    org: FakeSalesforce, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SF_INSTANCE_URL")
    monkeypatch.delenv("SF_ACCESS_TOKEN")
    monkeypatch.setenv("SF_USERNAME", org.username)
    monkeypatch.setenv("SF_PASSWORD", "wrong-password-123")
    mapping = load_config("salesforce", None).mapping
    sf = SalesforceConnector(mapping, session=org.redirecting_session())
    with pytest.raises(ConnectError, match="refused the login") as caught:
        sf.connect()
    assert "wrong-password-123" not in str(caught.value)


def test_missing_credentials_name_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SF_INSTANCE_URL", "SF_ACCESS_TOKEN", "SF_USERNAME", "SF_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SF_INSTANCE_URL", "https://example.my.salesforce.com")
    with pytest.raises(ConnectError, match="SF_ACCESS_TOKEN not set"):
        connector().connect()
    monkeypatch.delenv("SF_INSTANCE_URL")
    monkeypatch.setenv("SF_CONSUMER_KEY", "key")
    monkeypatch.setenv("SF_USERNAME", "ops@example.com")
    with pytest.raises(ConnectError, match="SF_PRIVATE_KEY_FILE not set"):
        connector().connect()


def test_soql_values_only_through_format_soql() -> None:
    sf = connector()
    since = datetime(2026, 1, 31, 8, 30, tzinfo=UTC)
    soql = sf.soql("account", since)
    assert soql.startswith("SELECT Id, Name, Website")
    assert "ICP_Score__c" in soql and "IsDeleted" in soql
    assert "WHERE SystemModstamp >= 2026-01-31T08:30:00.000Z" in soql
    later = sf.soql("account", datetime(2026, 1, 31, 8, 30, 0, 123456, tzinfo=UTC))
    assert ">= 2026-01-31T08:30:00.123Z" in later
    assert soql.endswith("ORDER BY SystemModstamp, Id")


def test_slow_replies_past_the_timeout_are_retried(org: FakeSalesforce) -> None:
    seed_org(org, 30)
    sf = connector(timeout=0.3)
    sf.connect()
    org.slow(1.0, times=1, path_contains="/query")
    assert len(pull_all(sf, "account")) == 30
    assert sum(1 for r in org.requests if "/query" in r.path) == 2
