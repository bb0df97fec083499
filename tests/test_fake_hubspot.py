"""The fake HubSpot portal, driven through hubspot-api-client itself.

Each test talks HTTP to a `FakeHubSpot` on 127.0.0.1 through the SDK pointed at it with
`HubSpot(access_token=portal.token, host=portal.base_url)`, and checks what the SDK
parses: paging, associations, search, batch 200/207/400/409, properties, pipelines,
auth and rate-limit errors, injected faults.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3
import vcr
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.companies import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    BatchResponseSimplePublicObject,
    BatchResponseSimplePublicObjectWithErrors,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
    SimplePublicObjectInput,
)
from hubspot.crm.companies.exceptions import ServiceException, UnauthorizedException
from hubspot.crm.properties import PropertyCreate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from hubspot.crm.properties.exceptions import NotFoundException

from tests.fakes.hubspot import FakeHubSpot
from tests.waiting import wait_until

RATE_HEADERS = (
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    "X-HubSpot-RateLimit-Daily",
    "X-HubSpot-RateLimit-Daily-Remaining",
)


pytestmark = pytest.mark.portal(env=False)


def sdk(portal: FakeHubSpot, token: str | None = None) -> HubSpot:
    """The SDK pointed at the fake: `host` lands on every generated API's Configuration."""
    return HubSpot(access_token=token or portal.token, host=portal.base_url)


def seed(portal: FakeHubSpot, n: int) -> list[str]:
    return portal.add_companies(
        {
            "name": f"Company {i}",
            "domain": f"c{i}.example",
            "numberofemployees": 10 * (i + 1),
            "industry": "COMPUTER_SOFTWARE" if i % 2 else "RETAIL",
        }
        for i in range(n)
    )


def updates(rows: dict[str, dict[str, Any]]) -> BatchInputSimplePublicObjectBatchInput:
    inputs = [SimplePublicObjectBatchInput(id=i, properties=p) for i, p in rows.items()]
    return BatchInputSimplePublicObjectBatchInput(inputs=inputs)


def error(exc: Exception) -> dict[str, Any]:
    body = json.loads(exc.body)  # type: ignore[attr-defined]
    assert {"status", "message", "correlationId", "category"} <= body.keys() or "policyName" in body
    return body


def search_body(after: int | str, limit: int, value: str) -> PublicObjectSearchRequest:
    stamp = Filter(property_name="hs_lastmodifieddate", operator="GTE", value=value)
    return PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[stamp])],
        sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        properties=["name", "hs_lastmodifieddate"],
        limit=limit,
        after=str(after),
    )


def test_list_pages_with_after_and_no_paging_on_the_last_page(portal: FakeHubSpot) -> None:
    ids = seed(portal, 250)
    api = sdk(portal).crm.companies.basic_api
    first = api.get_page(limit=100, properties=["name", "industry"])
    assert [r.id for r in first.results] == ids[:100]
    assert first.paging.next.after and first.paging.next.link.startswith(portal.base_url)
    record = first.results[0]
    assert record.properties == {
        "createdate": record.properties["createdate"],
        "hs_lastmodifieddate": record.properties["hs_lastmodifieddate"],
        "hs_object_id": ids[0],
        "industry": "RETAIL",
        "name": "Company 0",
    }
    second = api.get_page(limit=100, after=first.paging.next.after)
    last = api.get_page(limit=100, after=second.paging.next.after)
    assert [r.id for r in last.results] == ids[200:]
    assert last.paging is None
    assert set(second.results[0].properties) == {
        "name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"
    }  # fmt: skip
    everything = sdk(portal).crm.companies.get_all(properties=["numberofemployees"])
    assert [r.id for r in everything] == ids
    assert everything[0].properties["numberofemployees"] == "10"
    with pytest.raises(ApiException) as too_many:
        api.get_page(limit=101)
    assert too_many.value.status == 400
    assert error(too_many.value)["category"] == "VALIDATION_ERROR"
    assert portal.requests[0].query == {"limit": ["100"], "properties": ["name", "industry"]}


