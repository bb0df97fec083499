"""The HubSpot connector replayed from vcrpy cassettes (`cassettes/hubspot/`), offline.

By default nothing listens: `HUBSPOT_BASE_URL` is the placeholder origin and every HTTP
exchange comes from the cassette (a request that is not in it fails the test, so a
change in what the connector sends is caught). `ICP_RECORD=1 pytest
tests/test_hubspot_cassettes.py` re-records them against the fake portal
(`tests/fakes/hubspot.py`); `ICP_RECORD=live` against a real portal whose private-app
token is in `HUBSPOT_ACCESS_TOKEN` (seed it as `_seed` does; the assertions then only
check shapes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pandas as pd
import pytest
import yaml
from icp_engine.connectors.base import PullContext, RecordUpdate
from icp_engine.connectors.hubspot.connector import HubSpotConnector
from icp_engine.sync.config import load_config

from tests.fakes.hubspot import FakeHubSpot
from tests.recording import CASSETTES, LIVE, RECORDING, cassette

PLACEHOLDER = "http://api.hubapi.test"
TOKEN = "pat-test-token"
MAPPING = load_config("hubspot", None).mapping.model_copy(update={"settings": {"backoff": 0.01}})
REAL_LIMITS = {"rate_limit": 100, "interval": 10.0, "search_rate": 5}
"""A Free/Starter private app's budget: 100 calls per 10 s, search 5 a second (HubSpot's
usage guidelines, https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details),
so the replayed `X-HubSpot-RateLimit-*` headers are a real portal's (issue 13, item 12)."""
SINCE = datetime(2020, 1, 1, tzinfo=UTC)


def _seed(portal: FakeHubSpot) -> dict[str, list[str]]:
    industries = ["COMPUTER_SOFTWARE", "BANKING", "RETAIL", "HOSPITAL_HEALTH_CARE"]
    ids = portal.add_companies(
        [
            {
                "name": f"Company {i:03d}",
                "domain": f"company{i}.example",
                "industry": industries[i % 4],
                "numberofemployees": str(10 * (i + 1)),
                "annualrevenue": str(100_000 * i),
                "country": "US" if i % 2 else "Germany",
                "icp_score": str(i % 100) if i % 3 else "",
                "icp_tier": "ABCD"[i % 4] if i % 3 else "",
            }
            for i in range(150)
        ]
    )
    stages = ["closedwon", "closedlost", "qualifiedtobuy"]
    deals = portal.add_deals(
        [
            {
                "dealname": f"Deal {i}",
                "amount": f"{1000 + i}.50",
                "dealstage": stages[i % 3],
                "closedate": "2025-06-30",
                "_company": ids[i % 150],
            }
            for i in range(120)
        ]
    )
    return {"companies": ids, "deals": deals}


@contextmanager
def hubspot(monkeypatch: pytest.MonkeyPatch, name: str) -> Iterator[dict[str, list[str]]]:
    """The origin to talk to (fake or placeholder) inside the cassette `name`."""
    if LIVE:  # a real portal: its token and host come from the environment
        host = os.environ.get("HUBSPOT_BASE_URL", "https://api.hubapi.com")
        with cassette("hubspot", name, host, PLACEHOLDER):
            yield {}
        return
    if RECORDING:
        with FakeHubSpot(**REAL_LIMITS, token=TOKEN) as portal:  # type: ignore[arg-type]
            seeded = _seed(portal)
            portal.delete("companies", seeded["companies"][7])
            monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", portal.token)
            monkeypatch.setenv("HUBSPOT_BASE_URL", portal.base_url)
            with cassette("hubspot", name, portal.base_url, PLACEHOLDER):
                yield seeded
        return
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("HUBSPOT_BASE_URL", PLACEHOLDER)
    with cassette("hubspot", name, PLACEHOLDER, PLACEHOLDER):
        yield {}


def _frame(connector: HubSpotConnector, kind: str, since: datetime | None) -> pd.DataFrame:
    return pd.concat(list(connector.pull(kind, PullContext(since))), ignore_index=True)  # type: ignore[arg-type]


