"""Salesforce answers our own fake never gave before (issue 13, items 1-6), each driven end
to end through `icp --crm salesforce` against the fake org."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icp_engine.mappings as bundled
import pytest
import yaml
from icp_engine.connectors.salesforce.access import FieldAccess, grant_access
from icp_engine.sync.state.store import StateStore
from simple_salesforce import Salesforce

from tests.fakes.salesforce import FakeSalesforce
from tests.sfdata import outputs
from tests.test_salesforce_e2e import fresh_full_run_agrees, icp, run
from tests.waiting import settle

ACCOUNTS = 300


pytestmark = [pytest.mark.e2e, pytest.mark.org(accounts=ACCOUNTS, settled=True)]


# -- item 1: late commits ----------------------------------------------------------------


def test_a_late_commit_stamped_before_the_watermark_is_still_read(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    """`SystemModstamp` is stamped when the transaction runs, the row is visible when it
    commits (salesforce.stackexchange.com q/234824): a row stamped before the previous
    run started, committed after it read, must be read by the next run."""
    state = tmp_path / "state"
    started = datetime.now(UTC)
    first = run(state)
    assert first["exit_code"] == 0 and first["counts"]["written"] == ACCOUNTS
    settle(org)
    late = sorted(outputs(org))[5]
    before = outputs(org)[late]
    # the transaction began 2 s before the first run started and commits only now
    org.edit(
        "Account",
        late,
        {"NumberOfEmployees": 5, "Industry": "Government", "AnnualRevenue": 1000},
        stamped=started - timedelta(seconds=2),
    )
    second = run(state)
    assert second["exit_code"] == 0
    assert second["counts"]["written"] == second["counts"]["records_to_write"] == 1
    assert outputs(org)[late] != before
    settle(org)
    third = run(state)  # read again within the overlap, but nothing is written twice
    assert third["counts"]["records_to_write"] == 0 and third["counts"]["written"] == 0
    assert fresh_full_run_agrees(tmp_path)


def sf_mappings(folder: Path, **settings: object) -> Path:
    """A mappings directory whose salesforce.yaml is the bundled one with `settings`."""
    folder.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(bundled.default("salesforce.yaml").read_text(encoding="utf-8"))
    data["settings"] = {**(data.get("settings") or {}), "bulk_poll_seconds": 0.05, **settings}
    target = folder / "salesforce.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return folder


# -- item 3: REQUEST_LIMIT_EXCEEDED that is a concurrency limit --------------------------


def test_a_concurrency_limit_is_waited_out_not_taken_for_the_daily_limit(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    """ "ConcurrentPerOrgLongTxn Limit exceeded." (mautic/mautic#5006) is momentary; only
    "TotalRequests Limit exceeded." is the daily allowance."""
    org.concurrency_limit(times=1, path_contains="/query")
    org.concurrency_limit(times=1, method="PATCH")
    first = run(tmp_path / "state")
    assert first["exit_code"] == 0, first["stderr"]
    assert first["counts"]["written"] == ACCOUNTS and first["counts"]["retries"] >= 1
    assert [r.status for r in org.requests].count(403) == 2
    assert all(v["ICP_Tier__c"] for v in outputs(org).values())


def test_the_daily_limit_still_stops_the_run(org: FakeSalesforce, tmp_path: Path) -> None:
    org.fail(403, times=1, method="PATCH")  # "TotalRequests Limit exceeded."
    stopped = run(tmp_path / "state")
    assert stopped["exit_code"] == 1 and "API limit is reached" in (stopped["message"] or "")
    assert stopped["counts"]["written"] == 0


# -- item 4: a Bulk ingest job that ends Failed may have saved rows ----------------------


def test_a_failed_bulk_ingest_job_keeps_what_it_saved_and_retries_the_rest(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    """A job that ends `Failed` has processed part of its rows; its successful, failed
    and unprocessed results say which (Salesforce, "Understanding Bulk API 2.0 Ingest")."""
    folder = sf_mappings(tmp_path / "m", bulk_write_threshold=10, bulk_job_size=1000)
    state = tmp_path / "state"
    org.bulk_leave_unprocessed = 100  # every job ends Failed with its last 100 rows left
    first = run(state, "--mappings", str(folder))
    assert first["exit_code"] == 1
    assert first["counts"]["written"] == ACCOUNTS - 100
    assert first["counts"]["failed"] == 100
    assert {f["code"] for f in first["failed"]} == {"UNPROCESSED"}
    assert sum(1 for v in outputs(org).values() if v["ICP_Tier__c"]) == ACCOUNTS - 100

    org.bulk_leave_unprocessed = 0
    settle(org)
    second = run(state, "--mappings", str(folder))
    assert second["exit_code"] == 0 and second["counts"]["written"] == 100
    assert all(v["ICP_Tier__c"] for v in outputs(org).values())


# -- item 2: Bulk query jobs without ORDER BY, and a REST fallback -----------------------


def bulk_queries(org: FakeSalesforce) -> list[str]:
    return [
        json.loads(r.body)["query"]
        for r in org.requests
        if r.method == "POST" and r.path.endswith("/jobs/query")
    ]


def test_bulk_query_jobs_carry_no_order_by(org: FakeSalesforce, tmp_path: Path) -> None:
    """ORDER BY disables PK chunking on a Bulk 2.0 query ("Troubleshooting Query
    Timeouts", Salesforce's Bulk API 2.0 guide)."""
    org.page_size = 100  # a REST first page that is not the whole result
    folder = sf_mappings(tmp_path / "m", bulk_pull_threshold=100)
    first = run(tmp_path / "state", "--mappings", str(folder), command="backfill")
    assert first["exit_code"] == 0 and first["counts"]["accounts_pulled"] == ACCOUNTS
    queries = bulk_queries(org)
    assert queries and not any("ORDER BY" in q.upper() for q in queries)


def test_a_failed_bulk_query_job_falls_back_to_rest_pages(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    """Airbyte's source-salesforce switches to REST when a bulk job fails
    (airbytehq/airbyte#45595); so do we, instead of ending the run."""
    org.page_size = 100
    folder = sf_mappings(tmp_path / "m", bulk_pull_threshold=100)
    org.bulk_query_failures = 1  # the account job fails; the opportunity job works
    first = run(tmp_path / "state", "--mappings", str(folder), command="backfill")
    assert first["exit_code"] == 0, first["stderr"]
    assert "through REST pages instead" in first["stderr"]
    assert first["counts"]["accounts_pulled"] == ACCOUNTS
    assert first["counts"]["written"] == ACCOUNTS
    assert all(v["ICP_Tier__c"] for v in outputs(org).values())


# -- item 5: no Sforce-Limit-Info on the answers -----------------------------------------


def test_without_limit_headers_the_allowance_comes_from_limits(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    """`GET /limits/` says `DailyApiRequests` Max and Remaining: the api_share check works
    even when no answer carries `Sforce-Limit-Info`."""
    org.limit_info_header = False
    org.daily_limit = 8  # limits + 2 pages + 1 write reach half of it: the 2nd write waits
    stopped = run(tmp_path / "state")
    assert stopped["exit_code"] == 1 and "stops at 50%" in (stopped["message"] or "")
    assert stopped["counts"]["written"] == 200
    org.daily_limit = 15_000
    assert run(tmp_path / "state")["exit_code"] == 0
    assert all(v["ICP_Tier__c"] for v in outputs(org).values())


# -- issue 10, item 2: only a confirmation counts ----------------------------------------


def scored_accounts(state: Path) -> int:
    with StateStore(state) as store:
        return len(store.scores("salesforce"))


@pytest.mark.parametrize("body", [{"status": "ok"}, "<html><body>Gateway</body></html>", ""])
def test_a_write_answered_200_without_save_results_writes_nothing(
    org: FakeSalesforce, tmp_path: Path, body: object
) -> None:
    state = tmp_path / "state"
    org.fail(200, times=20, method="PATCH", body=body)  # every attempt of both batches
    first = run(state)
    assert first["exit_code"] == 1 and first["counts"]["written"] == 0, first["stderr"]
    assert first["counts"]["failed"] == ACCOUNTS
    assert not any(v["ICP_Tier__c"] for v in outputs(org).values())
    settle(org)
    with org._lock:
        org._faults.clear()
    second = run(state)
    assert second["exit_code"] == 0 and second["counts"]["failed"] == 0
    assert all(v["ICP_Tier__c"] for v in outputs(org).values())


def test_a_query_page_that_is_not_a_page_ends_the_pull_with_an_error(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    assert run(state)["exit_code"] == 0 and scored_accounts(state) == ACCOUNTS
    settle(org)
    org.fail(200, times=20, path_contains="/query", body={"status": "ok"})
    code, _, err = icp("backfill", "--crm", "salesforce", "--state", state)
    assert code == 1
    assert "not one" in err and "Traceback" not in err
    assert scored_accounts(state) == ACCOUNTS  # nobody taken for deleted


# -- item 6: fields that exist but field-level security hides ----------------------------


def test_validate_live_tells_a_hidden_field_from_a_missing_one(org: FakeSalesforce) -> None:
    org.hide_field("Account", "ICP_Route__c")  # exists; the profile cannot see it
    org.remove_field("Account", "ICP_Segment__c")  # does not exist
    code, _, err = icp("mappings", "validate", "--crm", "salesforce", "--live")
    assert code == 2
    assert "Account.ICP_Route__c exists but the integration user cannot see it" in err
    assert "Set Field-Level Security" in err
    assert "no field 'ICP_Segment__c'" in err and "apply" in err


def test_apply_grants_the_fields_it_creates_then_validate_passes_and_sync_writes_them(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    """A field created through the API is invisible to the user until field-level
    security grants it: `apply` creates the ICP Engine permission set, a FieldPermissions
    record per field (Read and Edit) and assigns the set to the running user (changed
    deliberately: `apply` used to only say what to grant)."""
    org.new_fields_hidden = True
    org.remove_field("Account", "ICP_Route__c")
    org.remove_field("Account", "ICP_Score__c")
    org.hide_field("Account", "ICP_Tier__c")  # existed before, hidden from this user
    code, out, err = icp("mappings", "apply", "--crm", "salesforce")
    assert code == 0, err
    assert "created      ICP_Route__c: created" in out
    assert "granted      ICP_Score__c: the integration user can now read and edit it" in out
    assert "granted      ICP_Tier__c" in out and "NOT" not in out
    sets = list(org.records("PermissionSet").values())
    assert [(s["Name"], s["Label"]) for s in sets] == [("ICP_Engine", "ICP Engine")]
    perms = {p["Field"]: p for p in org.records("FieldPermissions").values()}
    assert set(perms) == {"Account.ICP_Route__c", "Account.ICP_Score__c", "Account.ICP_Tier__c"}
    assert all(p["ParentId"] == sets[0]["Id"] and p["SobjectType"] == "Account" for p in
               perms.values()) and all(p["PermissionsEdit"] for p in perms.values())  # fmt: skip
    assigned = [(a["AssigneeId"], a["PermissionSetId"])
                for a in org.records("PermissionSetAssignment").values()]  # fmt: skip
    assert assigned == [(org.user_id, sets[0]["Id"])]
    code, _, err = icp("mappings", "validate", "--crm", "salesforce", "--live")
    assert code == 0, err
    first = run(tmp_path / "state")
    assert first["exit_code"] == 0 and first["counts"]["written"] == ACCOUNTS
    assert all(v["ICP_Route__c"] and v["ICP_Score__c"] is not None for v in outputs(org).values())
    code, out, _ = icp("mappings", "apply", "--crm", "salesforce")  # again: nothing to do
    assert code == 0 and "all 5 output fields exist" in out
    assert len(org.records("PermissionSetAssignment")) == 1


def test_apply_refused_permission_sets_says_what_to_grant_by_hand(org: FakeSalesforce) -> None:
    """Without "Manage Profiles and Permission Sets" the create is refused: `apply` names
    the Setup path and the fields, and exits 2; validate --live still tells hidden."""
    org.new_fields_hidden = True
    org.can_manage_permissions = False
    org.remove_field("Account", "ICP_Route__c")
    code, out, err = icp("mappings", "apply", "--crm", "salesforce")
    assert code == 2, err
    assert "created      ICP_Route__c: created" in out
    assert "NOT granted  ICP_Route__c: Salesforce refused to grant access" in out
    assert "INSUFFICIENT_ACCESS_OR_READONLY" in out
    assert "Setup > Permission Sets > New (label 'ICP Engine'" in out
    assert "Read and Edit on Account.ICP_Route__c" in out and "Traceback" not in out + err
    assert not org.records("PermissionSet") and not org.records("PermissionSetAssignment")
    code, _, err = icp("mappings", "validate", "--crm", "salesforce", "--live")
    assert code == 2 and "ICP_Route__c exists but the integration user cannot see it" in err
    org.grant_field("Account", "ICP_Route__c")  # the admin follows the steps
    code, _, err = icp("mappings", "validate", "--crm", "salesforce", "--live")
    assert code == 0, err


def test_a_bulk_job_failing_on_a_hidden_field_says_what_to_grant(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    """Bulk answers "Field name not found" for a field the user cannot see."""
    org.hide_field("Account", "ICP_Route__c")
    folder = sf_mappings(tmp_path / "m", bulk_write_threshold=10)
    first = run(tmp_path / "state", "--mappings", str(folder))
    assert first["exit_code"] == 1 and first["counts"]["written"] == 0
    assert {f["code"] for f in first["failed"]} == {"BULK_JOB_FAILED"}
    message = first["failed"][0]["message"]
    assert "Field name not found" in message and "Set Field-Level Security" in message
    assert first["counts"]["retries"] == 0  # not retried blindly


def test_a_username_login_finds_its_user_by_username_and_reuses_the_permission_set(
    org: FakeSalesforce, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SF_USERNAME the running user is `SELECT Id FROM User WHERE Username = ...`
    (no userinfo call); an existing ICP_Engine set is reused, not created twice."""
    monkeypatch.setenv("SF_USERNAME", org.username)
    (existing,) = org.add_records("PermissionSet", [{"Name": "ICP_Engine", "Label": "ICP Engine"}])
    org.new_fields_hidden = True
    org.hide_field("Account", "ICP_Segment__c")
    client = Salesforce(
        username=org.username,
        password=org.password,
        security_token=org.security_token,
        session=org.redirecting_session(),
    )
    answer = grant_access(client, [FieldAccess("Account", "ICP_Segment__c", True)])
    assert answer == {"ICP_Segment__c": None}
    assert list(org.records("PermissionSet")) == [existing]
    assert [a["AssigneeId"] for a in org.records("PermissionSetAssignment").values()] == [
        org.user_id
    ]
    assert not any(r.path.endswith("/userinfo") for r in org.requests)
    assert "ICP_Segment__c" in org.fields("Account")  # describe sees it again