def test_list_shows_each_associated_company_twice_labelled_and_unlabelled(
    portal: FakeHubSpot,
) -> None:
    acme, other = portal.add_companies([{"name": "Acme"}, {"name": "Other"}])
    won, lone = portal.add_deals(
        [
            {"dealname": "Big", "amount": 1000, "dealstage": "closedwon", "_company": acme},
            {"dealname": "Lone", "amount": 5.5, "dealstage": "closedlost"},
        ]
    )
    client = sdk(portal)
    page = client.crm.deals.basic_api.get_page(
        properties=["dealname", "amount", "hs_is_closed_won", "hs_is_closed_lost"],
        associations=["companies"],
    )
    big, single = page.results
    assert [(a.id, a.type) for a in big.associations["companies"].results] == [
        (acme, "deal_to_company"),
        (acme, "deal_to_company_unlabeled"),
    ]
    assert single.associations is None
    assert big.properties["hs_is_closed_won"] == "true"
    assert single.properties["hs_is_closed_lost"] == "true"
    assert (big.properties["amount"], single.properties["amount"]) == ("1000", "5.5")

    one = client.crm.associations.v4.basic_api.get_page("deals", won, "companies", limit=500)
    assert one.results[0].to_object_id == acme
    assert [(t.category, t.type_id, t.label) for t in one.results[0].association_types] == [
        ("HUBSPOT_DEFINED", 5, "Primary"),
        ("HUBSPOT_DEFINED", 341, None),
    ]
    raw = json.loads(portal_get(portal, f"/crm/v4/objects/deals/{won}/associations/companies"))
    assert raw["results"][0]["toObjectId"] == int(acme)  # a JSON number, as HubSpot sends
    inputs = [PublicFetchAssociationsBatchRequest(id=rid) for rid in (won, lone)]
    request = BatchInputPublicFetchAssociationsBatchRequest(inputs=inputs)
    batch = client.crm.associations.v4.batch_api.get_page("deals", "companies", request)
    assert [r._from.id for r in batch.results] == [won]
    assert batch.num_errors == 1 and batch.errors[0].context == {"fromObjectId": [lone]}
    reverse = client.crm.associations.v4.basic_api.get_page("companies", acme, "deals")
    assert [t.type_id for t in reverse.results[0].association_types] == [6, 342]
    assert client.crm.associations.v4.basic_api.get_page("companies", other, "deals").results == []


def portal_get(portal: FakeHubSpot, path: str) -> bytes:
    headers = {"Authorization": f"Bearer {portal.token}"}
    return urllib3.request("GET", portal.base_url + path, headers=headers).data


def test_search_gte_ascending_across_pages(portal: FakeHubSpot) -> None:
    ids = seed(portal, 30)
    watermark = portal.now()
    touched = [ids[20], ids[3], ids[11], ids[7], ids[25]]
    for rid in touched:
        portal.edit("companies", rid, {"industry": "MACHINERY"})
    api = sdk(portal).crm.companies.search_api
    value = str(int(watermark.timestamp() * 1000))
    first = api.do_search(search_body(0, 3, value))
    assert first.total == 5 and first.paging.next.after == "3"
    assert first.paging.next.link is None
    second = api.do_search(search_body(first.paging.next.after, 3, value))
    assert second.paging is None
    found = [r.id for r in first.results + second.results]
    assert found == touched  # edited in this order, so ascending hs_lastmodifieddate
    stamps = [r.properties["hs_lastmodifieddate"] for r in first.results + second.results]
    assert stamps == sorted(stamps)
    iso = watermark.isoformat().replace("+00:00", "Z")
    assert api.do_search(search_body(0, 10, iso)).total == 5  # ISO-8601 works like epoch ms

    small = Filter(property_name="numberofemployees", operator="LT", value="25")
    machinery = Filter(property_name="industry", operator="IN", values=["MACHINERY"])
    mid = Filter(
        property_name="numberofemployees", operator="BETWEEN", value="40", high_value="200"
    )
    either = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[small]), FilterGroup(filters=[machinery, mid])],
        sorts=["-numberofemployees"],  # plain-string sorts, "-" for descending
        limit=200,
    )
    result = api.do_search(either)
    assert [r.id for r in result.results] == [ids[11], ids[7], ids[3], ids[1], ids[0]]
    assert result.results[0].properties.keys() >= {"name", "domain", "hs_object_id"}


