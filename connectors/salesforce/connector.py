"""Salesforce: Accounts and Opportunities through simple-salesforce.

Reading: one SOQL query per object, generated from the mapping, with every value
passed through simple-salesforce's `format_soql`. An incremental pull asks for records
with `SystemModstamp` at or after the watermark through `queryAll`, so the same query
also returns the records deleted since (`IsDeleted = true`) and deletions cost no extra
call. The current output values are selected in the same query; the watermark goes into
the query to the millisecond (rows stamped before it, should the org compare at a
coarser grain, are dropped on arrival). Pages follow `nextRecordsUrl`; when the first
page says the result is larger than `bulk_pull_threshold`, the query runs again as a
Bulk API 2.0 query job instead. (Pages are read with `query` and `query_more`, the calls
`query_all_iter` makes, so the first page's `totalSize` can choose REST or Bulk first.)

A mapped field the org does not have makes Salesforce reject the whole query
(`INVALID_FIELD`); the connector then describes the object once, drops the missing
fields with a warning (they read as empty, as a missing CSV column does) and queries again.
The missing fields are remembered for a day (in the pull report's `memo`, which the sync
keeps and hands back in the next pull's context), so later runs query without them
straight away.

Writing (`connectors.salesforce.write`): sObject Collections, 200 records a call, or a
Bulk API 2.0 ingest job when the run has more than `bulk_write_threshold` records,
decided once per run by `begin_write`.

Every API call is reported by the HTTP session to the connector's one call counter, and
`Sforce-Limit-Info` is read from
every answer: once the org has used `api_share` of its daily allowance, the connector
stops (`LimitReachedError`), so the engine never starves the org's other integrations.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlparse

import pandas as pd
import requests
from icp_engine.connectors.answers import MalformedAnswer, salesforce_page
from icp_engine.connectors.base import (
    Connector,
    FieldCreation,
    FieldInfo,
    ObjectKind,
    PullContext,
    PullReport,
    RecordUpdate,
    WritePlan,
    WriteResult,
)
from icp_engine.connectors.canonical import to_canonical
from icp_engine.connectors.errors import ConnectError, LimitReachedError, TransientError
from icp_engine.connectors.mapping import CrmMapping, OutputField
from icp_engine.connectors.retry import Sleep, retrying
from icp_engine.connectors.salesforce.access import FieldAccess, grant_access
from icp_engine.connectors.salesforce.session import (
    CountingSession,
    attach_counting,
    login,
    translate,
)
from icp_engine.connectors.salesforce.write import (
    BulkWriter,
    CollectionsWriter,
    create_custom_fields,
)
from pydantic import BaseModel, ConfigDict, Field
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceOperationError
from simple_salesforce.format import format_soql
from tenacity import Retrying

log = logging.getLogger(__name__)
PAGE_ROWS = 2000
"""Rows per REST query page (Salesforce's default and maximum)."""
COLLECTION_SIZE = 200
MISSING_FIELDS_DAYS = 1
"""How long the fields an org lacks are remembered before they are described again."""
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def soql_datetime(moment: datetime) -> str:
    """A SOQL dateTime literal to the millisecond (`format_soql` drops fractions of a second).

    SystemModstamp is kept to the millisecond; a whole-second literal would read again
    every record stamped earlier in the watermark's second (a data load puts thousands
    there). The value is the engine's own timestamp, never user input.
    """
    utc = (
        pd.Timestamp(moment).tz_convert("UTC")
        if pd.Timestamp(moment).tzinfo
        else pd.Timestamp(moment).tz_localize("UTC")
    )
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _checked(function: Any, call: str, first: bool = False) -> Any:
    """`function` (a query call) whose answer must be a page of records.

    A page that cannot be read (no `records` list, no `done`, not done without a
    `nextRecordsUrl`) is a transient error: retried, then the pull ends with an error
    naming the call, never taken for the last page (issue 10: only a confirmation counts).
    """

    def checked_call(*args: Any, **kwargs: Any) -> Any:
        page = function(*args, **kwargs)
        try:
            salesforce_page(page, call, first)
        except MalformedAnswer as exc:
            raise TransientError(
                f"Salesforce answered a query page that is not one: {exc}"
            ) from None
        return page

    return checked_call


class _BulkQueryFailed(Exception):
    """A Bulk API 2.0 query job ended without results (Failed, Aborted, timed out)."""


class SalesforceSettings(BaseModel):
    """The `settings:` block of `salesforce.yaml`."""

    model_config = ConfigDict(extra="forbid")

    api_version: Annotated[str, Field(pattern=r"^\d{2}\.0$")] | None = None
    """REST API version (`SF_API_VERSION` overrides; default simple-salesforce's)."""
    bulk_write_threshold: Annotated[int, Field(ge=1)] = 10_000
    """Records to write above which a Bulk API 2.0 ingest job replaces sObject Collections."""
    bulk_job_size: Annotated[int, Field(ge=1, le=150_000_000)] = 10_000
    """Records per Bulk API 2.0 ingest job (each job's results are saved as it ends)."""
    bulk_pull_threshold: Annotated[int, Field(ge=1)] = 200_000
    """Rows a query returns above which it runs as a Bulk API 2.0 query job."""
    api_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    """Stop before this share of the org's daily API allowance is used."""
    timeout: Annotated[float, Field(gt=0)] = 120.0
    """Seconds to wait for one HTTP response."""
    bulk_poll_seconds: Annotated[float, Field(gt=0)] = 2.0
    """First wait before polling a Bulk API 2.0 job (simple-salesforce then backs off)."""
    commit_overlap: Annotated[float, Field(ge=0, le=86_400)] = 300.0
    """How long a transaction may run before it commits, in seconds: `SystemModstamp` is
    stamped when a transaction runs but the row is visible only once it commits, so rows
    stamped this long before the previous run started are read again, in case that run
    could not see them yet (rows read twice cost no write)."""


class SalesforceConnector(Connector):
    """Accounts and Opportunities of one org.

    Args:
        mapping: the `salesforce` mapping.
        session: the HTTP session to use (proxies, a test CA); a new one by default.
        retry_wait: the longest wait between retries of a failed read, in seconds.
        sleep: what waits between retries (`time.sleep`; tests inject another).
    """

    name = "salesforce"

    def __init__(
        self,
        mapping: CrmMapping,
        session: requests.Session | None = None,
        retry_wait: float = 30.0,
        sleep: Sleep | None = None,
    ) -> None:
        super().__init__(mapping)
        self.settings = SalesforceSettings.model_validate(mapping.settings)
        self._phase = "read"
        """What the calls being made are for (`read` or `write`), for the call counter."""
        self.session = attach_counting(
            session or CountingSession(self.settings.timeout),
            self.settings.timeout,
            lambda: self._calls.add(self._phase),
        )
        self._sf: Salesforce | None = None
        self._retry_wait, self._sleep = retry_wait, sleep
        self._missing: dict[str, set[str]] = {"account": set(), "opportunity": set()}
        self._deleted: dict[str, set[str]] = {"account": set(), "opportunity": set()}
        self._plan: WritePlan | None = None
        self._writer: CollectionsWriter | BulkWriter | None = None
        for kind in ("account", "opportunity"):
            for name in self._fields(kind):
                if not _NAME.match(name):
                    msg = f"salesforce.yaml: {name!r} is not a Salesforce field name"
                    raise ConnectError(msg)

    # -- connection and call accounting ---------------------------------------------------

    @property
    def sf(self) -> Salesforce:
        if self._sf is None:
            self.connect()
        assert self._sf is not None
        return self._sf

    def connect(self) -> None:
        """Log in from the environment and read the org's API usage (one call)."""
        if self._sf is not None:
            return
        self._sf = login(self.session, self.settings.api_version)
        try:
            self.session.read_limits(self._call("reading the org's limits", self._sf.limits))
        except TransientError as exc:
            msg = f"cannot reach Salesforce at {self.describe_target()}: {exc}"
            raise ConnectError(msg) from exc
        log.info(
            "connected to %s (API v%s); daily API usage %d of %d",
            self.describe_target(),
            self._sf.sf_version,
            self.session.usage.used,
            self.session.usage.limit,
        )

    def check_allowance(self) -> None:
        """Raise `LimitReachedError` once `api_share` of the daily allowance is used."""
        usage = self.session.usage
        if usage.limit and usage.used >= self.settings.api_share * usage.limit:
            msg = (
                f"the org has used {usage.used} of its {usage.limit} daily API requests; "
                f"the engine stops at {self.settings.api_share:.0%} (settings.api_share) to "
                "leave the rest to other integrations"
            )
            raise LimitReachedError(msg)

    def _retrying(self, doing: str) -> Retrying:
        return retrying(
            f"Salesforce {doing}",
            attempts=5,
            backoff=0.5,
            max_wait=self._retry_wait,
            sleep=self._sleep,
        )

    def _call(self, doing: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one API call, translating errors; transient ones are retried here."""

        def attempt() -> Any:
            self.check_allowance()
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                raise translate(exc, doing) from exc

        return self._retrying(doing)(attempt)

    # -- reading --------------------------------------------------------------------------

    def _object(self, kind: ObjectKind) -> str:
        return str(getattr(self.mapping.objects, kind).object)

    def _fields(self, kind: str) -> list[str]:
        object_map = getattr(self.mapping.objects, kind)
        names = [spec.field for spec in object_map.fields.values()]
        if kind == "account":
            names += [output.field for output in self.mapping.outputs.values()]
        return list(dict.fromkeys(names))

    def _stamp_field(self, kind: ObjectKind) -> str | None:
        spec = getattr(self.mapping.objects, kind).fields.get("modified_at")
        return spec.field if spec else None

    def soql(self, kind: ObjectKind, since: datetime | None, ordered: bool = True) -> str:
        """The query for one pull: mapped fields (minus those the org lacks) and outputs.

        `ordered=False` for Bulk API 2.0 query jobs: "Use of ORDER BY in a Bulk 2.0 query
        disables PKChunking for the query ... and potentially results in query timeouts"
        (Salesforce, "Troubleshooting Query Timeouts",
        https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_bulk_v2/bulk_api_2_0_troubleshoot_query_timeouts.htm).
        Nothing depends on the order: the watermark is the largest stamp read.
        """
        fields = [f for f in self._fields(kind) if f not in self._missing[kind]]
        stamp = self._stamp_field(kind)
        if since is not None and stamp:
            fields.append("IsDeleted")
        select = ", ".join(dict.fromkeys(fields))
        if since is None or not stamp:
            order = " ORDER BY Id" if ordered else ""
            return format_soql(
                "SELECT {:literal} FROM {:literal}" + order, select, self._object(kind)
            )
        order = format_soql(" ORDER BY {:literal}, Id", stamp) if ordered else ""
        return (
            format_soql(
                "SELECT {:literal} FROM {:literal} WHERE {:literal} >= {:literal}",
                select,
                self._object(kind),
                stamp,
                soql_datetime(since),
            )
            + order
        )

    def read_start(self, since: datetime, previous_run_started: datetime | None) -> datetime:
        """Where an incremental query starts: late commits are read with an overlap.

        A row stamped at 10:00:05 by a transaction that commits after a 10:00:06 row is
        never read by `SystemModstamp >= watermark` alone (salesforce.stackexchange.com
        q/234824; "The Dangers of Timestamp Based Change Tracking",
        pervasync.wordpress.com/2011/08/18). A row stamped up to `commit_overlap` seconds
        before the previous run started may not have been visible to it; anything older
        was. So the query starts at the earlier of `since` and that moment, and a quiet
        org is not read again run after run. Without a previous run: `commit_overlap`
        before `since`. The sync drops rows it already has (no write is repeated).
        """
        overlap = timedelta(seconds=self.settings.commit_overlap)
        if previous_run_started is None:
            return since - overlap
        return min(since, previous_run_started - overlap)

    def read(
        self, kind: ObjectKind, context: PullContext, report: PullReport
    ) -> Iterator[pd.DataFrame]:
        since = context.since
        if since is not None and self._stamp_field(kind) is not None:
            since = self.read_start(since, context.previous_run_started)
        self._deleted[kind] = set()
        self._missing[kind] |= self._remembered_missing(kind, report.memo)
        include_deleted = since is not None and self._stamp_field(kind) is not None
        first = self._first_page(kind, since, include_deleted, report)  # checked in `_checked`
        if not first["done"] and first["totalSize"] > self.settings.bulk_pull_threshold:
            log.info(
                "%s: %d rows to read: using a Bulk API 2.0 query job",
                self._object(kind),
                first["totalSize"],
            )
            try:
                yield from self._bulk_pull(kind, since, include_deleted, report)
                return
            except _BulkQueryFailed as exc:
                # as Airbyte's source-salesforce does (airbytehq/airbyte#45595, #10141): a
                # failed query job is read page by page instead; rows read twice are
                # deduplicated by the sync
                log.warning(
                    "%s: the Bulk API 2.0 query job failed (%s); reading %d rows through "
                    "REST pages instead",
                    self._object(kind),
                    exc,
                    first["totalSize"],
                )
        page = first
        while True:
            frame = self._frame(kind, page["records"], report)
            if frame is not None and since is not None and "modified_at" in frame:
                # the watermark's own second may come back whole: drop what precedes it
                frame = frame.loc[~(frame["modified_at"] < pd.Timestamp(since))]
            if frame is not None and len(frame):
                yield frame
            if page["done"]:
                break
            page = self._call(
                f"reading {self._object(kind)}",
                _checked(self.sf.query_more, f"reading {self._object(kind)}"),
                page["nextRecordsUrl"],
                identifier_is_url=True,
                include_deleted=include_deleted,
            )

    def _first_page(
        self, kind: ObjectKind, since: datetime | None, deleted: bool, report: PullReport
    ) -> Any:
        """The first page of the query, dropping fields the org lacks if it must."""
        query = _checked(self.sf.query, f"querying {self._object(kind)}", first=True)
        try:
            return self._call(
                f"querying {self._object(kind)}", query, self.soql(kind, since), deleted
            )
        except Exception as exc:
            if "INVALID_FIELD" not in str(exc):
                raise
        self._find_missing(kind, report.memo)
        return self._call(f"querying {self._object(kind)}", query, self.soql(kind, since), deleted)

    def _find_missing(self, kind: ObjectKind, memo: dict[str, Any]) -> None:
        """Describe the object to learn which mapped fields the org lacks, and remember it.

        The answer is kept in `memo` (the pull report's) for `MISSING_FIELDS_DAYS`, so a
        run does not pay a rejected query and a describe call for every absent enrichment
        field; a field created meanwhile is found when the entry expires (or at once by a
        new mapping).
        """
        described = self.describe_object(kind)
        self._missing[kind] = {f for f in self._fields(kind) if f not in described}
        remembered = memo.setdefault("missing_fields", {})
        remembered[kind] = {
            "fields": sorted(self._missing[kind]),
            "at": datetime.now(UTC).isoformat(),
        }
        for name in sorted(self._missing[kind]):
            log.warning(
                "%s has no field %s (or this user cannot read it): read as empty",
                self._object(kind),
                name,
            )

    def _remembered_missing(self, kind: ObjectKind, memo: dict[str, Any]) -> set[str]:
        entry = memo.get("missing_fields", {}).get(kind)
        if not entry:
            return set()
        age = datetime.now(UTC) - datetime.fromisoformat(entry["at"])
        fresh = age < timedelta(days=MISSING_FIELDS_DAYS)
        return set(entry["fields"]) & set(self._fields(kind)) if fresh else set()

    def _frame(
        self, kind: ObjectKind, records: list[dict[str, Any]], report: PullReport
    ) -> pd.DataFrame | None:
        if not records:
            return None
        raw = pd.DataFrame.from_records(records).drop(columns="attributes", errors="ignore")
        return self._canonical(kind, raw, report)

    def _canonical(
        self, kind: ObjectKind, raw: pd.DataFrame, stats: PullReport
    ) -> pd.DataFrame | None:
        if "IsDeleted" in raw:
            gone = raw["IsDeleted"].astype(str).str.lower().eq("true")
            self._deleted[kind].update(raw.loc[gone, "Id"].astype(str))
            raw = raw.loc[~gone]
        if not len(raw):
            return None
        frame, issues = to_canonical(raw.reset_index(drop=True), self.mapping, kind)
        stats.issues.extend(issues)
        stats.unreadable_ids.update(i.record_id for i in issues if i.column is None and i.record_id)
        stats.rows += len(frame)
        return frame

    def _bulk_pull(
        self, kind: ObjectKind, since: datetime | None, include_deleted: bool, report: PullReport
    ) -> Iterator[pd.DataFrame]:
        handler = getattr(self.sf.bulk2, self._object(kind))
        run = handler.query_all if include_deleted else handler.query
        try:
            pages = run(self.soql(kind, since, ordered=False), max_records=50_000, wait=1)
            for text in pages:
                raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
                frame = self._canonical(kind, raw, report)
                if frame is not None:
                    yield frame
        except SalesforceOperationError as exc:  # the job ended Failed or Aborted, or timed out
            raise _BulkQueryFailed(re.sub(r"\s+", " ", str(exc))[:300]) from exc
        except Exception as exc:
            raise translate(exc, f"bulk query of {self._object(kind)}") from exc

    def deleted_ids(
        self, kind: ObjectKind, since: datetime | None, known: Collection[str]
    ) -> set[str]:
        """Records the incremental `queryAll` returned with `IsDeleted = true` (no extra call)."""
        return self._deleted[kind] & set(known)

    # -- describe and fields --------------------------------------------------------------

    def describe_object(self, kind: ObjectKind) -> dict[str, FieldInfo]:
        handler = getattr(self.sf, self._object(kind))
        answer = self._call(f"describing {self._object(kind)}", handler.describe)
        return {
            field["name"]: FieldInfo(
                name=field["name"],
                type=field["type"],
                label=field.get("label", ""),
                updateable=bool(field.get("updateable")),
                length=field.get("length") or None,
                scale=field.get("scale"),
                picklist_values=tuple(
                    p["value"] for p in field.get("picklistValues") or () if p.get("active", True)
                ),
            )
            for field in answer["fields"]
        }

    def describe(self) -> dict[str, dict[str, FieldInfo]]:
        """Fields of both objects, plus the mapped ones that exist but are hidden.

        Describe lists only the fields the user can see; a field `apply` just created is
        invisible until field-level security grants it. The Tooling API's
        `FieldDefinition` lists every field of the object, so a mapped field it knows
        and describe does not is reported as hidden (`visible=False`), not missing
        (https://developer.salesforce.com/docs/atlas.en-us.api_tooling.meta/api_tooling/tooling_api_objects_fielddefinition.htm).
        """
        described: dict[str, dict[str, FieldInfo]] = {}
        for kind in ("account", "opportunity"):
            fields = self.describe_object(kind)
            absent = [f for f in self._fields(kind) if f not in fields and "." not in f]
            for name in sorted(self._hidden(kind, absent)):
                fields[name] = FieldInfo(name=name, type="unknown", updateable=False, visible=False)
            described[kind] = fields
        return described

    def _hidden(self, kind: ObjectKind, names: Sequence[str]) -> set[str]:
        """Which of `names` exist on the object although describe did not list them."""
        if not names:
            return set()
        soql = format_soql(
            "SELECT QualifiedApiName FROM FieldDefinition "
            "WHERE EntityDefinition.QualifiedApiName = {}",
            self._object(kind),
        )
        try:
            answer = self._call(
                "listing field definitions", self.sf.restful, "tooling/query/", params={"q": soql}
            )
        except Exception as exc:  # no Tooling access: the fields are reported as missing
            log.debug("cannot list %s field definitions: %s", self._object(kind), exc)
            return set()
        known = {str(r.get("QualifiedApiName")) for r in (answer or {}).get("records") or []}
        return set(names) & known

    def create_output_fields(self, missing: Sequence[OutputField]) -> list[FieldCreation]:
        return create_custom_fields(self.sf, self.mapping.objects.account.object, missing)

    def grant_field_access(self, wanted: Sequence[tuple[str, str, bool]]) -> dict[str, str | None]:
        """Through the "ICP Engine" permission set (see `connectors.salesforce_access`)."""
        return grant_access(self.sf, [FieldAccess(o, f, e) for o, f, e in wanted])

    # -- writing --------------------------------------------------------------------------

    def begin_write(self, records: int) -> WritePlan:
        """Choose sObject Collections or a Bulk API 2.0 ingest job for this run (the one
        place `bulk_write_threshold` is compared)."""
        threshold, job_size = self.settings.bulk_write_threshold, self.settings.bulk_job_size
        if records > threshold:
            jobs = math.ceil(records / job_size)
            plan = WritePlan(
                records,
                job_size,
                jobs * BulkWriter.CALLS_PER_JOB,
                "Bulk API 2.0",
                bulk=True,
                note=f"{records} records > bulk_write_threshold {threshold}: {jobs} ingest "
                f"job(s) of up to {job_size} records, about {BulkWriter.CALLS_PER_JOB} "
                "calls each",
            )
        else:
            plan = WritePlan(
                records,
                COLLECTION_SIZE,
                math.ceil(records / COLLECTION_SIZE),
                "sObject Collections",
                note=f"{records} records <= bulk_write_threshold {threshold}: PATCH "
                f"composite/sobjects, {COLLECTION_SIZE} a call",
            )
        self._plan, self._writer = plan, None
        return plan

    def _make_writer(self, plan: WritePlan) -> CollectionsWriter | BulkWriter:
        account = self.mapping.objects.account.object
        if plan.bulk:
            return BulkWriter(
                self.sf, account, self.check_allowance, self.settings.bulk_poll_seconds
            )
        return CollectionsWriter(self.sf, account, self.check_allowance)

    def write(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        if self._writer is None:
            self._writer = self._make_writer(self._plan or self.begin_write(len(batch)))
        self._phase = "write"
        try:
            return self._writer.write(batch)
        finally:
            self._phase = "read"

    def describe_target(self) -> str:
        if self._sf is None:
            return "Salesforce"
        return urlparse(f"https://{self._sf.sf_instance}").netloc or "Salesforce"
