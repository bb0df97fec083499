"""Shared fixtures: the fake CRMs (`org`, `portal` and their factories) and a throwaway
PostgreSQL server for the whole session; and `--fast`, the local loop without the tests
marked `slow` or `e2e` (plain `pytest`, what CI runs, runs every test).

A test module sets the fakes' options with a marker instead of its own fixture:

    pytestmark = pytest.mark.org(accounts=300, settled=True)   # every test of the module
    @pytest.mark.portal(companies=30, token=TOKEN)             # one test

`org` options: `accounts` (generated accounts, with their opportunities, loaded first),
`settled` (wait until the real clock has passed the org's), `env` (point the engine at the
org through SF_* and REQUESTS_CA_BUNDLE, default on), and any `FakeSalesforce` argument
(`page_size`, ...). `portal` options: `companies` and `deals_per_company`, `env`
(HUBSPOT_ACCESS_TOKEN and HUBSPOT_BASE_URL, default on), and any `FakeHubSpot` argument;
the portal has no rate limits unless a test asks for them, and a portal whose server
raised (a bug in the fake, not an answer it meant to give) fails the test at teardown.
A test that needs a second fake, or options only known inside it, calls `make_org` /
`make_portal` with the same options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.salesforce import FakeSalesforce
from tests.hsdata import seed_portal
from tests.pgserver import SKIP_REASON, binaries, postgres_server
from tests.sfdata import seed_org, use_org
from tests.waiting import settle

NO_LIMITS: dict[str, Any] = {"rate_limit": None, "interval": 1.0, "search_rate": None}
"""The portal's limits unless a test asks for its own (tests/test_fake_hubspot.py checks
the limits themselves)."""


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if binaries() is None:
        pytest.skip(SKIP_REASON)
    with postgres_server() as url:
        yield url


def _marked(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    marker = request.node.get_closest_marker(name)
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
def make_org(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeSalesforce]]:
    """Start fake Salesforce orgs (stopped after the test): `make_org(accounts=20)`."""
    with ExitStack() as running:

        def make(
            *, accounts: int = 0, settled: bool = False, env: bool = True, **options: Any
        ) -> FakeSalesforce:
            org = running.enter_context(FakeSalesforce(**options))
            if accounts:
                seed_org(org, accounts)
            if env:
                use_org(monkeypatch, org)
            if settled:
                settle(org)
            return org

        yield make


@pytest.fixture
def org(request: pytest.FixtureRequest, make_org: Callable[..., FakeSalesforce]) -> FakeSalesforce:
    """A fake Salesforce org with the options of the closest `org` marker."""
    return make_org(**_marked(request, "org"))


@pytest.fixture
def make_portal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeHubSpot]]:
    """Start fake HubSpot portals (stopped after the test): `make_portal(companies=30)`."""
    portals: list[FakeHubSpot] = []
    with ExitStack() as running:

        def make(
            *, companies: int = 0, deals_per_company: float = 2.0, env: bool = True, **options: Any
        ) -> FakeHubSpot:
            portal = running.enter_context(FakeHubSpot(**{**NO_LIMITS, **options}))
            portals.append(portal)
            if companies:
                seed_portal(portal, companies, deals_per_company=deals_per_company)
            if env:
                monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", portal.token)
                monkeypatch.setenv("HUBSPOT_BASE_URL", portal.base_url)
            return portal

        yield make
        for portal in portals:
            assert portal.server_errors == [], "the fake portal's server raised"


@pytest.fixture
def portal(request: pytest.FixtureRequest, make_portal: Callable[..., FakeHubSpot]) -> FakeHubSpot:
    """A fake HubSpot portal with the options of the closest `portal` marker."""
    return make_portal(**_marked(request, "portal"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help='the fast local loop: leave out the slow and e2e tests (-m "not slow and not e2e")',
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--fast"):
        return  # plain `pytest` (the README's command, what CI runs) runs everything
    kept, left_out = [], []
    for item in items:
        slow = item.get_closest_marker("slow") or item.get_closest_marker("e2e")
        (left_out if slow else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
