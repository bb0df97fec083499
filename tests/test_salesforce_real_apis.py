"""Salesforce answers our own fake never gave before (issue 13, items 1-6), each driven end
to end through `icp --crm salesforce` against the fake org."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes.salesforce import FakeSalesforce
from tests.sfdata import outputs, seed_org, use_org
from tests.test_salesforce_e2e import fresh_full_run_agrees, run, settle

ACCOUNTS = 300


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSalesforce]:
    with FakeSalesforce() as fake:
        seed_org(fake, ACCOUNTS)
        use_org(monkeypatch, fake)
        settle(fake)
        yield fake


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
