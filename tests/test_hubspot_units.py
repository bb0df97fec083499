"""HubSpot connector pieces that need no server: limiter, value formats, error parsing."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import pytest
from icp_engine.connectors.base import RecordUpdate
from icp_engine.connectors.hubspot.connector import HubSpotConnector, HubSpotSettings
from icp_engine.connectors.hubspot.limits import SlidingWindow
from icp_engine.connectors.hubspot.properties import definition, field_info
from icp_engine.connectors.hubspot.pull import Reader, read_spec, to_millis
from icp_engine.connectors.hubspot.write import BatchWriter, format_value, property_errors, readable
from icp_engine.connectors.mapping import OutputField
from icp_engine.sync.config import load_config

MAPPING = load_config("hubspot", None).mapping


# -- limiter ------------------------------------------------------------------------------


class SimulatedTime:
    """The window's clock and wait: time moves only when the window waits, by exactly what
    it asked for, and a wait runs what the test scheduled up to then (an answer arriving).
    Whole seconds keep every stamp exact."""

    def __init__(self) -> None:
        self.now = 0.0
        self.scheduled: list[tuple[float, Callable[[], object]]] = []

    def __call__(self) -> float:
        return self.now

    def at(self, moment: float, action: Callable[[], object]) -> None:
        self.scheduled = sorted([*self.scheduled, (moment, action)], key=lambda s: s[0])

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        until = math.inf if timeout is None else self.now + timeout
        if self.scheduled and self.scheduled[0][0] <= until:
            moment, action = self.scheduled.pop(0)
            self.now = max(self.now, moment)
            action()  # the window's lock is re-entrant: a release may run inside the wait
        elif timeout is None:
            raise AssertionError("the window waits for an answer nobody will send")
        else:
            self.now = until


def simulated_window(
    max_calls: int, interval: float, **options: bool
) -> tuple[SlidingWindow, SimulatedTime]:
    clock = SimulatedTime()
    return SlidingWindow(max_calls, interval, clock=clock, wait=clock.wait, **options), clock


def test_window_holds_calls_to_the_budget():
    window, clock = simulated_window(5, 10.0, adaptive=False)
    stamps = []
    for _ in range(12):
        slot = window.acquire()
        stamps.append(clock.now)
        window.release(slot)
    # 5 at once, 5 more a window later, 2 more a window after that: never 6 in 10 s
    assert stamps == [0.0] * 5 + [10.0] * 5 + [20.0] * 2
    assert window.waited == 10.0 + 10.0  # the 6th and the 11th call each waited a window


def test_window_counts_a_slot_until_its_answer_arrives():
    window, clock = simulated_window(1, 10.0, adaptive=False)
    slot = window.acquire()
    clock.at(30.0, lambda: window.release(slot))  # the first call's answer, 30 s later
    window.release(window.acquire())
    # the second call waited for the answer, then a whole window after it
    assert clock.now == 40.0
    assert window.in_window() == 1  # the second call's own slot


def test_window_follows_headers_and_counts_other_clients():
    window = SlidingWindow(100, 10.0)
    slot = window.acquire()
    headers = {
        "X-HubSpot-RateLimit-Max": "20",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "1000",
        "X-HubSpot-RateLimit-Remaining": "9",
        "X-HubSpot-RateLimit-Daily": "250000",
        "X-HubSpot-RateLimit-Daily-Remaining": "1000",
    }
    window.release(slot, headers)
    assert (window.max_calls, window.interval) == (20, 1.0)
    assert window.in_window() == 11  # ours plus 10 someone else made
    assert (window.daily_max, window.daily_remaining) == (250000.0, 1000.0)


def test_pause_holds_every_call():
    window, clock = simulated_window(100, 10.0)
    window.pause(20.0)
    window.release(window.acquire())
    assert clock.now == 20.0
    clock.now = 21.0
    window.release(window.acquire())  # the pause is over: no wait
    assert clock.now == 21.0


# -- values out and errors in -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "spec", "expected"),
    [
        (87.0, OutputField(field="s", type="number", scale=0), "87"),
        (87.456, OutputField(field="s", type="number", scale=2), "87.46"),
        (1e20, OutputField(field="s", type="number", scale=0), "100000000000000000000"),
        (-0.0, OutputField(field="s", type="number", scale=0), "0"),
        (None, OutputField(field="s", type="number"), ""),
        (float("nan"), OutputField(field="s", type="number"), ""),
        ("A", OutputField(field="t", type="picklist"), "A"),
        ("+25 employees", OutputField(field="r"), "+25 employees"),
        (True, None, "true"),
    ],
)
def test_values_go_out_as_hubspot_strings(value, spec, expected):
    assert format_value(value, spec) == expected


def test_validation_errors_are_spelled_out():
    detail = (
        'Property values were not valid: [{"isValid":false,"message":"E was not one of the '
        'allowed options: [A, B, C, D]","error":"INVALID_OPTION","name":"icp_tier"}]'
    )
    assert property_errors(detail, {}) == [
        ("icp_tier", "INVALID_OPTION", "E was not one of the allowed options: [A, B, C, D]")
    ]
    text = readable(400, "VALIDATION_ERROR", detail, {})
    assert text.startswith("icp_tier: INVALID_OPTION (E was not one")
    assert readable(409, "CONFLICT", "busy", {}) == "409 CONFLICT: busy"


def test_missing_property_fails_its_records_without_bisecting():
    from icp_engine.connectors.hubspot.client import HubSpotRequestError

    class Refusing:
        calls = 0

        def call(self, tally, path, method, object_type, body):
            Refusing.calls += 1
            names = {n for i in body["inputs"] for n in i["properties"]}
            if "icp_nope" in names:
                detail = (
                    'Property values were not valid: [{"isValid":false,"message":"Property '
                    '\\"icp_nope\\" does not exist","error":"PROPERTY_DOESNT_EXIST",'
                    '"name":"icp_nope"}]'
                )
                raise HubSpotRequestError(400, "VALIDATION_ERROR", detail, {})
            from icp_engine.connectors.hubspot.client import Answer

            return Answer(200, {"results": [{"id": i["id"]} for i in body["inputs"]]}, {})

    writer = BatchWriter(Refusing(), "companies", {})  # type: ignore[arg-type]
    batch = [
        RecordUpdate(str(i), {"icp_nope" if i % 10 == 0 else "icp_score": 1}) for i in range(100)
    ]
    results = writer.update(batch)
    assert Refusing.calls == 2
    failed = {r.record_id for r in results if not r.ok}
    assert failed == {str(i) for i in range(0, 100, 10)}
    assert all("icp mappings apply" in (r.message or "") for r in results if not r.ok)


# -- reading ------------------------------------------------------------------------------


def test_read_spec_asks_for_mapped_and_output_properties():
    account = read_spec(MAPPING, "account")
    assert account.object == "companies"
    assert {"name", "industry", "icp_score", "icp_route", "hs_lastmodifieddate"} <= set(
        account.properties
    )
    deal = read_spec(MAPPING, "opportunity")
    assert deal.associations == {"associations.companies": "companies"}
    assert "associations.companies" not in deal.properties


def test_associations_deduplicated_primary_first():
    spec = read_spec(MAPPING, "opportunity")
    reader = Reader(None, MAPPING)  # type: ignore[arg-type]
    record = {
        "id": "7",
        "properties": {"amount": "10"},
        "associations": {
            "companies": {
                "results": [
                    {"id": "1", "type": "deal_to_company_unlabeled"},
                    {"id": "2", "type": "deal_to_company_unlabeled"},
                    {"id": "2", "type": "deal_to_company"},
                ]
            }
        },
    }
    (row,) = reader.rows(spec, [record])
    assert row["associations.companies"] == "2"
    assert row["hs_object_id"] == "7"
    record["associations"]["companies"]["results"] = [
        {"id": "3", "type": "deal_to_company_unlabeled"}
    ]
    assert reader.rows(spec, [record])[0]["associations.companies"] == "3"


def test_to_millis():
    assert to_millis("2026-03-09T20:29:45.981Z") == 1773088185981
    assert to_millis("1773088185981") == 1773088185981


# -- schema -------------------------------------------------------------------------------


def test_field_info_maps_hubspot_types():
    prop = {
        "name": "icp_tier",
        "label": "ICP Tier",
        "type": "enumeration",
        "fieldType": "select",
        "options": [{"value": "A"}, {"value": "B"}, {"value": "Z", "hidden": True}],
        "modificationMetadata": {"readOnlyValue": False},
    }
    info = field_info(prop)
    assert (info.type, info.updateable, info.picklist_values) == ("picklist", True, ("A", "B"))
    calculated = field_info({"name": "hs_is_closed", "type": "bool", "calculated": True})
    assert (calculated.type, calculated.updateable) == ("boolean", False)
    read_only = {"name": "x", "type": "string", "modificationMetadata": {"readOnlyValue": True}}
    assert field_info(read_only).updateable is False


def test_output_property_definitions():
    tier = definition("tier", OutputField(field="icp_tier", type="picklist"))
    assert isinstance(tier, dict)
    assert [o["value"] for o in tier["options"]] == ["A", "B", "C", "D"]
    mapped = definition(
        "tier", OutputField(field="icp_tier", type="picklist", values={"A": "Tier A"})
    )
    assert isinstance(mapped, dict)
    assert [o["value"] for o in mapped["options"]] == ["Tier A"]
    reasons = definition("reasons", OutputField(field="icp_reasons", length=255))
    assert isinstance(reasons, dict)
    assert (reasons["type"], reasons["fieldType"]) == ("string", "textarea")
    score = definition("score", OutputField(field="icp_score", type="number"))
    assert isinstance(score, dict)
    assert (score["type"], score["fieldType"], score["groupName"]) == ("number", "number", "icp")
    assert isinstance(definition("segment", OutputField(field="x", type="picklist")), str)


def test_settings_reject_unknown_keys():
    assert HubSpotSettings().workers == 4
    with pytest.raises(ValueError, match="extra"):
        HubSpotSettings.model_validate({"wokers": 2})


def test_write_plan_says_what_the_rate_limit_implies():
    connector = HubSpotConnector(MAPPING)
    plan = connector.begin_write(1000)
    assert (plan.calls, plan.batch_size, plan.bulk) == (10, 400, False)
    assert plan.method == "batch update x4"
    assert "~1 s at 100 calls/10 s" in plan.note  # 10 batch updates at 10 calls a second


def test_search_looks_back_only_around_the_previous_run() -> None:
    from datetime import UTC, datetime, timedelta

    connector = HubSpotConnector(MAPPING)  # search_overlap 60 s
    watermark = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    assert connector.search_start(watermark, None) == watermark - timedelta(seconds=60)
    # quiet portal: the newest change is an hour older than the last run; nothing re-read
    assert connector.search_start(watermark, watermark + timedelta(hours=1)) == watermark
    # a change 10 s before the last run started: it may not have been searchable then
    last_run = watermark + timedelta(seconds=10)
    assert connector.search_start(watermark, last_run) == watermark - timedelta(seconds=50)
