"""`icp --crm hubspot` against the fake portal end to end: sync, faults, token, dry run,
more than 10,000 changed companies, the daily limit, a deleted company, a killed process."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import icp_engine.mappings as bundled
import pytest
import yaml
from icp_engine.connectors.base import WritePlan
from icp_engine.connectors.hubspot.connector import HubSpotConnector
from icp_engine.sync.state.store import StateStore

from tests.cli_helpers import icp
from tests.fakes.hubspot import FakeHubSpot
from tests.hsdata import seed_portal
from tests.waiting import wait_until

COMPANIES = 200


def seed(portal: FakeHubSpot, n: int = COMPANIES) -> list[str]:
    return seed_portal(portal, n, deals_per_company=2.0)


pytestmark = [pytest.mark.e2e, pytest.mark.portal(companies=COMPANIES, deals_per_company=2.0)]


def run(state: Path, *extra: str, command: str = "sync") -> dict[str, Any]:
    code, out, err = icp(command, "--crm", "hubspot", "--state", state, "--json", *extra)
    summary = json.loads(out)
    assert summary["exit_code"] == code, err
    return summary


def updates(portal: FakeHubSpot) -> int:
    return sum(1 for r in portal.requests if r.path.endswith("/batch/update"))


def test_sync_writes_every_company_then_nothing(portal: FakeHubSpot, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = run(state)
    assert first["exit_code"] == 0 and first["counts"]["written"] == COMPANIES
    assert updates(portal) == -(-COMPANIES // 100)
    companies = portal.objects("companies")
    assert all(c["icp_score"] not in (None, "") and c["icp_tier"] for c in companies.values())
    second = run(state)  # our writes bumped hs_lastmodifieddate: read again, nothing to write
    assert second["counts"]["records_to_write"] == 0 and updates(portal) == 2
    assert portal.objects("companies") == companies
    fresh = run(tmp_path / "fresh", "--dry-run", command="backfill")
    assert fresh["counts"]["records_to_write"] == 0


def test_a_poisoned_company_fails_alone_then_converges(portal: FakeHubSpot, tmp_path: Path) -> None:
    state = tmp_path / "state"
    bad = sorted(portal.objects("companies"))[17]
    portal.poison([bad])
    portal.fail(503, times=1, method="POST", path_contains="batch/update")
    portal.burst(1)
    first = run(state)
    assert first["exit_code"] == 1
    assert [(f["record_id"], f["code"]) for f in first["failed"]] == [(bad, "VALIDATION_ERROR")]
    assert first["counts"]["written"] == COMPANIES - 1
    portal.clear_faults()
    second = run(state)
    assert second["exit_code"] == 0 and second["counts"]["written"] == 1
    assert portal.rate_limited == 1


def test_rejected_token_exits_3_without_printing_it(
    portal: FakeHubSpot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-secret-value")
    code, out, err = icp("sync", "--crm", "hubspot", "--state", tmp_path / "s")
    assert code == 3 and "INVALID_AUTHENTICATION" in err and "Traceback" not in err
    assert "pat-na1-secret-value" not in out + err


def test_dry_run_shows_calls_and_the_time_they_take(portal: FakeHubSpot, tmp_path: Path) -> None:
    code, out, err = icp("sync", "--crm", "hubspot", "--state", tmp_path / "s", "--dry-run")
    assert code == 0, err
    assert "icp_score" in out and "calls/1 s" in out
    assert updates(portal) == 0


def test_live_validation_and_apply(portal: FakeHubSpot, tmp_path: Path) -> None:
    portal.remove_property("companies", "icp_route")
    portal.set_property("companies", "icp_tier", options=["A", "B"])
    code, _, err = icp("mappings", "validate", "--crm", "hubspot", "--live")
    assert code == 2
    assert "icp_route" in err and "lacking 'C', 'D'" in err
    code, out, err = icp("mappings", "apply", "--crm", "hubspot")
    assert code == 0, err
    assert "icp_route" in out + err
    assert "icp_route" in portal.properties("companies")
    assert portal.properties("companies")["icp_route"]["groupName"] == "icp"


# -- at scale, faults, limits, deletions, a killed process ------------------------------

ROOT = Path(__file__).resolve().parent.parent
FAST = {"backoff": 0.01, "search_per_second": 50}
"""Read retries and the search budget shortened (the fakes here enforce no search rate)."""


def fast_mappings(folder: Path, **settings: Any) -> Path:
    """A mappings directory whose hubspot.yaml is the bundled one with `settings`."""
    folder.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(bundled.default("hubspot.yaml").read_text(encoding="utf-8"))
    data["settings"] = {**FAST, **settings}
    (folder / "hubspot.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return folder


def tiers(portal: FakeHubSpot) -> dict[str, str | None]:
    return {i: c["icp_tier"] for i, c in portal.objects("companies").items()}


def written_ids(portal: FakeHubSpot, start: int = 0) -> list[str]:
    """Company ids in the batch updates the portal took since request `start`."""
    return [
        str(item["id"])
        for r in portal.requests[start:]
        if r.path.endswith("/batch/update") and r.status == 200
        for item in json.loads(r.body)["inputs"]
    ]


def fresh_full_run_agrees(tmp_path: Path, *extra: str) -> bool:
    """A backfill from empty state, as a dry run, finds nothing left to write."""
    summary = run(tmp_path / "fresh", "--dry-run", *extra, command="backfill")
    return summary["exit_code"] == 0 and summary["counts"]["records_to_write"] == 0


def test_more_than_10000_changed_companies_are_all_picked_up_incrementally(
    make_portal: Callable[..., FakeHubSpot], tmp_path: Path
) -> None:
    n, edited = 10_150, 10_100
    portal = make_portal()
    small = {"industry": "COMPUTER_SOFTWARE", "numberofemployees": "5", "country": "US"}
    ids = portal.add_companies(
        [{"name": f"Company {i}", "annualrevenue": "1000000", **small} for i in range(n)]
    )
    portal.add_deals(
        [{"dealname": f"Deal {i}", "dealstage": "closedwon", "_company": ids[i]} for i in range(50)]
    )
    folder = fast_mappings(tmp_path / "mappings")
    state = tmp_path / "state"
    first = run(state, "--mappings", str(folder))
    assert first["exit_code"] == 0 and first["counts"]["written"] == n
    before = tiers(portal)

    changed = ids[:edited]  # 5 -> 120 employees: +25 points, tier C -> B, a new segment
    for company in changed:
        portal.edit("companies", company, {"numberofemployees": "120"})
    mark = len(portal.requests)
    second = run(state, "--mappings", str(folder))

    assert second["exit_code"] == 0 and second["kind"] == "sync"
    # the search also reads again the companies our first run wrote (within the
    # search overlap): all of them, each once; only the edited ones are written
    assert second["counts"]["accounts_pulled"] == n
    assert second["counts"]["records_to_write"] == edited
    assert second["counts"]["written"] == edited and second["counts"]["failed"] == 0
    written = written_ids(portal, mark)
    assert sorted(written) == sorted(changed)  # every edited company, exactly once
    searches = [
        json.loads(r.body)
        for r in portal.requests[mark:]
        if r.path == "/crm/v3/objects/companies/search"
    ]
    assert all(int(s["after"]) + s["limit"] <= 10_000 for s in searches)
    assert sum(s["after"] == "0" for s in searches) >= 2  # restarted past the cap
    assert len(searches) <= math.ceil(n / 200) + 2  # nothing read twice but a tie page
    listed = [r for r in portal.requests[mark:] if r.path == "/crm/v3/objects/companies"]
    pages = [r for r in listed if r.query["archived"][0].lower() == "false"]
    assert pages == []  # no list page (the connection check reads the recycle bin)
    assert updates(portal) == math.ceil(n / 100) + math.ceil(edited / 100)
    after = tiers(portal)
    assert all(after[i] == "B" != before[i] for i in changed)
    assert all(after[i] == before[i] for i in ids[edited:])
    assert fresh_full_run_agrees(tmp_path, "--mappings", str(folder))
    assert portal.server_errors == []


def test_killed_mid_write_converges_on_rerun(portal: FakeHubSpot, tmp_path: Path) -> None:
    seed(portal, 800)  # 1,000 companies: rounds of up to 4 concurrent batches of 100
    total = len(portal.objects("companies"))
    state, folder = tmp_path / "state", fast_mappings(tmp_path / "mappings")
    portal.slow(0.5, times=12, method="POST", path_contains="/batch/update")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "icp_engine.sync.cli", "sync", "--crm",
               "hubspot", "--state", str(state), "--mappings", str(folder)]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    # a round writes 4 concurrent batches of 100 and the next round starts once all 4 are
    # answered: a fifth batch means the first 400 are answered; the portal applies each
    # batch at once and holds its answer 0.5 s, so the kill lands mid-round
    wait_until(
        lambda: updates(portal) >= 5,
        "the second round of batch updates has started",
        alive=lambda: process.poll() is None,
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    landed = [i for i, tier in tiers(portal).items() if tier]
    assert 0 < len(landed) < total

    portal.clear_faults()
    rerun = run(state, "--mappings", str(folder))
    assert rerun["exit_code"] == 0
    assert rerun["counts"]["written"] == total - len(landed)  # what landed is not written again
    assert all(tiers(portal).values())
    assert fresh_full_run_agrees(tmp_path, "--mappings", str(folder))


def test_transient_faults_converge_with_nothing_lost(portal: FakeHubSpot, tmp_path: Path) -> None:
    seed(portal, 200)  # 400 companies: one round of 4 concurrent batch updates
    state, folder = tmp_path / "state", fast_mappings(tmp_path / "mappings")
    ids = sorted(portal.objects("companies"))

    def sync_after(edited: list[str]) -> dict[str, Any]:
        for company in edited:  # -20 (no target industry) -10 (government): a new score
            portal.edit("companies", company, {"industry": "GOVERNMENT_ADMINISTRATION"})
        summary = run(state, "--mappings", str(folder))
        assert summary["exit_code"] == 0 and summary["counts"]["failed"] == 0, summary
        assert summary["counts"]["written"] == summary["counts"]["records_to_write"]
        return summary

    # one request takes at most one fault of each kind, so each run gets its own
    portal.fail(503, times=1, method="GET", path_contains="/crm/v3/objects/companies")
    portal.drop(times=1, method="GET", path_contains="/crm/v3/objects/deals")
    portal.burst(2)  # 429 TEN_SECONDLY_ROLLING on reads
    portal.fail(502, times=1, method="POST", path_contains="/batch/update")  # a proxy's page
    portal.fail(503, times=1, method="POST", path_contains="/batch/update")
    first = sync_after([])
    assert first["counts"]["written"] == 400 and first["counts"]["retries"] >= 1

    portal.drop(times=1, method="POST", path_contains="/batch/update")
    portal.drop(times=1, method="POST", path_contains="/batch/update", after_apply=True)
    second = sync_after(ids[:150])  # two concurrent batches
    assert second["counts"]["written"] == 150 and second["counts"]["retries"] >= 1

    portal.fail(429, times=2, method="POST", path_contains="/batch/update")
    third = sync_after(ids[150:300])
    assert third["counts"]["written"] == 150 and third["counts"]["retries"] >= 1

    statuses = [r.status for r in portal.requests]
    assert {0, 429, 502, 503} <= set(statuses) and statuses.count(429) == 4
    assert portal.rate_limited == 2
    assert all(tiers(portal).values())
    assert fresh_full_run_agrees(tmp_path, "--mappings", str(folder))
    assert portal.server_errors == []


def test_daily_limit_stops_writing_exit_1_and_the_rest_waits(
    portal: FakeHubSpot, tmp_path: Path
) -> None:
    seed(portal, 300)  # 500 companies: a round of 4 concurrent batch updates, then 1
    folder = fast_mappings(tmp_path / "mappings", daily_reserve=0)  # meet the 429 itself
    calls = portal.api_calls
    run(tmp_path / "probe", "--mappings", str(folder), "--dry-run")  # what the pull costs
    pull = portal.api_calls - calls
    state = tmp_path / "state"
    portal.daily_remaining = pull + 1  # the pull and one batch update; then 429 DAILY
    stopped = run(state, "--mappings", str(folder))

    assert stopped["exit_code"] == 1 and "daily" in (stopped["message"] or "")
    assert stopped["counts"]["written"] == 100 and stopped["counts"]["failed"] == 400
    assert portal.rate_limited == 3  # the other three of the round; nothing after
    assert [r.status for r in portal.requests].count(429) == 3
    assert sum(1 for t in tiers(portal).values() if t) == 100
    with StateStore(state) as store:
        assert len(store.failures("hubspot")) == 400

    portal.daily_remaining = 250_000  # the next day
    done = run(state, "--mappings", str(folder))
    assert done["exit_code"] == 0 and done["counts"]["written"] == 400
    assert all(tiers(portal).values())
    with StateStore(state) as store:
        assert store.failures("hubspot") == []


def test_company_deleted_before_its_write_drops_from_state(
    portal: FakeHubSpot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    gone = sorted(portal.objects("companies"))[42]
    begin_write = HubSpotConnector.begin_write

    def delete_then_write(self: HubSpotConnector, records: int = 0) -> WritePlan:
        portal.delete("companies", gone)  # deleted between the pull and the write
        return begin_write(self, records)

    monkeypatch.setattr(HubSpotConnector, "begin_write", delete_then_write)
    first = run(state)
    monkeypatch.setattr(HubSpotConnector, "begin_write", begin_write)

    answered = [r for r in portal.requests if r.path.endswith("/batch/update")]
    assert sorted(r.status for r in answered) == [200, 207]  # 207: OBJECT_NOT_FOUND
    assert first["exit_code"] == 0 and first["counts"]["failed"] == 0
    assert first["counts"]["written"] == COMPANIES - 1
    with StateStore(state) as store:
        assert not any(record == gone for record, _ in store.last_written("hubspot"))
        assert store.failures("hubspot") == []
    second = run(state)
    assert second["exit_code"] == 0 and second["counts"]["records_to_write"] == 0
    assert fresh_full_run_agrees(tmp_path)
