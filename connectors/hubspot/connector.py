"""HubSpot: companies and deals through hubspot-api-client, scores written back in batches.

Credentials come from the environment: `HUBSPOT_ACCESS_TOKEN` (a private app's token,
never logged nor put in a message) and optionally `HUBSPOT_BASE_URL` (sandboxes,
proxies, tests; default `https://api.hubapi.com`), which every generated API the
connector uses is pointed at.

The work is split by concern:

- `client`: the SDK client, the single gate every HTTP call passes (limiter, counting,
  error mapping, read retries through `connectors.retry`; urllib3 never retries itself);
- `limits`: the sliding-window rate limiter fed by HubSpot's headers;
- `pull`: list pages, search past its 10,000 cap, associations, the archive;
- `write`: batch update, 207 handling, bisection of refused batches;
- `properties`: describe, and creating the `icp_*` properties.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlparse

import pandas as pd
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
from icp_engine.connectors.hubspot import properties as hubspot_properties
from icp_engine.connectors.hubspot.client import (
    DEFAULT_HOST,
    HubSpotRequestError,
    Transport,
    Unreachable,
)
from icp_engine.connectors.hubspot.limits import SlidingWindow
from icp_engine.connectors.hubspot.pull import (
    LIST_PAGE,
    OBJECT_ID,
    Reader,
    gathered,
    read_spec,
    to_millis,
)
from icp_engine.connectors.hubspot.write import BATCH, BatchWriter
from icp_engine.connectors.mapping import CrmMapping, OutputField
from icp_engine.connectors.retry import Sleep
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)
TOKEN_VARIABLE = "HUBSPOT_ACCESS_TOKEN"
HOST_VARIABLE = "HUBSPOT_BASE_URL"
READ_SCOPES = "crm.objects.companies.read, crm.objects.deals.read"
WRITE_SCOPE = "crm.objects.companies.write"


class HubSpotSettings(BaseModel):
    """The `settings:` block of `hubspot.yaml`."""

    model_config = ConfigDict(extra="forbid")

    rate_limit_per_10s: Annotated[int, Field(ge=1, le=10_000)] = 100
    """Calls per 10 s until HubSpot's `X-HubSpot-RateLimit-*` headers say otherwise."""
    search_per_second: Annotated[int, Field(ge=1, le=50)] = 4
    """Search requests per second (HubSpot allows about 5, with no headers to follow)."""
    workers: Annotated[int, Field(ge=1, le=32)] = 4
    """Batch update calls in flight at once (enough to reach the limit at tens of ms a call)."""
    timeout: Annotated[float, Field(gt=0, le=600)] = 30.0
    """Seconds to wait for one HTTP response."""
    daily_reserve: Annotated[float, Field(ge=0, lt=1)] = 0.5
    """Stop writing when the portal's daily calls left fall below this share of its daily
    allowance, so the portal's other integrations never starve."""
    search_overlap: Annotated[float, Field(ge=0, le=86_400)] = 60.0
    """How far HubSpot's search index may lag behind writes, in seconds: records stamped
    this long before the previous run started are searched for again, in case that run
    could not see them yet (records read twice cost no write)."""
    attempts: Annotated[int, Field(ge=1, le=20)] = 5
    """Tries per read call before a transient failure (429, 5xx, reset) is given up."""
    backoff: Annotated[float, Field(gt=0, le=60)] = 0.5
    """Base of the exponential backoff between read retries, in seconds."""