def test_search_refuses_to_page_past_10000_results(portal: FakeHubSpot) -> None:
    seed(portal, 3)
    api = sdk(portal).crm.companies.search_api
    assert api.do_search(search_body(9_900, 100, "0")).results == []
    with pytest.raises(ApiException) as refused:
        api.do_search(search_body(9_950, 100, "0"))
    assert refused.value.status == 400
    body = error(refused.value)
    assert body["category"] == "VALIDATION_ERROR" and "10,000" in body["message"]
    groups = [FilterGroup(filters=[Filter(property_name="name", operator="HAS_PROPERTY")])] * 6
    with pytest.raises(ApiException) as too_many:
        api.do_search(PublicObjectSearchRequest(filter_groups=groups))
    assert too_many.value.status == 400


def test_search_has_its_own_limit_and_no_rate_limit_headers() -> None:
    with FakeHubSpot(search_rate=2) as portal:
        api = sdk(portal).crm.companies.search_api
        request = PublicObjectSearchRequest(limit=1)
        api.do_search(request)
        assert api.api_client.last_response.getheader("X-HubSpot-RateLimit-Max") is None
        api.do_search(request)
        with pytest.raises(ApiException) as limited:
            api.do_search(request)
        assert limited.value.status == 429
        body = json.loads(limited.value.body)
        assert body["policyName"] == "SECONDLY"
        assert body["message"] == "You have reached your secondly limit."
        assert limited.value.headers.get("X-HubSpot-RateLimit-Max") is None
        assert portal.rate_limited == 1


def test_batch_update_writes_normalises_and_bumps_modified(portal: FakeHubSpot) -> None:
    ids = seed(portal, 4)
    before = portal.objects("companies")
    portal.edit("companies", ids[3], {"icp_segment": "legacy"})
    api = sdk(portal).crm.companies.batch_api
    rows: dict[str, dict[str, Any]] = {
        ids[0]: {"icp_score": "87.0", "icp_tier": "A", "web_technologies": "salesforce;hubspot"},
        ids[1]: {"icp_score": 42, "icp_tier": "B"},
        ids[2]: {"icp_score": "12.50", "icp_tier": "C"},
        ids[3]: {"icp_segment": ""},
    }
    result = api.update(updates(rows))
    assert isinstance(result, BatchResponseSimplePublicObject)
    assert result.status == "COMPLETE" and result.started_at and result.completed_at
    assert [r.id for r in result.results] != list(rows)  # match by id, not position
    by_id = {r.id: r for r in result.results}
    assert set(by_id[ids[1]].properties) == {
        "icp_score", "icp_tier", "hs_lastmodifieddate", "hs_object_id", "createdate"
    }  # fmt: skip
    after = portal.objects("companies")
    assert [after[i]["icp_score"] for i in ids[:3]] == ["87", "42", "12.5"]
    assert after[ids[3]]["icp_segment"] is None
    for rid in ids:  # as instants: '...:12Z' (a whole second) sorts after '...:12.002Z'
        modified = datetime.fromisoformat(str(after[rid]["hs_lastmodifieddate"]))
        assert modified > datetime.fromisoformat(str(before[rid]["hs_lastmodifieddate"]))
        assert by_id[rid].updated_at >= by_id[rid].created_at
    read = api.read(
        BatchReadInputSimplePublicObjectId(
            properties=["icp_score", "icp_segment"], inputs=[SimplePublicObjectId(id=ids[3])]
        )
    )
    assert read.results[0].properties["icp_segment"] is None
    body = json.loads(portal.requests[-2].body)
    assert body["inputs"][1]["properties"]["icp_score"] == 42  # the SDK sends what it is given


