"""HubSpot answers our own fakes never gave before (issue 13, items 7-12; issue 10, item 2),
each driven end to end through `icp --crm hubspot` against the fake portal.

- a 200 whose body is not JSON confirms nothing (a proxy's page, empty, cut off);
- a page that cannot be read ends the pull with an error, never "no more records";
- a search page with `results: []` and a `paging.next.after` is not the end;
- a merged-away company left out of a batch update's `results` leaves the state;
- a SECONDLY 429 from a non-search endpoint holds calls for a second, not ten.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from icp_engine.connectors.base import WritePlan
from icp_engine.connectors.hubspot.client import SECOND
from icp_engine.connectors.hubspot.connector import HubSpotConnector
from icp_engine.connectors.hubspot.limits import SlidingWindow
from icp_engine.sync.cli.main import main
from icp_engine.sync.config import load_config
from icp_engine.sync.state.store import StateStore

from tests.fakes.hubspot import FakeHubSpot
from tests.hsdata import seed_portal
from tests.test_hubspot_e2e import fast_mappings, fresh_full_run_agrees, tiers
from tests.waiting import settle

COMPANIES = 200


pytestmark = [pytest.mark.e2e, pytest.mark.portal(companies=COMPANIES, deals_per_company=2.0)]


def run(state: Path, folder: Path, command: str = "sync") -> tuple[dict[str, Any], str]:
    result = CliRunner().invoke(
        main,
        [command, "--crm", "hubspot", "--state", str(state), "--json", "--mappings", str(folder)],
        catch_exceptions=False,
    )
    if not result.stdout.strip():
        return {"exit_code": result.exit_code}, result.stderr
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == result.exit_code, result.stderr
    return summary, result.stderr


def scored(state: Path) -> int:
    with StateStore(state) as store:
        return len(store.scores("hubspot"))


# -- issue 10, item 2: only a confirmation counts ----------------------------------------


@pytest.mark.parametrize(
    ("body", "applied"), [("html", False), ("empty", False), ("truncated", True)]
)
def test_a_batch_update_answered_200_without_json_writes_nothing(
    portal: FakeHubSpot, tmp_path: Path, body: str, applied: bool
) -> None:
    """A 200 with an HTML proxy page, an empty or a cut-off body says nothing about the
    records sent: none counts as written, all are retried, the next run converges."""
    folder, state = fast_mappings(tmp_path / "m"), tmp_path / "state"
    # every attempt of both concurrent batches (2 x the writer's 5 tries) is garbled
    portal.garble(body, times=10, method="POST", path_contains="/batch/update", after_apply=applied)
    first, err = run(state, folder)
    assert first["exit_code"] == 1, err
    assert first["counts"]["written"] == 0 and first["counts"]["failed"] == COMPANIES
    assert {f["code"] for f in first["failed"]} == {"TRANSIENT"}
    assert "without a JSON object" in first["failed"][0]["message"]
    if not applied:
        assert not any(tiers(portal).values())

    second, err = run(state, folder)
    assert second["exit_code"] == 0 and second["counts"]["failed"] == 0, err
    assert all(tiers(portal).values())
    with StateStore(state) as store:
        assert store.failures("hubspot") == []


def test_an_unreadable_list_page_ends_the_backfill_and_keeps_every_company(
    portal: FakeHubSpot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, state = fast_mappings(tmp_path / "m"), tmp_path / "state"
    first, err = run(state, folder)
    assert first["exit_code"] == 0 and scored(state) == COMPANIES, err
    connect = HubSpotConnector.connect

    def connect_then_garble(self: HubSpotConnector) -> None:
        connect(self)  # every company list page from here on is a proxy's HTML page
        portal.garble("html", times=100, method="GET", path_contains="/objects/companies")

    monkeypatch.setattr(HubSpotConnector, "connect", connect_then_garble)
    broken, err = run(state, folder, command="backfill")
    assert broken["exit_code"] == 1
    assert "without a JSON object" in err and "text/html" in err and "Traceback" not in err
    assert scored(state) == COMPANIES  # nobody taken for deleted


def test_a_list_page_without_results_is_an_error_not_the_end(
    portal: FakeHubSpot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JSON object that is not a page (no `results`) is not an empty page either."""
    folder, state = fast_mappings(tmp_path / "m"), tmp_path / "state"
    run(state, folder)
    connect = HubSpotConnector.connect

    def connect_then_fail(self: HubSpotConnector) -> None:
        connect(self)
        portal.fail(200, times=100, method="GET", path_contains="/objects/companies")

    monkeypatch.setattr(HubSpotConnector, "connect", connect_then_fail)
    broken, err = run(state, folder, command="backfill")
    assert broken["exit_code"] == 1 and "no list of results" in err
    assert scored(state) == COMPANIES


