"""`--crm warehouse`: accounts and opportunities read from SQL tables through SQLAlchemy.

The mapping (`mappings/warehouse.yaml`) names a table per object (`object: crm.accounts`,
or for DuckDB a file read in place: `object: "'export/Account.csv'"`) and the columns
feeding each canonical field, exactly as the CRM mappings do. Pulls are incremental in the
database itself: `WHERE <modified_at column> >= :since`, streamed in pages. The outputs go
to an updates table (default `icp_updates`: one row per account, the id and the output
columns, replaced per account on every write), where a reverse-ETL job or `icp sync
--crm salesforce --scores-from` takes them.

Settings: `url` (a SQLAlchemy URL, `${VAR}` read from the environment; default a DuckDB
file `icp.duckdb` in the working directory), `updates_table`, `page_size`, `batch_size`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from icp_engine.connectors.base import (
    Connector,
    FieldInfo,
    ObjectKind,
    PullContext,
    PullReport,
    RecordUpdate,
    WritePlan,
    WriteResult,
)
from icp_engine.connectors.canonical import to_canonical
from icp_engine.connectors.errors import ConnectError, SourceError
from icp_engine.connectors.mapping import ID_FIELDS, CrmMapping
from icp_engine.connectors.warehouse import engine, redact
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)
_TABLE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)?$")


def _detail(exc: BaseException) -> str:
    """The database's own first line (pandas wraps it; SQLAlchemy keeps it in `orig`)."""
    cause = exc.__cause__ if isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ else exc
    return str(getattr(cause, "orig", cause)).splitlines()[0]


class WarehouseSettings(BaseModel):
    """`settings:` in warehouse.yaml."""

    model_config = ConfigDict(extra="forbid")
    url: str = "duckdb:///icp.duckdb"
    updates_table: str = Field(default="icp_updates", pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)?$")
    page_size: int = Field(default=50_000, gt=0, le=1_000_000)
    batch_size: int = Field(default=10_000, gt=0, le=1_000_000)


def _source(name: str) -> str:
    """A table name (quoted, so its case stands), or a file path/glob read in place."""
    if _TABLE.match(name):
        return ".".join(_quote(part) for part in name.split("."))
    if name.startswith("'") and name.endswith("'"):
        return name
    return "'" + name.replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class WarehouseConnector(Connector):
    """A SQL database standing in for the CRM (DuckDB embedded, PostgreSQL, Snowflake...)."""

    name = "warehouse"

    def __init__(self, mapping: CrmMapping) -> None:
        super().__init__(mapping)
        self.settings = WarehouseSettings.model_validate(mapping.settings)
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = engine(self.settings.url)
        return self._engine

    def connect(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", exc)).splitlines()[0]
            msg = f"cannot reach {redact(self.settings.url)}: {detail}"
            raise ConnectError(msg) from exc

    def _columns(self, kind: ObjectKind) -> tuple[str, str | None]:
        fields = getattr(self.mapping.objects, kind).fields
        stamp = fields["modified_at"].field if "modified_at" in fields else None
        return fields[ID_FIELDS[kind]].field, stamp

    def read(
        self, kind: ObjectKind, context: PullContext, report: PullReport
    ) -> Iterator[pd.DataFrame]:
        """Rows modified at or after `since` (all without), filtered by the database."""
        since = context.since
        table = _source(getattr(self.mapping.objects, kind).object)
        _, stamp = self._columns(kind)
        sql = f"SELECT * FROM {table}"
        params: dict[str, Any] = {}
        if since is not None and stamp is not None:
            sql += f" WHERE {_quote(stamp)} >= :since"
            params["since"] = since.astimezone(UTC).replace(tzinfo=None)
        stats = report
        try:
            with self.engine.connect() as connection:
                self._calls.add(kind)
                pages = pd.read_sql(
                    sa.text(sql), connection, params=params, chunksize=self.settings.page_size
                )
                for raw in pages:
                    frame, issues = to_canonical(raw, self.mapping, kind)
                    stats.issues.extend(issues)
                    stats.rows += len(frame)
                    yield frame
        except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
            detail = _detail(exc)
            msg = f"reading {table} from {redact(self.settings.url)} failed: {detail}"
            raise SourceError(msg) from exc

    def deleted_ids(
        self, kind: ObjectKind, since: datetime | None, known: Collection[str]
    ) -> set[str]:
        if not known:
            return set()
        table = _source(getattr(self.mapping.objects, kind).object)
        id_column, _ = self._columns(kind)
        with self.engine.connect() as connection:
            rows = connection.execute(sa.text(f"SELECT {_quote(id_column)} FROM {table}"))
            present = {str(row[0]) for row in rows}
        return set(known) - present

    def _updates(self) -> sa.Table:
        schema, _, name = self.settings.updates_table.rpartition(".")
        id_field = self.mapping.objects.account.fields["account_id"].field
        columns = [sa.Column(id_field, sa.String, primary_key=True)]
        for output in self.mapping.outputs.values():
            kind: Any = sa.Float if output.type == "number" else sa.String
            columns.append(sa.Column(output.field, kind))
        return sa.Table(name, sa.MetaData(), *columns, schema=schema or None)

    def write(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        """Replace each account's row in the updates table, in one transaction."""
        table = self._updates()
        id_field = table.primary_key.columns.values()[0].name
        outputs = [c.name for c in table.columns if c.name != id_field]
        with self.engine.begin() as connection:
            table.create(connection, checkfirst=True)
            ids = [u.record_id for u in batch]
            existing = {
                row[0]: dict(row._mapping)
                for row in connection.execute(sa.select(table).where(table.c[id_field].in_(ids)))
            }
            connection.execute(sa.delete(table).where(table.c[id_field].in_(ids)))
            rows = []
            for update in batch:
                row = existing.get(update.record_id, {id_field: update.record_id})
                row.update({k: v for k, v in update.values.items() if k in outputs})
                rows.append(row)
            connection.execute(sa.insert(table), rows)
        self._calls.add("write")
        return [WriteResult(u.record_id, ok=True) for u in batch]

    def describe(self) -> dict[str, dict[str, FieldInfo]]:
        described: dict[str, dict[str, FieldInfo]] = {}
        for kind in ("account", "opportunity"):
            table = _source(getattr(self.mapping.objects, kind).object)
            with self.engine.connect() as connection:
                result = connection.execute(sa.text(f"SELECT * FROM {table} LIMIT 0"))
                names = list(result.keys())
            described[kind] = {n: FieldInfo(name=n, type="string") for n in names}
        return described

    def begin_write(self, records: int) -> WritePlan:
        """One transaction per `batch_size` rows of the updates table."""
        size = self.settings.batch_size
        batches = -(-records // size) if records else 0
        return WritePlan(
            records, size, batches, "sql", note=f"{records} rows to {self.describe_target()}"
        )

    def describe_target(self) -> str:
        return f"{self.settings.updates_table} in {redact(self.settings.url)}"
