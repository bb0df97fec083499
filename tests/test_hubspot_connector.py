"""The HubSpot connector against the fake portal (`tests/fakes/hubspot.py`) on loopback.

Each test runs a real HTTP server speaking HubSpot's formats and the real
hubspot-api-client underneath the connector; faults (429 bursts, the daily limit, 503s,
dropped connections, poisoned and conflicting batches) are injected in the fake. The
retry policy's sleep is injected (`sleep=`): retries wait for nothing.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from icp_engine.connectors.base import PullContext, RecordUpdate
from icp_engine.connectors.errors import ConnectError, LimitReachedError, TransientError
from icp_engine.connectors.hubspot.connector import HubSpotConnector
from icp_engine.sync.config import load_config
from icp_engine.sync.writer import make_retrying, write_all

from tests.fakes.hubspot import FakeHubSpot

MAPPING = load_config("hubspot", None).mapping
FAST = {"backoff": 0.01, "search_per_second": 50, "search_overlap": 0}


pytestmark = pytest.mark.portal(env=False)


def connector_for(
    portal: FakeHubSpot, monkeypatch: pytest.MonkeyPatch, **settings: object
) -> HubSpotConnector:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", portal.token)
    monkeypatch.setenv("HUBSPOT_BASE_URL", portal.base_url)
    mapping = MAPPING.model_copy(update={"settings": {**FAST, **settings}})
    connector = HubSpotConnector(mapping, sleep=lambda _: None)  # retries wait for nothing
    connector.connect()
    return connector


def companies(portal: FakeHubSpot, n: int, **props: str) -> list[str]:
    return portal.add_companies([{"name": f"Company {i}", **props} for i in range(n)])


def pulled(connector: HubSpotConnector, kind: str, since: datetime | None = None) -> pd.DataFrame:
    frames = list(connector.pull(kind, PullContext(since)))  # type: ignore[arg-type]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def updates(ids: list[str], score: float = 80.0, tier: str = "A") -> list[RecordUpdate]:
    return [RecordUpdate(i, {"icp_score": score, "icp_tier": tier}) for i in ids]


def eval_json(body: bytes) -> dict:
    return json.loads(body)


def calls_agree(connector: HubSpotConnector, portal: FakeHubSpot) -> None:
    """Every HTTP request the fake saw is one the connector counted (no hidden retries)."""
    assert portal.api_calls == connector.api_calls
    assert portal.server_errors == []


# -- pull ---------------------------------------------------------------------------------


def test_full_pull_gives_canonical_frames(portal, monkeypatch):
    (acme, other) = portal.add_companies(
        [
            {
                "name": "Acme",
                "domain": "https://www.Acme.com/about",
                "industry": "COMPUTER_SOFTWARE",
                "numberofemployees": "120",
                "annualrevenue": "5000000.50",
                "country": "USA",
                "icp_score": "55",
                "icp_tier": "B",
            },
            {"name": "Other"},
        ]
    )
    portal.add_deals(
        [
            {"dealname": "won", "amount": "1200.50", "dealstage": "closedwon", "_company": acme},
            {"dealname": "lost", "dealstage": "closedlost", "_company": other},
            {"dealname": "open", "dealstage": "qualifiedtobuy"},
        ]
    )
    connector = connector_for(portal, monkeypatch)
    account_pull = connector.pull("account")
    accounts = pd.concat(list(account_pull), ignore_index=True).set_index("account_id")
    assert list(accounts.index) == [acme, other]
    row = accounts.loc[acme]
    assert (row["name"], row["domain"], row["industry"]) == ("Acme", "acme.com", "Technology/SaaS")
    assert (row["employees"], row["annual_revenue"]) == (120.0, 5000000.5)
    assert row["country"] == "United States"
    assert (row["current_score"], row["current_tier"]) == (55.0, "B")
    assert pd.isna(accounts.loc[other, "current_score"])
    assert str(accounts["modified_at"].dtype) == "datetime64[ns, UTC]"

    deal_pull = connector.pull("opportunity")
    deals = pd.concat(list(deal_pull), ignore_index=True).set_index("stage")
    assert deals.loc["closedwon", "account_id"] == acme
    assert deals.loc["closedlost", "account_id"] == other
    assert pd.isna(deals.loc["qualifiedtobuy", "account_id"])
    assert bool(deals.loc["closedwon", "is_won"]) and bool(deals.loc["closedlost", "is_closed"])
    assert not bool(deals.loc["closedlost", "is_won"])
    assert not bool(deals.loc["qualifiedtobuy", "is_closed"])
    assert deals.loc["closedwon", "amount"] == 1200.5
    # the list endpoint lists each company once per association type: one account id
    listed = [r for r in portal.requests if "associations" in r.query]
    assert listed and listed[0].query["associations"] == ["companies"]
    assert account_pull.report.rows == 2
    assert deal_pull.report.rows == 3
    assert account_pull.report.api_calls >= 1 and deal_pull.report.api_calls >= 1
    calls_agree(connector, portal)


def test_pull_asks_for_exactly_the_mapped_properties(portal, monkeypatch):
    companies(portal, 3)
    connector = connector_for(portal, monkeypatch)
    pulled(connector, "account")
    (page,) = [r for r in portal.requests if r.path == "/crm/v3/objects/companies"][-1:]
    asked = set(page.query["properties"])
    mapped = {s.field for s in MAPPING.objects.account.fields.values()}
    outputs = {o.field for o in MAPPING.outputs.values()}
    assert asked == mapped | outputs | {"hs_object_id", "hs_lastmodifieddate"}
    assert page.query["limit"] == ["100"]


def test_incremental_search_reads_past_the_10000_cap(monkeypatch):
    with FakeHubSpot(rate_limit=None, search_rate=None) as portal:
        companies(portal, 30)
        since = portal.now()  # the portal's clock stamps every write later than this
        changed = companies(portal, 10_250)
        connector = connector_for(portal, monkeypatch)
        frame = pulled(connector, "account", since)
        assert sorted(frame["account_id"]) == sorted(changed)  # all of them, each once
        searches = [r for r in portal.requests if r.path.endswith("/search")]
        assert all(int(eval_json(r.body)["after"]) + 200 <= 10_000 for r in searches)
        restarts = [r for r in searches if eval_json(r.body)["after"] == "0"]
        assert len(restarts) == 2
        assert len(searches) <= math.ceil(10_250 / 200) + 2
        calls_agree(connector, portal)


@pytest.mark.slow
def test_incremental_search_past_the_cap_within_one_millisecond(monkeypatch):
    with FakeHubSpot(rate_limit=None, search_rate=None) as portal:
        instant = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        portal.clock = lambda: instant
        ids = companies(portal, 10_100)
        connector = connector_for(portal, monkeypatch)
        frame = pulled(connector, "account", instant - timedelta(seconds=1))
        assert sorted(frame["account_id"]) == sorted(ids)
        searches = [eval_json(r.body) for r in portal.requests if r.path.endswith("/search")]
        keyed = [s for s in searches if s["sorts"][0]["propertyName"] == "hs_object_id"]
        assert keyed and all(s["filterGroups"][0]["filters"][0]["operator"] == "EQ" for s in keyed)
        assert len(searches) <= 2 * math.ceil(10_100 / 200) + 2
        calls_agree(connector, portal)


def test_incremental_deals_get_their_company_by_batch(portal, monkeypatch):
    (acme, beta) = companies(portal, 2)
    old = portal.add_deals([{"dealname": "old", "_company": acme}])
    since = portal.now()
    fresh = portal.add_deals(
        [
            {"dealname": "a", "_company": acme},
            {"dealname": "b", "_company": beta},
            {"dealname": "none"},
        ]
    )
    portal.edit("deals", old[0], {"_company": beta, "amount": "10"})
    connector = connector_for(portal, monkeypatch)
    deals = pulled(connector, "opportunity", since).set_index("opportunity_id")
    assert set(deals.index) == {*fresh, old[0]}
    assert deals.loc[fresh[0], "account_id"] == acme
    assert deals.loc[fresh[1], "account_id"] == beta
    assert deals.loc[old[0], "account_id"] == beta
    assert pd.isna(deals.loc[fresh[2], "account_id"])
    batch = [r for r in portal.requests if "/crm/v4/associations/" in r.path]
    assert len(batch) == 1  # one v4 batch read for the page
    calls_agree(connector, portal)


def test_incremental_search_overlaps_the_lagging_index(portal, monkeypatch):
    before = companies(portal, 1)
    since = portal.now()
    after = companies(portal, 1)
    exact = connector_for(portal, monkeypatch)
    assert list(pulled(exact, "account", since)["account_id"]) == after
    overlapping = connector_for(portal, monkeypatch, search_overlap=60)
    assert list(pulled(overlapping, "account", since)["account_id"]) == before + after


def test_pull_retries_a_timed_out_call(portal, monkeypatch):
    companies(portal, 5)
    connector = connector_for(portal, monkeypatch, timeout=0.3)
    portal.slow(1.0, times=1, method="GET")
    assert len(pulled(connector, "account")) == 5
    calls_agree(connector, portal)


def test_deleted_ids_come_from_the_archive(portal, monkeypatch):
    ids = companies(portal, 5)
    portal.delete("companies", ids[1])
    portal.delete("companies", ids[3])
    connector = connector_for(portal, monkeypatch)
    gone = connector.deleted_ids("account", datetime.now(UTC), {ids[0], ids[1], "999"})
    assert gone == {ids[1]}
    assert connector.deleted_ids("account", None, set()) == set()


def test_pull_retries_503_drops_and_bursts(portal, monkeypatch):
    companies(portal, 250)
    connector = connector_for(portal, monkeypatch, attempts=6)
    portal.fail(503, times=2, method="GET", path_contains="/crm/v3/objects/companies")
    portal.drop(times=1, method="GET")
    portal.burst(2)
    frame = pulled(connector, "account")
    assert len(frame) == 250
    statuses = [r.status for r in portal.requests]
    assert statuses.count(429) == 2 and statuses.count(0) == 1 and statuses.count(503) >= 1
    assert set(statuses) == {0, 200, 429, 503}
    calls_agree(connector, portal)


def test_urllib3_makes_no_hidden_retry(portal, monkeypatch):
    companies(portal, 3)
    connector = connector_for(portal, monkeypatch, attempts=1)
    before = len(portal.requests)
    portal.drop(times=1, method="GET")
    with pytest.raises(TransientError):
        list(connector.pull("account", None))
    assert len(portal.requests) == before + 1
    portal.fail(503, times=1, method="GET")
    with pytest.raises(TransientError, match="503"):
        list(connector.pull("account", None))
    assert len(portal.requests) == before + 2
    calls_agree(connector, portal)


# -- connection ---------------------------------------------------------------------------


def test_missing_token_names_the_variable(portal, monkeypatch):
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("HUBSPOT_BASE_URL", portal.base_url)
    with pytest.raises(ConnectError, match="HUBSPOT_ACCESS_TOKEN is not set"):
        HubSpotConnector(MAPPING).connect()


def test_rejected_token_is_a_connect_error_without_the_token(portal, monkeypatch):
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-wrong-secret-123")
    monkeypatch.setenv("HUBSPOT_BASE_URL", portal.base_url)
    with pytest.raises(ConnectError) as caught:
        HubSpotConnector(MAPPING).connect()
    text = str(caught.value)
    assert "INVALID_AUTHENTICATION" in text and "HUBSPOT_ACCESS_TOKEN" in text
    assert "pat-wrong-secret-123" not in text and portal.token not in text
    assert len(portal.requests) == 1


def test_unreachable_host_is_a_connect_error(monkeypatch):
    with FakeHubSpot() as fake:
        url = fake.base_url  # a port nobody listens on once the fake stops
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-test-token")
    monkeypatch.setenv("HUBSPOT_BASE_URL", url)
    started = time.monotonic()
    with pytest.raises(ConnectError, match="cannot reach HubSpot") as caught:
        HubSpotConnector(MAPPING).connect()
    assert time.monotonic() - started < 2
    assert "pat-test-token" not in str(caught.value)


def test_describe_target_names_the_portal_host(portal, monkeypatch):
    connector = connector_for(portal, monkeypatch)
    assert connector.describe_target() == f"HubSpot portal at {portal.base_url[7:]}"


# -- write --------------------------------------------------------------------------------


def test_write_sends_hubspot_strings_and_matches_results_by_id(portal, monkeypatch):
    ids = companies(portal, 3, icp_route="Old")
    connector = connector_for(portal, monkeypatch)
    batch = [
        RecordUpdate(ids[0], {"icp_score": 87.0, "icp_tier": "A", "icp_route": None}),
        RecordUpdate(ids[1], {"icp_score": 12.4, "icp_reasons": "+25 employees 50-500"}),
    ]
    results = connector.write(batch)
    assert [(r.record_id, r.ok) for r in results] == [(ids[0], True), (ids[1], True)]
    sent = eval_json(next(r for r in portal.requests if r.path.endswith("batch/update")).body)
    assert sent["inputs"][0]["properties"] == {"icp_score": "87", "icp_tier": "A", "icp_route": ""}
    assert sent["inputs"][1]["properties"]["icp_score"] == "12"
    stored = portal.objects("companies")
    assert stored[ids[0]]["icp_score"] == "87" and not stored[ids[0]]["icp_route"]
    assert stored[ids[1]]["icp_reasons"] == "+25 employees 50-500"
    assert connector.write_calls == 1


def test_207_marks_deleted_companies(portal, monkeypatch):
    ids = companies(portal, 10)
    portal.delete("companies", ids[4])
    connector = connector_for(portal, monkeypatch)
    results = {r.record_id: r for r in connector.write(updates(ids))}
    gone = results[ids[4]]
    assert (gone.ok, gone.deleted, gone.code, gone.transient) == (
        False,
        True,
        "OBJECT_NOT_FOUND",
        False,
    )
    assert all(results[i].ok for i in ids if i != ids[4])
    assert connector.write_calls == 1


def test_poisoned_record_is_isolated_by_bisection(portal, monkeypatch):
    ids = companies(portal, 100)
    portal.poison([ids[37]])
    connector = connector_for(portal, monkeypatch)
    results = {r.record_id: r for r in connector.write(updates(ids))}
    bad = results[ids[37]]
    assert (bad.ok, bad.transient, bad.code) == (False, False, "VALIDATION_ERROR")
    assert bad.message
    assert sum(r.ok for r in results.values()) == 99
    assert connector.write_calls <= 1 + 2 * math.ceil(math.log2(100))
    stored = portal.objects("companies")
    assert stored[ids[0]]["icp_score"] == "80" and stored[ids[37]]["icp_score"] in (None, "")
    calls_agree(connector, portal)


def test_invalid_option_message_is_readable(portal, monkeypatch):
    ids = companies(portal, 4)
    connector = connector_for(portal, monkeypatch)
    batch = [*updates(ids[:3]), RecordUpdate(ids[3], {"icp_tier": "E"})]
    results = {r.record_id: r for r in connector.write(batch)}
    assert [results[i].ok for i in ids] == [True, True, True, False]
    assert results[ids[3]].message.startswith("icp_tier: INVALID_OPTION")


def test_conflict_is_isolated_by_bisection(portal, monkeypatch):
    ids = companies(portal, 40)
    portal.conflict([ids[0], ids[39]])
    connector = connector_for(portal, monkeypatch)
    results = {r.record_id: r for r in connector.write(updates(ids))}
    failed = {i for i, r in results.items() if not r.ok}
    assert failed == {ids[0], ids[39]}
    assert {results[i].code for i in failed} == {"CONFLICT"}
    assert not any(results[i].transient for i in failed)


def test_concurrent_sub_batches_answer_every_record(portal, monkeypatch):
    ids = companies(portal, 350)
    connector = connector_for(portal, monkeypatch, workers=4)
    plan = connector.begin_write(len(ids))
    assert (plan.batch_size, plan.calls) == (400, 4)
    results = connector.write(updates(ids))
    connector.end_write()
    assert sorted(r.record_id for r in results) == sorted(ids)
    assert all(r.ok for r in results)
    assert connector.write_calls == 4
    calls_agree(connector, portal)


def test_write_retries_429_503_and_drops_through_the_writer(portal, monkeypatch):
    ids = companies(portal, 300)
    connector = connector_for(portal, monkeypatch)
    connector.begin_write(len(ids))
    portal.burst(2)
    portal.fail(503, times=1, method="POST", path_contains="batch/update")
    portal.drop(times=1, method="POST", path_contains="batch/update", after_apply=True)
    summary = write_all(
        connector, updates(ids), lambda _: None, make_retrying(sleep=lambda _: None)
    )
    assert summary.written == 300 and not summary.failed
    assert summary.retries >= 1
    assert all(v["icp_score"] == "80" for v in portal.objects("companies").values())
    calls_agree(connector, portal)


def test_daily_limit_stops_writing(portal, monkeypatch):
    ids = companies(portal, 250)
    connector = connector_for(portal, monkeypatch)
    portal.daily_remaining = 0
    with pytest.raises(LimitReachedError, match="daily"):
        connector.write(updates(ids[:100]))
    summary = write_all(
        connector, updates(ids), lambda _: None, make_retrying(sleep=lambda _: None)
    )
    assert summary.stopped and "daily" in summary.stopped
    assert len(summary.not_attempted) == 250 and summary.written == 0


def test_daily_limit_in_the_middle_of_a_write_keeps_what_landed(portal, monkeypatch):
    ids = companies(portal, 400)
    connector = connector_for(portal, monkeypatch, workers=4)
    connector.begin_write(len(ids))
    portal.daily_remaining = 2  # two of the four concurrent calls get through
    landed: list[str] = []
    summary = write_all(
        connector,
        updates(ids),
        lambda outcome: landed.extend(u.record_id for u, r in outcome if r.ok),
        make_retrying(sleep=lambda _: None),
    )
    assert summary.stopped and "daily" in summary.stopped
    assert summary.written == 200 == len(landed)
    assert len(summary.not_attempted) == 200 and not summary.failed
    written = {i for i, v in portal.objects("companies").items() if v["icp_score"] == "80"}
    assert written == set(landed)
    assert connector.write_calls == 4  # no call once the limit is known


def test_daily_reserve_keeps_calls_for_other_integrations(monkeypatch):
    with FakeHubSpot(rate_limit=None, daily_limit=1000) as portal:
        ids = companies(portal, 10)
        connector = connector_for(portal, monkeypatch, daily_reserve=0.5)
        assert connector.write(updates(ids))[0].ok
        portal.daily_remaining = 400
        connector.write(updates(ids))  # this answer says 399 left: below the reserve
        with pytest.raises(LimitReachedError, match="daily_reserve"):
            connector.write(updates(ids))


def test_rejected_token_while_writing_is_a_connect_error(portal, monkeypatch):
    ids = companies(portal, 3)
    connector = connector_for(portal, monkeypatch)
    portal.token = "pat-rotated"
    with pytest.raises(ConnectError, match="401"):
        connector.write(updates(ids))


def test_limiter_keeps_the_portal_free_of_429s(monkeypatch):
    with FakeHubSpot(rate_limit=20, interval=1.0, latency=0.005) as portal:
        ids = companies(portal, 2_500)
        connector = connector_for(portal, monkeypatch, workers=4)
        connector.begin_write(len(ids))
        summary = write_all(connector, updates(ids), lambda _: None)
        connector.end_write()
        assert summary.written == 2_500
        assert portal.rate_limited == 0  # the portal counts 20 a second itself
        assert connector.write_calls == 25
        # 1 call to connect, 25 writes at 20 a second: the last 6 waited for the window
        # (how long is the limiter's own test, with a simulated clock; speed is bench/'s)
        assert connector.limiter.waited > 0
        calls_agree(connector, portal)


# -- schema -------------------------------------------------------------------------------


def test_describe_reports_properties_in_engine_types(portal, monkeypatch):
    connector = connector_for(portal, monkeypatch)
    described = connector.describe()
    tier = described["account"]["icp_tier"]
    assert (tier.type, tier.picklist_values) == ("picklist", ("A", "B", "C", "D"))
    assert described["account"]["icp_score"].type == "number"
    assert described["account"]["hs_lastmodifieddate"].updateable is False
    assert described["opportunity"]["hs_is_closed_won"].type == "boolean"
    assert described["opportunity"]["associations.companies"].type == "reference"


def test_create_output_fields_makes_group_and_properties(portal, monkeypatch):
    for name in ("icp_score", "icp_tier", "icp_reasons"):
        portal.remove_property("companies", name)
    connector = connector_for(portal, monkeypatch)
    missing = [MAPPING.outputs[k] for k in ("score", "tier", "reasons")]
    created = connector.create_output_fields(missing)
    assert [(c.field, c.created) for c in created] == [
        ("icp_score", True),
        ("icp_tier", True),
        ("icp_reasons", True),
    ]
    props = portal.properties("companies")
    assert props["icp_tier"]["type"] == "enumeration"
    assert [o["value"] for o in props["icp_tier"]["options"]] == ["A", "B", "C", "D"]
    assert props["icp_reasons"]["fieldType"] == "textarea"
    assert {props[n]["groupName"] for n in ("icp_score", "icp_tier", "icp_reasons")} == {"icp"}
    again = connector.create_output_fields([MAPPING.outputs["score"]])
    assert again[0].created and "already exists" in again[0].message


def test_create_output_fields_without_scope_says_what_to_do(portal, monkeypatch):
    portal.remove_property("companies", "icp_score")
    connector = connector_for(portal, monkeypatch)
    portal.fail(403, times=5, path_contains="/crm/v3/properties")
    (result,) = connector.create_output_fields([MAPPING.outputs["score"]])
    assert not result.created
    assert "crm.schemas.companies.write" in result.message and "icp_score" in result.message