# -- item 7: an empty search page that still carries a cursor ---------------------------


def test_an_empty_search_page_with_a_cursor_does_not_end_the_search(
    portal: FakeHubSpot, tmp_path: Path
) -> None:
    """Airbyte met it in production and now pages on while `paging.next.after` is given
    (airbytehq/airbyte#80745, "continue CRM search pagination on short pages")."""
    seed_portal(portal, 100, deals_per_company=0.5)  # 300 companies: two search pages
    folder, state = fast_mappings(tmp_path / "m"), tmp_path / "state"
    first, _ = run(state, folder)
    assert first["counts"]["written"] == 300
    edited = sorted(portal.objects("companies"))[:30]
    for company in edited:  # stamped after our own 300 writes: on the second search page
        portal.edit("companies", company, {"industry": "GOVERNMENT_ADMINISTRATION"})
    portal.hollow(times=1, path_contains="/companies/search")  # the first page: []
    second, err = run(state, folder)
    assert second["exit_code"] == 0, err
    assert second["counts"]["accounts_pulled"] == 100  # the second page, edits included
    assert second["counts"]["written"] == second["counts"]["records_to_write"] > 0
    assert fresh_full_run_agrees(tmp_path, "--mappings", str(folder))


# -- item 8: a merged-away id left out of a batch update ---------------------------------


