"""`icp` against a fake Salesforce org end to end: sync, faults, limits, a killed process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import icp
from tests.fakes.salesforce import FakeSalesforce
from tests.sfdata import outputs
from tests.waiting import settle, wait_until

ACCOUNTS = 300


pytestmark = [pytest.mark.e2e, pytest.mark.org(accounts=ACCOUNTS, settled=True)]


def run(state: Path, *extra: str, command: str = "sync") -> dict[str, Any]:
    code, out, err = icp(command, "--crm", "salesforce", "--state", state, "--json", *extra)
    summary = json.loads(out)
    summary["stderr"] = err
    assert summary["exit_code"] == code, err
    return summary


def patches(org: FakeSalesforce) -> int:
    return sum(1 for r in org.requests if r.method == "PATCH")


def fresh_full_run_agrees(tmp_path: Path) -> bool:
    """A backfill from empty state, as a dry run, finds nothing left to write."""
    summary = run(tmp_path / "fresh", "--dry-run", command="backfill")
    return summary["counts"]["records_to_write"] == 0


def test_sync_writes_every_account_then_nothing_at_three_calls(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = run(state)
    assert first["exit_code"] == 0 and first["counts"]["written"] == ACCOUNTS
    written = outputs(org)
    assert all(v["ICP_Score__c"] is not None and v["ICP_Tier__c"] for v in written.values())
    assert first["estimated_calls"]["method"] == "sObject Collections"
    assert patches(org) == -(-ACCOUNTS // 200)

    settle(org)
    second = run(state)  # our own writes bumped SystemModstamp: pulled again, nothing to write
    assert second["counts"]["records_to_write"] == 0 and patches(org) == -(-ACCOUNTS // 200)
    assert second["counts"]["accounts_pulled"] == ACCOUNTS
    settle(org)
    third = run(state)
    # issue 13.1: rows stamped within `commit_overlap` (300 s) of the previous run's start
    # are read again in case a late commit hid them (here: our own first writes); they
    # cost no write and no extra call
    assert third["counts"]["records_to_write"] == 0 and patches(org) == -(-ACCOUNTS // 200)
    assert third["api_calls"] <= 3
    assert outputs(org) == written


def test_incremental_run_after_edits_equals_a_fresh_full_run(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    run(state)
    ids = sorted(outputs(org))
    for account_id in ids[:15]:
        org.edit("Account", account_id, {"NumberOfEmployees": 220, "Industry": "Software"})
    org.delete("Account", ids[20])
    lost = next(
        i for i, o in org.records("Opportunity").items() if not o.get("IsClosed") and o["AccountId"]
    )
    org.edit("Opportunity", lost, {"StageName": "Closed Won", "IsClosed": True, "IsWon": True})
    summary = run(state)

    assert summary["exit_code"] == 0
    assert summary["counts"]["accounts_deleted"] == 1
    assert summary["counts"]["written"] >= 1
    assert fresh_full_run_agrees(tmp_path)


def test_every_fault_converges_with_nothing_lost(org: FakeSalesforce, tmp_path: Path) -> None:
    state = tmp_path / "state"
    ids = sorted(outputs(org))
    blocked = {"on": True}
    org.add_validation_rule(
        "Account", lambda r: "Route frozen" if blocked["on"] and r["Id"] == ids[7] else None
    )
    org.fail(503, times=1, method="PATCH")
    org.drop(times=1, method="PATCH", after_apply=True)
    org.slow(0.3, times=1, method="PATCH")
    org.lock_rows(ids[:3], times=6)  # more than the writer's 5 attempts: kept for the next run
    first = run(state)
    assert first["exit_code"] == 1
    failed = {f["record_id"]: f["code"] for f in first["failed"]}
    assert failed[ids[7]] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert {failed[i] for i in ids[:3]} == {"UNABLE_TO_LOCK_ROW"}

    blocked["on"] = False
    for _ in range(4):
        last = run(state)
        if last["exit_code"] == 0:
            break
    assert last["exit_code"] == 0
    assert all(v["ICP_Tier__c"] for v in outputs(org).values())
    assert fresh_full_run_agrees(tmp_path)


def test_api_share_stops_writing_exit_1_and_the_rest_waits(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    org.daily_limit = 8  # limits + 2 pages + 1 write reach half of it: the 2nd write waits
    stopped = run(state, "--log-format", "json")
    assert stopped["exit_code"] == 1
    assert "stops at 50%" in (stopped["message"] or "")
    assert stopped["counts"]["written"] == 200 and patches(org) == 1
    org.daily_limit = 15_000
    done = run(state)
    assert done["exit_code"] == 0
    assert all(v["ICP_Tier__c"] for v in outputs(org).values())


def test_revoked_session_exits_3_and_keeps_everything(
    org: FakeSalesforce, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    org.revoke_session()
    code, _, err = icp("sync", "--crm", "salesforce", "--state", tmp_path / "s")
    assert code == 3 and "INVALID_SESSION_ID" in err and "Traceback" not in err
    assert org.access_token not in err
    monkeypatch.setenv("SF_ACCESS_TOKEN", org.issue_token())  # the admin sets a fresh token
    assert run(tmp_path / "s")["exit_code"] == 0


def test_dry_run_shows_the_diff_and_the_calls_it_would_make(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    code, out, err = icp("sync", "--crm", "salesforce", "--state", tmp_path / "s", "--dry-run")
    assert code == 0, err
    assert "ICP_Score__c" in out and "sObject Collections" in out
    assert patches(org) == 0


def test_killed_mid_write_converges_on_rerun(org: FakeSalesforce, tmp_path: Path) -> None:
    state = tmp_path / "state"
    org.slow(0.4, times=10, method="PATCH")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    command = [sys.executable, "-m", "icp_engine.sync.cli", "sync", "--crm",
               "salesforce", "--state", str(state)]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # the writer sends a batch once the previous one is answered, so a second PATCH means
    # the first batch (200) has landed; the org holds the second 0.4 s before applying it
    wait_until(
        lambda: patches(org) >= 2 and any(v["ICP_Tier__c"] for v in outputs(org).values()),
        "the first batch landed and the second is in flight",
        alive=lambda: process.poll() is None,
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 0 < len([v for v in outputs(org).values() if v["ICP_Tier__c"]]) < ACCOUNTS

    rerun = run(state)
    assert rerun["exit_code"] == 0
    assert all(v["ICP_Tier__c"] for v in outputs(org).values())
    assert fresh_full_run_agrees(tmp_path)


def test_live_validation_reports_every_problem_at_once(org: FakeSalesforce) -> None:
    org.remove_field("Account", "ICP_Route__c")
    org.remove_field("Account", "Industry")
    org.set_field("Account", "ICP_Reasons__c", length=100)
    org.set_field("Account", "ICP_Score__c", updateable=False)
    org.set_field(
        "Account",
        "ICP_Tier__c",
        picklistValues=[
            {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
            for v in ("A", "B")
        ],
    )
    code, _, err = icp("mappings", "validate", "--crm", "salesforce", "--live")
    assert code == 2
    assert "'Industry'" in err and "ICP_Route__c" in err and "apply" in err
    assert "holds 100 characters" in err and "read-only" in err and "lacking 'C', 'D'" in err
    assert "salesforce.yaml:" in err


def test_apply_creates_missing_output_fields_or_says_how(org: FakeSalesforce) -> None:
    org.remove_field("Account", "ICP_Route__c")
    org.remove_field("Account", "ICP_Tier__c")
    code, out, err = icp("mappings", "apply", "--crm", "salesforce")
    assert code == 0, err
    assert "created" in out and "ICP_Route__c" in out
    assert org.fields("Account")["ICP_Tier__c"]["type"] == "picklist"
    code, _, err = icp("mappings", "validate", "--crm", "salesforce", "--live")
    assert code == 0, err

    org.remove_field("Account", "ICP_Segment__c")
    org.can_customize = False
    code, out, _ = icp("mappings", "apply", "--crm", "salesforce")
    assert code == 2 and "NOT created" in out and "Object Manager > Account" in out


def test_fields_the_org_lacks_are_described_once_not_every_run(
    org: FakeSalesforce, tmp_path: Path
) -> None:
    org.remove_field("Account", "Funding_Stage__c")
    org.remove_field("Opportunity", "Loss_Reason__c")
    state = tmp_path / "state"
    assert run(state)["exit_code"] == 0
    describes = sum("describe" in r.path for r in org.requests)
    rejected = sum(r.status == 400 for r in org.requests)
    assert (describes, rejected) == (2, 2)
    settle(org)
    run(state)
    settle(org)
    third = run(state)
    assert sum("describe" in r.path for r in org.requests) == describes
    assert sum(r.status == 400 for r in org.requests) == rejected
    assert third["api_calls"] <= 3
