"""One contract every connector passes (`connectors.base.Connector`).

Each connector runs against the real thing or the closest fake: CSV against an export in
a temporary folder, Salesforce against `FakeSalesforce` (REST and Bulk API 2.0 writes),
HubSpot against `FakeHubSpot`, the warehouse against DuckDB, and the in-memory fake
(`tests/fakes/memory.py`). The same tests ask of each:

- a pull returns canonical frames with the documented columns (the mapping's canonical
  fields, and `current_<output>` on accounts), one row per record;
- a pull after a watermark returns only what changed since (the ids read at the
  watermark's own instant dropped, as the sync does), and a record deleted since is
  among `deleted_ids` on the next run;
- the write plan's call count is the number of write calls the server really received;
- the writes land, a record the CRM refuses is answered for on its own, and nothing is
  written beyond the plan's records.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from icp_engine.connectors.base import Connector, PullContext, RecordUpdate, WriteResult
from icp_engine.connectors.canonical import restore_types
from icp_engine.connectors.csvfiles import CsvConnector
from icp_engine.connectors.hubspot.connector import HubSpotConnector
from icp_engine.connectors.id_set import Ids
from icp_engine.connectors.mapping import CURRENT_PREFIX, ID_FIELDS
from icp_engine.connectors.salesforce.connector import SalesforceConnector
from icp_engine.connectors.sample import generate_accounts, generate_opportunities, write_sample_crm
from icp_engine.connectors.warehouse_source import WarehouseConnector
from icp_engine.sync.config import load_config
from icp_engine.sync.writer import BatchOutcome, make_retrying, write_all

from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.memory import MemoryConnector
from tests.fakes.salesforce import FakeSalesforce

ACCOUNTS = 24
LATER = "2030-01-01T00:00:00.000Z"
"""A modification stamp after every generated one."""


class Harness:
    """A connector and its CRM, and what a test needs to do to that CRM."""

    connector: Connector
    score_field: str
    rejects = True
    """False: the CRM accepts every record (a file, a table): no per-record refusal."""

    def ids(self) -> list[str]:
        raise NotImplementedError

    def touch(self, record_id: str) -> None:
        """Change one account in the CRM, so it is modified after every watermark so far."""
        raise NotImplementedError

    def delete(self, record_id: str) -> None:
        """Delete one account in the CRM."""
        raise NotImplementedError

    def write_calls_seen(self) -> int:
        """Write calls the CRM received (0 for a file)."""
        raise NotImplementedError

    def scores(self) -> dict[str, Any]:
        """account id -> the score output the CRM holds (or would load from the file)."""
        raise NotImplementedError

    def reject(self, record_id: str) -> None:
        raise NotImplementedError


class CsvHarness(Harness):
    rejects = False

    def __init__(self, folder: Path) -> None:
        write_sample_crm(folder, accounts=ACCOUNTS, seed=5)
        self.folder = folder
        self.connector = CsvConnector(load_config("csv", None).mapping, folder)
        self.score_field = "ICP_Score__c"

    def _accounts(self) -> pd.DataFrame:
        return pd.read_csv(self.folder / "Account.csv", dtype=str, keep_default_na=False)

    def ids(self) -> list[str]:
        return list(self._accounts()["Id"])

    def touch(self, record_id: str) -> None:
        frame = self._accounts()
        row = frame["Id"] == record_id
        frame.loc[row, ["Industry", "SystemModstamp"]] = ["Retail", LATER]
        frame.to_csv(self.folder / "Account.csv", index=False, quoting=csv.QUOTE_MINIMAL)

    def delete(self, record_id: str) -> None:
        frame = self._accounts()
        frame = frame.loc[frame["Id"] != record_id]
        frame.to_csv(self.folder / "Account.csv", index=False, quoting=csv.QUOTE_MINIMAL)

    def write_calls_seen(self) -> int:
        return 0

    def scores(self) -> dict[str, Any]:
        path = self.folder / "icp_updates.csv"
        if not path.exists():
            return {}
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        return dict(zip(frame["Id"], frame[self.score_field], strict=True))


class WarehouseHarness(Harness):
    rejects = False

    def __init__(self, folder: Path) -> None:
        export = folder / "export"
        write_sample_crm(export, accounts=ACCOUNTS, seed=5)
        self.url = f"duckdb:///{folder / 'crm.duckdb'}"
        self.engine = sa.create_engine(self.url)
        for name in ("Account", "Opportunity"):
            frame = pd.read_csv(export / f"{name}.csv", dtype=str, keep_default_na=False)
            stamps = pd.to_datetime(frame["SystemModstamp"], utc=True)
            frame["SystemModstamp"] = stamps.dt.tz_localize(None)
            with self.engine.begin() as connection:
                frame.replace("", None).to_sql(name, connection, index=False)
        mapping = load_config("warehouse", None).mapping
        settings = {**mapping.settings, "url": self.url, "batch_size": 5}
        self.connector = WarehouseConnector(mapping.model_copy(update={"settings": settings}))
        self.score_field = "ICP_Score__c"
        self.commits = 0

        def commit(_: Any) -> None:
            self.commits += 1

        sa.event.listen(self.connector.engine, "commit", commit)

    def ids(self) -> list[str]:
        with self.engine.connect() as connection:
            return [str(r[0]) for r in connection.execute(sa.text('SELECT "Id" FROM "Account"'))]

    def touch(self, record_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                sa.text(
                    'UPDATE "Account" SET "Industry" = \'Retail\', "SystemModstamp" = :later '
                    'WHERE "Id" = :id'
                ),
                {"later": datetime(2030, 1, 1), "id": record_id},
            )

    def delete(self, record_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.text('DELETE FROM "Account" WHERE "Id" = :id'), {"id": record_id})

    def write_calls_seen(self) -> int:
        return self.commits  # one transaction per batch

    def scores(self) -> dict[str, Any]:
        with self.engine.connect() as connection:
            if not sa.inspect(connection).has_table("icp_updates"):
                return {}
            rows = connection.execute(
                sa.text(f'SELECT "Id", "{self.score_field}" FROM icp_updates')
            )
            return {str(r[0]): r[1] for r in rows}


class SalesforceHarness(Harness):
    def __init__(self, org: FakeSalesforce, **settings: Any) -> None:
        self.org = org
        self._ids = sorted(org.records("Account"))
        mapping = load_config("salesforce", None).mapping
        settings = {"bulk_poll_seconds": 0.01, "commit_overlap": 0, **settings}
        self.connector = SalesforceConnector(
            mapping.model_copy(update={"settings": settings}), sleep=lambda _: None
        )
        self.score_field = "ICP_Score__c"

    def ids(self) -> list[str]:
        return list(self._ids)

    def touch(self, record_id: str) -> None:
        self.org.edit("Account", record_id, {"Industry": "Retail"})

    def delete(self, record_id: str) -> None:
        self.org.delete("Account", record_id)

    def write_calls_seen(self) -> int:
        return sum(
            1
            for r in self.org.requests
            if (r.method == "PATCH" and r.path.endswith("/composite/sobjects"))
            or "/jobs/ingest" in r.path
        )

    def scores(self) -> dict[str, Any]:
        return {i: r.get(self.score_field) for i, r in self.org.records("Account").items()}

    def reject(self, record_id: str) -> None:
        self.org.add_validation_rule(
            "Account", lambda r: "Refused by a rule" if r.get("Id") == record_id else None
        )


class HubSpotHarness(Harness):
    def __init__(self, portal: FakeHubSpot) -> None:
        self.portal = portal
        self._ids = sorted(portal.objects("companies"))
        mapping = load_config("hubspot", None).mapping
        settings = {"search_per_second": 50, "search_overlap": 0, "workers": 1}
        self.connector = HubSpotConnector(
            mapping.model_copy(update={"settings": settings}), sleep=lambda _: None
        )
        self.score_field = "icp_score"

    def ids(self) -> list[str]:
        return list(self._ids)

    def touch(self, record_id: str) -> None:
        self.portal.edit("companies", record_id, {"industry": "RETAIL"})

    def delete(self, record_id: str) -> None:
        self.portal.delete("companies", record_id)

    def write_calls_seen(self) -> int:
        return sum(1 for r in self.portal.requests if r.path.endswith("/batch/update"))

    def scores(self) -> dict[str, Any]:
        return {i: r.get(self.score_field) for i, r in self.portal.objects("companies").items()}

    def reject(self, record_id: str) -> None:
        self.portal.poison([record_id])


class MemoryHarness(Harness):
    def __init__(self) -> None:
        mapping = load_config("csv", None).mapping
        self.connector = self.memory = MemoryConnector(mapping, page_size=10, batch_size=5)
        accounts = generate_accounts(ACCOUNTS, seed=5)
        opportunities = generate_opportunities(accounts, seed=5)
        blank = lambda frame: frame.replace("", None).to_dict("records")  # noqa: E731
        self._ids = self.memory.add("account", blank(accounts))
        self.memory.add("opportunity", blank(opportunities))
        self.score_field = "ICP_Score__c"

    def ids(self) -> list[str]:
        return list(self._ids)

    def touch(self, record_id: str) -> None:
        self.memory.edit("account", record_id, {"Industry": "Retail"})

    def delete(self, record_id: str) -> None:
        self.memory.delete("account", record_id)

    def write_calls_seen(self) -> int:
        return len(self.memory.batches)

    def scores(self) -> dict[str, Any]:
        return {i: r.get(self.score_field) for i, r in self.memory.records["account"].items()}

    def reject(self, record_id: str) -> None:
        self.memory.reject[record_id] = WriteResult(
            record_id, False, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Refused by a rule"
        )


CONNECTORS = ["csv", "warehouse", "salesforce", "salesforce-bulk", "hubspot", "memory"]


@pytest.fixture(params=CONNECTORS)
def crm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """The connector named by the parameter, with its CRM (the fakes from conftest.py)."""
    name = request.param
    if name == "csv":
        yield CsvHarness(tmp_path)
    elif name == "warehouse":
        harness = WarehouseHarness(tmp_path)
        yield harness
        harness.connector.engine.dispose()  # type: ignore[attr-defined]
        harness.engine.dispose()
    elif name.startswith("salesforce"):
        org = request.getfixturevalue("make_org")(accounts=ACCOUNTS, page_size=10)
        bulk = {"bulk_write_threshold": 3, "bulk_job_size": 5} if name.endswith("bulk") else {}
        yield SalesforceHarness(org, **bulk)
    elif name == "hubspot":
        yield HubSpotHarness(request.getfixturevalue("make_portal")(companies=ACCOUNTS))
    else:
        yield MemoryHarness()


def _pull(connector: Connector, kind: str, context: PullContext | None = None) -> pd.DataFrame:
    stream = connector.pull(kind, context)  # type: ignore[arg-type]
    frames = list(stream)
    for frame in frames:
        assert isinstance(frame, pd.DataFrame)
    assert stream.report.rows == sum(len(f) for f in frames)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def test_pull_returns_canonical_frames_with_the_documented_columns(crm: Harness) -> None:
    connector = crm.connector
    connector.connect()
    mapping = connector.mapping
    for kind in ("account", "opportunity"):
        frame = _pull(connector, kind)
        documented = set(restore_types(pd.DataFrame(), mapping, kind).columns)
        mapped = set(getattr(mapping.objects, kind).fields)
        assert ID_FIELDS[kind] in frame and "modified_at" in frame
        assert set(frame.columns) <= documented | mapped
        assert frame[ID_FIELDS[kind]].is_unique
        assert str(frame["modified_at"].dtype) == "datetime64[ns, UTC]"
        if kind == "account":
            outputs = {f"{CURRENT_PREFIX}{name}" for name in mapping.outputs}
            assert outputs <= set(frame.columns)
            assert sorted(frame["account_id"]) == sorted(crm.ids())
        else:
            assert "account_id" in frame and len(frame)


def test_pull_after_a_watermark_returns_only_what_changed(crm: Harness) -> None:
    connector = crm.connector
    connector.connect()
    first = _pull(connector, "account")
    top = first["modified_at"].max()
    at_top = Ids(first.loc[first["modified_at"] == top, "account_id"])
    changed = sorted(crm.ids())[3]
    crm.touch(changed)
    context = PullContext(top.to_pydatetime(), at_top)
    since = _pull(connector, "account", context)
    # the sync drops the ids it read at exactly the watermark if they come back unchanged
    again = since["modified_at"].eq(top) & since["account_id"].isin(list(at_top))
    assert list(since.loc[~again, "account_id"]) == [changed]
    assert len(since) < len(first)


def test_a_deleted_record_is_reported_after_the_next_pull(crm: Harness) -> None:
    connector = crm.connector
    connector.connect()
    first = _pull(connector, "account")
    top = first["modified_at"].max()
    known = set(first["account_id"])
    gone = sorted(known)[5]
    crm.delete(gone)
    connector.connect()  # the next run (HubSpot reads the archive's first page here)
    since = top.to_pydatetime()
    after = _pull(connector, "account", PullContext(since))  # some CRMs tell it in the pull
    assert gone not in set(after["account_id"])
    assert connector.deleted_ids("account", since, known) == {gone}


def _write(crm: Harness, updates: list[RecordUpdate]) -> tuple[Any, BatchOutcome]:
    connector = crm.connector
    plan = connector.begin_write(len(updates))
    outcome: BatchOutcome = []
    summary = write_all(
        connector, updates, outcome.extend, make_retrying(sleep=lambda _: None), plan=plan
    )
    connector.end_write()
    if connector.hands_over:
        connector.hand_over([u for u, r in outcome if r.ok], run_id=1)
    return plan, summary


def test_write_plan_calls_are_the_calls_made_and_the_writes_land(crm: Harness) -> None:
    connector = crm.connector
    connector.connect()
    ids = sorted(crm.ids())[:7]
    before = crm.scores()
    updates = [RecordUpdate(i, {crm.score_field: 11 + n}) for n, i in enumerate(ids)]
    calls = connector.write_calls

    plan, summary = _write(crm, updates)

    assert (plan.records, summary.written, summary.failed) == (7, 7, [])
    assert crm.write_calls_seen() == plan.calls
    if plan.calls:  # an API: the connector counted the calls the server saw
        assert connector.write_calls - calls == plan.calls
        assert plan.batches == math.ceil(7 / plan.batch_size)
    after = crm.scores()
    assert {i: float(after[i]) for i in ids} == {i: 11.0 + n for n, i in enumerate(ids)}
    changed = {i for i, value in after.items() if value != before.get(i)}
    assert changed == set(ids)  # nothing written outside the plan's records


def test_a_refused_record_is_answered_for_on_its_own(crm: Harness) -> None:
    if not crm.rejects:
        pytest.skip(f"{crm.connector.name} accepts every record (a file or a table)")
    connector = crm.connector
    connector.connect()
    ids = sorted(crm.ids())[:6]
    crm.reject(ids[2])
    before = crm.scores()
    updates = [RecordUpdate(i, {crm.score_field: 50 + n}) for n, i in enumerate(ids)]

    _, summary = _write(crm, updates)

    assert summary.written == 5
    ((update, result),) = summary.failed
    assert update.record_id == ids[2] and not result.ok and not result.transient
    assert result.code and result.message
    after = crm.scores()
    assert after[ids[2]] == before.get(ids[2])
    assert {i for i, v in after.items() if v != before.get(i)} == set(ids) - {ids[2]}


def test_nothing_is_written_without_a_plan_that_says_so(crm: Harness) -> None:
    connector = crm.connector
    connector.connect()
    plan, summary = _write(crm, [])
    assert (plan.records, plan.calls, plan.batches, summary.written) == (0, 0, 0, 0)
    assert crm.write_calls_seen() == 0


def test_the_pull_report_counts_the_calls_and_carries_the_memo(crm: Harness) -> None:
    connector = crm.connector
    connector.connect()
    memo = {"kept": {"from": "last run"}}
    before = connector.api_calls
    stream = connector.pull("account", PullContext(memo=memo))
    list(stream)
    assert stream.report.api_calls == connector.api_calls - before
    assert stream.report.memo["kept"] == {"from": "last run"}
    stream.report.memo["kept"]["from"] = "changed"
    assert memo == {"kept": {"from": "last run"}}  # the context is never written to


def test_a_write_plan_is_decided_without_a_call() -> None:
    memory = MemoryHarness().connector
    plan = memory.begin_write(12)
    assert (plan.batch_size, plan.calls, plan.batches) == (5, 3, 3)
    assert memory.api_calls == 0


@pytest.mark.parametrize("records", [3, 4, 11])
def test_salesforce_chooses_bulk_once_above_the_threshold(records: int) -> None:
    mapping = load_config("salesforce", None).mapping
    settings = {"bulk_write_threshold": 3, "bulk_job_size": 5}
    connector = SalesforceConnector(mapping.model_copy(update={"settings": settings}))
    plan = connector.begin_write(records)
    assert plan.bulk == (records > 3)
    assert plan.batch_size == (5 if plan.bulk else 200)
    assert plan.calls == (math.ceil(records / 5) * 7 if plan.bulk else 1)
    assert connector.api_calls == 0


def test_memory_fake_whole_call_failure_is_retried_then_lands() -> None:
    from icp_engine.connectors.errors import TransientError

    harness = MemoryHarness()
    memory = harness.memory
    memory.fail_next = [TransientError("503 from the fake", retry_after=2.0)]
    ids = sorted(harness.ids())[:3]
    waits: list[float] = []
    summary = write_all(
        memory,
        [RecordUpdate(i, {"ICP_Score__c": 1}) for i in ids],
        lambda _: None,
        make_retrying(sleep=waits.append),
    )
    assert summary.written == 3 and summary.retries == 1 and waits == [2.0]
    assert [len(b) for b in memory.batches] == [3, 3]


def test_memory_fake_deletions_and_stamps_follow_its_clock() -> None:
    harness = MemoryHarness()
    memory = harness.memory
    gone = sorted(harness.ids())[0]
    since = memory.now() + timedelta(milliseconds=1)
    memory.delete("account", gone)
    assert memory.deleted_ids("account", since, set(harness.ids())) == {gone}
    assert _pull(memory, "account", PullContext(since)).empty
    assert since > datetime(2026, 1, 1, tzinfo=UTC)