def test_a_company_merged_before_its_write_leaves_the_state_with_a_reason(
    portal: FakeHubSpot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, state = fast_mappings(tmp_path / "m"), tmp_path / "state"
    ids = sorted(portal.objects("companies"))
    merged, survivor = ids[7], ids[8]
    begin_write = HubSpotConnector.begin_write

    def merge_then_write(self: HubSpotConnector, records: int = 0) -> WritePlan:
        portal.merge("companies", merged, survivor)  # merged between the pull and the write
        return begin_write(self, records)

    monkeypatch.setattr(HubSpotConnector, "begin_write", merge_then_write)
    first, err = run(state, folder)
    monkeypatch.setattr(HubSpotConnector, "begin_write", begin_write)

    assert first["exit_code"] == 0 and first["counts"]["failed"] == 0, err
    assert first["counts"]["written"] == COMPANIES - 1  # the merged-away one is not counted
    assert f"company {merged}: merged into company {survivor}" in err
    with StateStore(state) as store:
        assert merged not in set(store.scores("hubspot")["account_id"])
        assert store.failures("hubspot") == []
    second, err = run(state, folder)  # the survivor (modified by the merge) is read again
    assert second["exit_code"] == 0 and second["counts"]["failed"] == 0, err
    assert merged not in portal.objects("companies")


def test_an_answer_naming_none_of_its_records_confirms_none(
    portal: FakeHubSpot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every id of a chunk merged away: HubSpot answers 200 with `results: []`. Before,
    such an answer counted the whole chunk as written."""
    folder, state = fast_mappings(tmp_path / "m"), tmp_path / "state"
    ids = sorted(portal.objects("companies"))
    keep = ids[-1]
    begin_write = HubSpotConnector.begin_write

    def merge_then_write(self: HubSpotConnector, records: int = 0) -> WritePlan:
        for company in ids[:100]:  # the whole first batch of 100
            portal.merge("companies", company, keep)
        return begin_write(self, records)

    monkeypatch.setattr(HubSpotConnector, "begin_write", merge_then_write)
    first, err = run(state, folder)
    assert first["exit_code"] == 0, err
    assert first["counts"]["written"] == COMPANIES - 100
    with StateStore(state) as store:
        assert not set(ids[:100]) & set(store.scores("hubspot")["account_id"])


# -- item 9: a SECONDLY 429 from a non-search endpoint -----------------------------------


def test_a_secondly_429_outside_search_holds_calls_for_a_second(
    portal: FakeHubSpot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HubSpot answers "You have reached your secondly limit." (policy SECONDLY) on
    ordinary object endpoints too (HGData/mk-node-hubspot#89, a company call)."""
    paused: list[float] = []
    monkeypatch.setattr(SlidingWindow, "pause", lambda self, seconds: paused.append(seconds))
    portal.secondly(times=1, method="GET", path_contains="/objects/companies")
    connector = HubSpotConnector(load_config("hubspot", None).mapping)
    connector.connect()  # retried after the 429
    assert paused == [SECOND]
    assert [r.status for r in portal.requests] == [429, 200]


# -- item 10: what a sync with nothing changed costs -------------------------------------


def test_a_sync_with_nothing_changed_costs_four_calls(portal: FakeHubSpot, tmp_path: Path) -> None:
    """As the README says: the token check (which reads the companies' recycle bin), one
    search per object, the deals' recycle bin. Counted by the portal, not by us."""
    folder, state = fast_mappings(tmp_path / "m", search_overlap=0), tmp_path / "state"
    run(state, folder)  # writes every company
    settle(portal)
    run(state, folder)  # reads our own writes back: nothing to write
    settle(portal)
    calls = portal.api_calls
    quiet, err = run(state, folder)
    assert quiet["exit_code"] == 0 and quiet["counts"]["records_to_write"] == 0, err
    assert portal.api_calls - calls == quiet["api_calls"] == 4
    paths = sorted(r.path for r in portal.requests[-4:])
    assert paths == [
        "/crm/v3/objects/companies",
        "/crm/v3/objects/companies/search",
        "/crm/v3/objects/deals",
        "/crm/v3/objects/deals/search",
    ]


# -- item 11: validate --live tells fields nobody uses from fields the criteria need -----


def validate_live() -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["mappings", "validate", "--crm", "hubspot", "--live"], catch_exceptions=False
    )
    return result.exit_code, result.stdout + result.stderr


def test_a_missing_property_no_criterion_uses_is_a_warning(portal: FakeHubSpot) -> None:
    """The pull reads a property the portal lacks as empty (HubSpot ignores unknown names
    in `properties`): if no criterion uses it, that is no reason to fail validation."""
    portal.remove_property("companies", "founded_year")  # mapped as year_started, unused
    code, text = validate_live()
    assert code == 0, text
    assert "'founded_year'" in text and "reads as empty (nothing scores on it)" in text


def test_a_missing_property_the_criteria_use_is_an_error_naming_them(
    portal: FakeHubSpot,
) -> None:
    # employees_last_year used to be the example; the bundled hubspot.yaml no longer maps
    # it (a custom property, item 11), so a standard property the criteria use stands in
    portal.remove_property("companies", "numberofemployees")  # "Employees 50-500" needs it
    code, text = validate_live()
    assert code == 2
    assert "'numberofemployees'" in text and "criteria that use it would never match" in text


def test_validate_live_passes_on_a_standard_portal_right_after_apply(
    portal: FakeHubSpot, tmp_path: Path
) -> None:
    """A portal with HubSpot's default properties only: `apply` creates the output
    properties, then `validate --live` passes; the two bundled criteria on custom
    properties are warnings naming what to map, and a sync scores and writes."""
    removed = portal.remove_custom_properties()
    assert {"funding_stage", "employees_last_year", "icp_score"} <= set(removed)
    assert "web_technologies" not in removed  # a default property, mapped by default
    code, text = validate_live()
    assert code == 2 and "apply" in text  # the outputs do not exist yet
    result = CliRunner().invoke(
        main, ["mappings", "apply", "--crm", "hubspot"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    code, text = validate_live()
    assert code == 0, text
    assert (
        "criterion 'Funding stage: Series A-C' uses funding_stage, which hubspot.yaml does "
        "not map: it scores no account" in text
    )
    assert "'Headcount growth over 20%' uses employee_growth (computed from " in text
    assert "employees_last_year" in text and "0 errors" in text and "error:" not in text
    first, err = run(tmp_path / "state", fast_mappings(tmp_path / "m"))
    assert first["exit_code"] == 0, err
    assert first["counts"]["written"] == COMPANIES
    scores = [c["icp_score"] for c in portal.objects("companies").values()]
    assert all(s not in (None, "") for s in scores)


def test_an_associations_answer_without_results_ends_the_pull_not_the_links(
    portal: FakeHubSpot, tmp_path: Path
) -> None:
    """A 200 JSON object with no `results` from the associations read would leave every
    deal of the page without its company: an error instead, and nothing changes."""
    folder, state = fast_mappings(tmp_path / "m"), tmp_path / "state"
    assert run(state, folder)[0]["exit_code"] == 0
    deal = sorted(portal.objects("deals"))[0]
    portal.edit("deals", deal, {"amount": "12345"})
    portal.fail(200, times=100, method="POST", path_contains="/associations/")
    broken, err = run(state, folder)
    assert broken["exit_code"] == 1 and "associations" in err and "no list of results" in err