class HubSpotConnector(Connector):
    """A HubSpot portal: companies are accounts, deals are opportunities.

    Args:
        mapping: the `hubspot` mapping (its `settings:` checked by `HubSpotSettings`).
        sleep: what waits between read retries (`time.sleep`; tests inject another).
    """

    name = "hubspot"

    def __init__(self, mapping: CrmMapping, sleep: Sleep | None = None) -> None:
        super().__init__(mapping)
        self._sleep = sleep
        self.settings = HubSpotSettings.model_validate(mapping.settings)
        self.limiter = SlidingWindow(self.settings.rate_limit_per_10s, 10.0)
        self.search_limiter = SlidingWindow(self.settings.search_per_second, 1.0, adaptive=False)
        self.host = DEFAULT_HOST
        self._transport: Transport | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._daily_used_up: str | None = None
        self._archive_page: dict[str, Any] | None = None
        """The first page of archived companies, read by `connect`, for `deleted_ids`."""

    # -- connection ---------------------------------------------------------------------

    def _tally(self, key: str) -> None:
        self._calls.add(key)

    @property
    def transport(self) -> Transport:
        """The transport, built from the environment on first use."""
        if self._transport is None:
            token = os.environ.get(TOKEN_VARIABLE, "").strip()
            if not token:
                msg = (
                    f"{TOKEN_VARIABLE} is not set: create a private app in HubSpot "
                    f"(Settings > Integrations > Private Apps) with the scopes {READ_SCOPES}, "
                    f"{WRITE_SCOPE} and export its access token as {TOKEN_VARIABLE}"
                )
                raise ConnectError(msg)
            host = os.environ.get(HOST_VARIABLE, "").strip() or DEFAULT_HOST
            if urlparse(host).scheme not in ("http", "https") or not urlparse(host).netloc:
                msg = f"{HOST_VARIABLE}={host!r} is not an http(s) URL"
                raise ConnectError(msg)
            self.host = host.rstrip("/")
            self._transport = Transport(
                token,
                self.host,
                self.limiter,
                self.search_limiter,
                self.settings.timeout,
                self._tally,
                self.settings.attempts,
                self.settings.backoff,
                pool_size=max(8, 2 * self.settings.workers),
                sleep=self._sleep,
            )
        return self._transport

    def connect(self) -> None:
        """Check the token with one call that is of use anyway; raise `ConnectError`.

        The call reads the first page of archived companies (ids only), which a sync
        pages to find deletions: keeping it saves that call, so a sync with nothing
        changed costs 4 calls (this one, a search per object, the deals' archive page).
        """
        transport = self.transport
        spec = read_spec(self.mapping, "account")
        try:
            for attempt in transport.retrying("connection check", unreachable=False):
                with attempt:
                    answer = transport.call(
                        "account",
                        "objects.basic_api",
                        "get_page",
                        spec.object,
                        limit=LIST_PAGE,
                        properties=[OBJECT_ID],
                        archived=True,
                    )
                    self._archive_page = answer.body
        except Unreachable as exc:
            raise ConnectError(f"cannot reach HubSpot at {self.host}: {exc}") from None
        except TransientError as exc:
            raise ConnectError(f"HubSpot at {self.host} is not answering: {exc}") from None
        except HubSpotRequestError as exc:
            hint = f"; the private app needs the scopes {READ_SCOPES}" if exc.status == 403 else ""
            msg = (
                f"HubSpot refused the connection check "
                f"({exc.status} {exc.category}: {exc.detail}){hint}"
            )
            raise ConnectError(msg) from None

    def describe_target(self) -> str:
        return f"HubSpot portal at {urlparse(self.host).netloc or self.host}"

    # -- pull ---------------------------------------------------------------------------

    def search_start(self, since: datetime, previous_run_started: datetime | None) -> datetime:
        """Where an incremental search starts: HubSpot's search index lags behind writes.

        A record stamped up to `search_overlap` seconds before the previous run started
        may not have been searchable when that run searched; anything older was. So the
        search starts at the earlier of `since` and that moment, and a quiet portal is not
        read again run after run. Without a previous run: `search_overlap` before `since`.
        """
        overlap = timedelta(seconds=self.settings.search_overlap)
        if previous_run_started is None:
            return since - overlap
        return min(since, previous_run_started - overlap)

    def read(
        self, kind: ObjectKind, context: PullContext, report: PullReport
    ) -> Iterator[pd.DataFrame]:
        """Canonical frames: list pages when `since` is None, else search pages.

        An incremental pull may start before `since`: see `search_start`. The runner takes
        the few records read again as unchanged.
        """
        reader = Reader(self.transport, self.mapping)
        spec = read_spec(self.mapping, kind)
        since, stats = context.since, report
        columns = ["id", *spec.properties, *spec.associations]
        if since is None:
            pages = reader.everything(spec)
        else:
            reader.known = (to_millis(since), context.already_read)
            pages = reader.changed(spec, self.search_start(since, context.previous_run_started))
        for rows in gathered(reader.rows(spec, records) for records in pages):
            raw = pd.DataFrame(rows, columns=columns, dtype=object)
            frame, issues = to_canonical(raw, self.mapping, kind)
            stats.issues.extend(issues)
            stats.rows += len(frame)
            yield frame

    def deleted_ids(
        self, kind: ObjectKind, since: datetime | None, known: Collection[str]
    ) -> set[str]:
        """Known ids now archived (deleted) in HubSpot.

        List and search never return archived records, and neither can filter on when a
        record was archived, so this pages the archive (`GET ...?archived=true`, ids only,
        100 a call) and keeps the ids the engine knows. It costs one call per 100 records
        in the recycle bin, whatever the size of the portal: cheaper than reading back
        every known id (one call per 100 known records) on every run. Records purged
        from the recycle bin (after 90 days) are caught by a full backfill, and by the
        `OBJECT_NOT_FOUND` a write to them meets.
        """
        del since
        first, self._archive_page = self._archive_page if kind == "account" else None, None
        if not known:
            return set()
        return Reader(self.transport, self.mapping).archived_ids(
            read_spec(self.mapping, kind), known, first
        )

    # -- write --------------------------------------------------------------------------

    def begin_write(self, records: int) -> WritePlan:
        """Hand out `100 x workers` records a call, written as concurrent batches of 100.

        The note says how long the run's calls (those made so far and the writes) take at
        the rate limit.
        """
        writes = math.ceil(records / BATCH)
        per_second = self.limiter.max_calls / self.limiter.interval
        seconds = (self.api_calls + writes) / per_second
        note = (
            f"~{seconds:,.0f} s at {self.limiter.max_calls} calls/{self.limiter.interval:g} s "
            f"({writes} batch updates of up to {BATCH})"
        )
        workers = self.settings.workers
        return WritePlan(records, BATCH * workers, writes, f"batch update x{workers}", note=note)

    def end_write(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _outputs(self) -> dict[str, OutputField]:
        return {spec.field: spec for spec in self.mapping.outputs.values()}

    def _check_budget(self) -> None:
        if self._daily_used_up:
            raise LimitReachedError(self._daily_used_up)
        daily, left = self.limiter.daily_max, self.limiter.daily_remaining
        reserve = self.settings.daily_reserve
        if daily and left is not None and left < reserve * daily:
            msg = (
                f"HubSpot's daily allowance is down to {left:,.0f} of {daily:,.0f} calls, "
                f"below the {reserve:.0%} kept for the portal's other integrations "
                f"(settings.daily_reserve)"
            )
            raise LimitReachedError(msg)

    def write(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        """Write up to `100 x workers` records as concurrent batch updates of 100."""
        if not batch:
            return []
        self._check_budget()
        writer = BatchWriter(self.transport, self.mapping.objects.account.object, self._outputs())
        chunks = [batch[i : i + BATCH] for i in range(0, len(batch), BATCH)]
        if len(chunks) == 1:
            outcomes: list[list[WriteResult] | BaseException] = [self._guarded(writer, chunks[0])]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.settings.workers, "hubspot-write")
            outcomes = list(self._pool.map(lambda c: self._guarded(writer, c), chunks))
        results: list[WriteResult] = []
        stopped: list[LimitReachedError] = []
        for chunk, outcome in zip(chunks, outcomes, strict=True):
            if isinstance(outcome, ConnectError | HubSpotRequestError):
                raise self._fatal(outcome)
            if isinstance(outcome, LimitReachedError):
                stopped.append(outcome)
                self._daily_used_up = str(outcome)
                # the writer retries these, meets the limit in `write` and stops there
                results.extend(
                    WriteResult(u.record_id, False, "DAILY", str(outcome), transient=True)
                    for u in chunk
                )
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                results.extend(outcome)
        if stopped and len(stopped) == len(chunks):
            raise stopped[0]
        return results

    @staticmethod
    def _guarded(
        writer: BatchWriter, chunk: Sequence[RecordUpdate]
    ) -> list[WriteResult] | BaseException:
        try:
            return writer.update(chunk)
        except Exception as exc:
            return exc

    @staticmethod
    def _fatal(error: Exception) -> Exception:
        if isinstance(error, HubSpotRequestError) and error.status == 403:
            return ConnectError(
                f"HubSpot refused the write ({error.category}: {error.detail}); "
                f"the private app needs the {WRITE_SCOPE} scope"
            )
        return error

    # -- schema -----------------------------------------------------------

    def describe(self) -> dict[str, dict[str, FieldInfo]]:
        return hubspot_properties.describe(self.transport, self.mapping)

    def create_output_fields(self, missing: Sequence[OutputField]) -> list[FieldCreation]:
        return hubspot_properties.create(self.transport, self.mapping, missing)