def test_batch_update_with_missing_ids_answers_207(portal: FakeHubSpot) -> None:
    ids = seed(portal, 3)
    portal.delete("companies", ids[1])
    api = sdk(portal).crm.companies.batch_api
    result = api.update(updates({i: {"icp_tier": "D"} for i in [*ids, "999"]}))
    assert isinstance(result, BatchResponseSimplePublicObjectWithErrors)
    assert result.num_errors == 1
    assert result.errors[0].category == "OBJECT_NOT_FOUND"
    assert result.errors[0].context == {"ids": [ids[1], "999"]}
    assert "Could not get some COMPANY objects" in result.errors[0].message
    assert sorted(r.id for r in result.results) == [ids[0], ids[2]]
    assert ids[1] not in portal.objects("companies")
    client = sdk(portal)
    listed = client.crm.companies.basic_api.get_page(limit=10)
    assert [r.id for r in listed.results] == [ids[0], ids[2]]
    assert client.crm.companies.search_api.do_search(PublicObjectSearchRequest()).total == 2
    read = client.crm.companies.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            properties=["icp_tier"], inputs=[SimplePublicObjectId(id=i) for i in ids]
        )
    )
    assert isinstance(read, BatchResponseSimplePublicObjectWithErrors)
    assert read.errors[0].context == {"ids": [ids[1]]}
    assert {r.properties["icp_tier"] for r in read.results} == {"D"}