def test_full_pull_replays(monkeypatch):
    with hubspot(monkeypatch, "full_pull"):
        connector = HubSpotConnector(MAPPING)
        connector.connect()
        accounts = _frame(connector, "account", None)
        deals = _frame(connector, "opportunity", None)
    if LIVE:
        assert {"account_id", "current_score"} <= set(accounts.columns)
        return
    assert len(accounts) == 149 and accounts["account_id"].is_unique  # one was deleted
    first = accounts.iloc[0]
    assert (first["name"], first["industry"], first["country"]) == (
        "Company 000",
        "Technology/SaaS",
        "Germany",
    )
    assert accounts["current_tier"].dropna().isin(list("ABCD")).all()
    assert accounts["employees"].dtype == "float64"
    assert len(deals) == 120
    assert deals["account_id"].isna().sum() == 1  # its company was deleted
    assert set(deals.loc[deals["is_won"].astype(bool), "stage"]) == {"closedwon"}
    assert str(deals["closed_at"].dtype) == "datetime64[ns, UTC]"
    # 1 check (the archive's first page) + 2 company pages + 2 deal pages, exactly what
    # the cassette holds
    assert connector.api_calls == 5
    # the limiter followed the replayed headers: a real portal's window, not a million
    assert (connector.limiter.max_calls, connector.limiter.interval) == (100, 10.0)


def test_incremental_deals_replay(monkeypatch):
    with hubspot(monkeypatch, "incremental_deals"):
        connector = HubSpotConnector(MAPPING)
        connector.connect()
        deals = _frame(connector, "opportunity", SINCE)
    if LIVE:
        return
    assert len(deals) == 120 and deals["account_id"].isna().sum() == 1
    assert connector.api_calls == 1 + 1 + 1  # check, one search page, one association batch


def test_batch_write_with_207_replays(monkeypatch):
    with hubspot(monkeypatch, "batch_write_207") as seeded:
        ids = seeded.get("companies") or [str(5790000001 + i) for i in range(150)]
        # one worker: vcrpy drops interactions recorded from concurrent threads
        connector = HubSpotConnector(
            MAPPING.model_copy(update={"settings": {**MAPPING.settings, "workers": 1}})
        )
        connector.connect()
        connector.begin_write(150)
        batch = [
            RecordUpdate(i, {"icp_score": float(n % 100), "icp_tier": "ABCD"[n % 4]})
            for n, i in enumerate(ids)
        ]
        results = {r.record_id: r for r in connector.write(batch[:100])}
        results.update({r.record_id: r for r in connector.write(batch[100:])})
        connector.end_write()
    if LIVE:
        return
    gone = results[ids[7]]
    assert (gone.ok, gone.deleted, gone.code) == (False, True, "OBJECT_NOT_FOUND")
    assert sum(r.ok for r in results.values()) == 149
    assert connector.write_calls == 2


def test_cassettes_hold_no_token():
    files = sorted((CASSETTES / "hubspot").glob("*.yaml"))
    assert {f.stem for f in files} >= {"full_pull", "incremental_deals", "batch_write_207"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert TOKEN not in text and "Bearer" not in text
        assert "127.0.0.1" not in text and PLACEHOLDER in text


def test_cassettes_replay_a_real_portals_rate_limit_headers():
    """Every recorded answer that carries `X-HubSpot-RateLimit-Max` says 100 (or 110, 190,
    250: the documented budgets per 10 s), never an unlimited fake's 1,000,000."""
    seen = []
    for path in sorted((CASSETTES / "hubspot").glob("*.yaml")):
        for interaction in yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"]:
            headers = interaction["response"]["headers"]
            if "X-HubSpot-RateLimit-Max" in headers:
                seen.append(int(headers["X-HubSpot-RateLimit-Max"][0]))
                millis = int(headers["X-HubSpot-RateLimit-Interval-Milliseconds"][0])
                assert millis == 10_000
    assert seen and set(seen) <= {100, 110, 190, 250}
