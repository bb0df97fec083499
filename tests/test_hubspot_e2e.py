"""`icp --crm hubspot` against the fake portal end to end: sync, faults, token, dry run."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sync.cli import main
from tests.fakes.hubspot import FakeHubSpot

COMPANIES = 200
INDUSTRIES = ["COMPUTER_SOFTWARE", "BANKING", "RETAIL", "HOSPITAL_HEALTH_CARE", "MACHINERY"]


def seed(portal: FakeHubSpot, n: int = COMPANIES) -> list[str]:
    rng = random.Random(7)
    ids = portal.add_companies(
        [
            {
                "name": f"Company {i}",
                "domain": f"company{i}.example",
                "industry": rng.choice(INDUSTRIES),
                "numberofemployees": str(rng.randint(5, 2000)),
                "annualrevenue": str(rng.randint(0, 50) * 100_000),
                "country": rng.choice(["US", "Germany", "UK", "France"]),
            }
            for i in range(n)
        ]
    )
    stages = ["closedwon", "closedlost", "qualifiedtobuy"]
    portal.add_deals(
        [
            {
                "dealname": f"Deal {i}",
                "amount": str(rng.randint(1, 100) * 1000),
                "dealstage": rng.choice(stages),
                "closedate": "2025-06-30",
                "_company": ids[i % n],
            }
            for i in range(n * 2)
        ]
    )
    return ids


@pytest.fixture
def portal(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(rate_limit=None, interval=1.0, search_rate=None) as fake:
        seed(fake)
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", fake.token)
        monkeypatch.setenv("HUBSPOT_BASE_URL", fake.base_url)
        yield fake


def icp(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


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