def test_the_clock_can_be_replaced(portal: FakeHubSpot) -> None:
    rid = portal.add_companies([{"name": "Acme"}])[0]
    portal.clock = lambda: datetime(2030, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)
    portal.edit("companies", rid, {"industry": "RETAIL"})
    assert portal.objects("companies")[rid]["hs_lastmodifieddate"] == "2030-01-02T03:04:05.678Z"
    portal.clock = lambda: datetime(2031, 1, 1, tzinfo=UTC)
    sdk(portal).crm.companies.batch_api.update(updates({rid: {"icp_tier": "A"}}))
    record = sdk(portal).crm.companies.basic_api.get_by_id(rid)
    assert record.properties["hs_lastmodifieddate"] == "2031-01-01T00:00:00Z"  # Instant style
    assert record.updated_at == datetime(2031, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("properties", "code"),
    [
        ({"icp_tier": "Z"}, "INVALID_OPTION"),
        ({"industry": "SOFTWARE"}, "INVALID_OPTION"),
        ({"foo": "1"}, "PROPERTY_DOESNT_EXIST"),
        ({"icp_score": "high"}, "INVALID_INTEGER"),
        ({"icp_score": "1e3"}, "INVALID_INTEGER"),
        ({"hs_object_id": "5"}, "READ_ONLY_VALUE"),
    ],
)
def test_batch_update_rejects_invalid_values_whole(
    portal: FakeHubSpot, properties: dict[str, str], code: str
) -> None:
    ids = seed(portal, 2)
    rows = {ids[0]: {"icp_tier": "A"}, ids[1]: properties}
    with pytest.raises(ApiException) as rejected:
        sdk(portal).crm.companies.batch_api.update(updates(rows))
    assert rejected.value.status == 400
    body = error(rejected.value)
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: [")
    (problem,) = json.loads(body["message"].removeprefix("Property values were not valid: "))
    name = next(iter(properties))
    assert problem["isValid"] is False and problem["error"] == code and problem["name"] == name
    assert body["errors"][0]["context"] == {"propertyName": [name]}
    assert portal.objects("companies")[ids[0]]["icp_tier"] is None  # nothing written


def test_poisoned_and_conflicting_ids_fail_the_whole_batch(portal: FakeHubSpot) -> None:
    ids = seed(portal, 3)
    portal.poison([ids[1]])
    portal.conflict([ids[2]])
    api = sdk(portal).crm.companies.batch_api
    with pytest.raises(ApiException) as poisoned:
        api.update(updates({ids[0]: {"icp_tier": "A"}, ids[1]: {"icp_tier": "B"}}))
    assert poisoned.value.status == 400
    assert '"name":"icp_tier"' in error(poisoned.value)["message"]
    with pytest.raises(ApiException) as conflicted:
        api.update(updates({ids[0]: {"icp_tier": "A"}, ids[2]: {"icp_tier": "B"}}))
    assert conflicted.value.status == 409
    assert error(conflicted.value)["category"] == "CONFLICT"
    assert portal.objects("companies")[ids[0]]["icp_tier"] is None
    twice = [SimplePublicObjectBatchInput(id=ids[0], properties={"icp_tier": "A"})] * 2
    with pytest.raises(ApiException) as dupes:
        api.update(BatchInputSimplePublicObjectBatchInput(inputs=twice))
    assert dupes.value.status == 400
    with pytest.raises(ApiException) as oversize:
        api.update(updates({str(n): {"icp_tier": "A"} for n in range(101)}))
    assert oversize.value.status == 400
    single = sdk(portal).crm.companies.basic_api.update(
        ids[0], SimplePublicObjectInput(properties={"icp_score": "7.0"})
    )
    assert single.properties["icp_score"] == "7"


def test_property_create_201_then_409(portal: FakeHubSpot) -> None:
    core = sdk(portal).crm.properties.core_api
    spec = PropertyCreate(
        name="icp_fit",
        label="ICP fit",
        type="enumeration",
        field_type="select",
        group_name="companyinformation",
        options=[{"label": "Good", "value": "good"}, {"label": "Poor", "value": "poor"}],
    )
    created = core.create("companies", spec)
    assert created.name == "icp_fit" and created.display_order == -1
    assert created.modification_metadata.read_only_value is False
    assert [o.value for o in created.options] == ["good", "poor"]
    assert portal.requests[-1].status == 201
    with pytest.raises(PropertiesApiException) as again:
        core.create("companies", spec)
    assert again.value.status == 409
    assert error(again.value)["category"] == "CONFLICT"
    assert core.get_by_name("companies", "icp_fit").type == "enumeration"
    tier = core.get_by_name("companies", "icp_tier")
    assert [o.value for o in tier.options] == ["A", "B", "C", "D"]
    names = {p.name for p in core.get_all("deals").results}
    assert {"dealname", "hs_is_closed_won", "dealtype", "closed_lost_reason"} <= names
    portal.remove_property("companies", "icp_route")
    with pytest.raises(NotFoundException):
        core.get_by_name("companies", "icp_route")
    bad_group = PropertyCreate(
        name="x_y", label="X", type="string", field_type="text", group_name="nope"
    )
    with pytest.raises(PropertiesApiException) as unknown_group:
        core.create("companies", bad_group)
    assert unknown_group.value.status == 400
    groups = sdk(portal).crm.properties.groups_api.get_all("companies")
    assert "companyinformation" in {g.name for g in groups.results}
    sdk(portal).crm.companies.batch_api.update(
        updates({portal.add_companies([{"name": "N"}])[0]: {"icp_fit": "good"}})
    )


def test_pipelines_default_and_custom(portal: FakeHubSpot) -> None:
    pipeline_id, stages = portal.add_pipeline(
        "Enterprise", [("Discovery", 0.1, False), ("Signed", 1.0, True), ("Lost", 0.0, True)]
    )
    assert pipeline_id.isdigit() and all(s.isdigit() for s in stages)
    company = portal.add_companies([{"name": "Acme"}])[0]
    deal = portal.add_deals(
        [{"dealname": "E", "pipeline": pipeline_id, "dealstage": stages[1], "_company": company}]
    )[0]
    result = sdk(portal).crm.pipelines.pipelines_api.get_all("deals").results
    assert [p.id for p in result] == ["default", pipeline_id]
    default = result[0]
    assert default.label == "Sales Pipeline"
    assert [s.id for s in default.stages][-2:] == ["closedwon", "closedlost"]
    assert default.stages[5].metadata == {"isClosed": "true", "probability": "1.0"}
    assert result[1].stages[1].metadata == {"isClosed": "true", "probability": "1.0"}
    assert portal.objects("deals")[deal]["hs_is_closed_won"] == "true"
    portal.edit("deals", deal, {"dealstage": stages[2]})
    outcome = portal.objects("deals")[deal]
    assert (outcome["hs_is_closed"], outcome["hs_is_closed_won"]) == ("true", "false")
    assert outcome["hs_is_closed_lost"] == "true"


def test_wrong_token_is_401(portal: FakeHubSpot) -> None:
    with pytest.raises(UnauthorizedException) as denied:
        sdk(portal, token="pat-wrong").crm.companies.basic_api.get_page()
    body = error(denied.value)
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith("Authentication credentials not found.")
    assert portal.api_calls == 0


def test_ten_secondly_daily_and_burst_429s() -> None:
    with FakeHubSpot(rate_limit=3, interval=10.0, daily_limit=1000) as portal:
        api = sdk(portal).crm.companies.basic_api
        for remaining in ("2", "1", "0"):
            api.get_page()
            headers = api.api_client.last_response
            assert all(headers.getheader(h) is not None for h in RATE_HEADERS)
            assert headers.getheader("X-HubSpot-RateLimit-Remaining") == remaining
        assert headers.getheader("X-HubSpot-RateLimit-Interval-Milliseconds") == "10000"
        assert headers.getheader("X-HubSpot-RateLimit-Daily-Remaining") == "997"
        with pytest.raises(ApiException) as limited:
            api.get_page()
        assert limited.value.status == 429
        body = json.loads(limited.value.body)
        assert body["policyName"] == "TEN_SECONDLY_ROLLING"
        assert body["errorType"] == "RATE_LIMIT"
        assert body["message"] == "You have reached your ten_secondly_rolling limit."
        assert "Retry-After" not in limited.value.headers
        assert limited.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    with FakeHubSpot() as portal:
        api = sdk(portal).crm.companies.basic_api
        portal.burst(2)
        for _ in range(2):
            with pytest.raises(ApiException) as burst:
                api.get_page()
            assert json.loads(burst.value.body)["policyName"] == "TEN_SECONDLY_ROLLING"
        api.get_page()
        portal.daily_remaining = 0
        with pytest.raises(ApiException) as daily:
            api.get_page()
        body = json.loads(daily.value.body)
        assert body["policyName"] == "DAILY"
        assert body["message"] == "You have reached your daily limit."
        assert (portal.api_calls, portal.rate_limited) == (4, 3)


def test_injected_failures_drops_and_delays(portal: FakeHubSpot) -> None:
    ids = seed(portal, 2)
    api = sdk(portal).crm.companies.batch_api
    portal.fail(503, path_contains="/batch/update")
    with pytest.raises(ServiceException) as unavailable:
        api.update(updates({ids[0]: {"icp_tier": "A"}}))
    assert error(unavailable.value)["category"] == "SERVICE_UNAVAILABLE"
    assert portal.objects("companies")[ids[0]]["icp_tier"] is None
    portal.fail(502, method="GET")
    with pytest.raises(ServiceException) as proxy:
        sdk(portal).crm.companies.basic_api.get_page()
    assert proxy.value.body.startswith("<html>")
    portal.drop(path_contains="/batch/update", after_apply=True)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        api.update(updates({ids[1]: {"icp_tier": "B"}}))
    assert portal.objects("companies")[ids[1]]["icp_tier"] == "B"  # applied, answer lost
    assert portal.requests[-1].status == 0
    portal.drop(method="POST")
    with pytest.raises(urllib3.exceptions.ProtocolError):
        api.update(updates({ids[0]: {"icp_tier": "C"}}))
    assert portal.objects("companies")[ids[0]]["icp_tier"] is None
    portal.slow(0.3, path_contains="/batch/update")
    started = time.monotonic()
    api.update(updates({ids[0]: {"icp_tier": "C"}}))
    assert time.monotonic() - started >= 0.3


def test_search_lags_behind_writes(portal: FakeHubSpot) -> None:
    seconds = [100.0]  # the portal's search index runs on this clock, moved by hand
    portal.search_clock = lambda: seconds[0]
    ids = seed(portal, 2)
    portal.search_lag = 3.0
    seconds[0] = 104.0  # the seeded companies are searchable by now
    portal.edit("companies", ids[0], {"industry": "MACHINERY"})
    new = portal.add_companies([{"name": "Fresh"}])[0]
    api = sdk(portal).crm.companies.search_api
    machinery = Filter(property_name="industry", operator="EQ", value="MACHINERY")
    query = PublicObjectSearchRequest(filter_groups=[FilterGroup(filters=[machinery])])
    seconds[0] = 106.5  # 2.5 s after the writes: not searchable yet
    assert api.do_search(query).total == 0
    everything = [r.id for r in api.do_search(PublicObjectSearchRequest()).results]
    assert sorted(everything) == sorted(ids) and new not in everything
    seconds[0] = 107.5  # 3.5 s after
    assert [r.id for r in api.do_search(query).results] == [ids[0]]
    assert new in [r.id for r in api.do_search(PublicObjectSearchRequest()).results]


def test_concurrent_clients_share_keep_alive_connections(portal: FakeHubSpot) -> None:
    ids = seed(portal, 50)
    pool = urllib3.PoolManager(maxsize=1)
    headers = {"Authorization": f"Bearer {portal.token}"}
    url = portal.base_url + "/crm/v3/objects/companies"
    for _ in range(5):
        assert pool.request("GET", url, headers=headers).status == 200
    assert pool.connection_from_url(url).num_connections == 1  # kept alive
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            client = sdk(portal)
            for k in range(5):
                rid = ids[(n * 5 + k) % 50]
                client.crm.companies.batch_api.update(updates({rid: {"icp_score": n * 10 + k}}))
                client.crm.companies.basic_api.get_page(limit=100)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    after = portal.objects("companies")
    stamps = {after[rid]["hs_lastmodifieddate"] for rid in ids[:40]}
    assert len(stamps) == 40  # one stamp per batch, every batch a new millisecond


def test_cassette_recorded_against_the_fake_replays(portal: FakeHubSpot, tmp_path: Path) -> None:
    ids = seed(portal, 3)
    recorder = vcr.VCR(cassette_library_dir=str(tmp_path), decode_compressed_response=True)
    client = sdk(portal)
    with recorder.use_cassette("hubspot.yaml", record_mode="all"):
        live = client.crm.companies.basic_api.get_page(limit=2)
    portal.stop()  # replay must not need the server
    with recorder.use_cassette("hubspot.yaml", record_mode="none"):
        replayed = client.crm.companies.basic_api.get_page(limit=2)
    assert [r.id for r in replayed.results] == [r.id for r in live.results] == ids[:2]
    assert replayed.paging.next.after == live.paging.next.after


def test_a_request_cut_off_mid_body_is_not_applied(portal: FakeHubSpot) -> None:
    ids = seed(portal, 1)
    host, port = portal.base_url.removeprefix("http://").split(":")
    body = json.dumps({"inputs": [{"id": ids[0], "properties": {"icp_tier": "A"}}]}).encode()
    head = (
        f"POST /crm/v3/objects/companies/batch/update HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {portal.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    closed = portal.connections_closed
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + body[: len(body) // 2])  # the client is killed here
    wait_until(lambda: portal.connections_closed > closed, "the portal ends the connection")
    assert portal.objects("companies")[ids[0]]["icp_tier"] is None
    assert not any(r.path.endswith("/batch/update") for r in portal.requests)
    assert sdk(portal).crm.companies.basic_api.get_page().results[0].id == ids[0]
