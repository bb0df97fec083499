"""Reading tables and queries from a warehouse through SQLAlchemy (DuckDB embedded by default).

Owns database URLs (`${VAR}` in a URL is read from the environment, so a password never
sits in YAML), the engine, and reading a query into a frame of rows, optionally only the
rows modified after a watermark (incremental, like the CRMs' `SystemModstamp` pulls).
A bare file path is read by DuckDB in place: `accounts.parquet`, `export/*.csv`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from icp_engine.connectors.errors import SourceError
from sqlalchemy.exc import SQLAlchemyError

DEFAULT_URL = "duckdb:///:memory:"
_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def expand(url: str) -> str:
    """`postgresql://icp:${PGPASSWORD}@db/crm` with the variable read from the environment.

    Raises:
        SourceError: a named variable is not set (its name is said; no value is ever shown).
    """

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            msg = f"database URL: the environment variable {name} is not set"
            raise SourceError(msg)
        return os.environ[name]

    return _VAR.sub(one, url)


def redact(url: str) -> str:
    """The URL as it may be shown: any password replaced by `***`."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def engine(url: str | None = None) -> sa.Engine:
    """An engine for `url` (default: an in-memory DuckDB); the caller disposes of it."""
    try:
        return sa.create_engine(expand(url or DEFAULT_URL))
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        msg = f"database URL {redact(url or DEFAULT_URL)}: {exc}"
        raise SourceError(msg) from exc


@contextmanager
def engine_for(url: str | None = None) -> Iterator[sa.Engine]:
    """An engine for one piece of work, its pooled connections closed afterwards.

    DuckDB refuses a second connection to a file that a forgotten pool still holds open
    with another configuration, so no engine outlives the work it was made for.
    """
    made = engine(url)
    try:
        yield made
    finally:
        made.dispose()


def read_query(
    url: str | None,
    query: str,
    label: str,
    modified_column: str | None = None,
    since: datetime | None = None,
    params: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Rows of `query` as a frame (column names as the database returns them).

    With `modified_column` and `since`, only rows modified strictly after `since` are read
    (the query is wrapped, so any SELECT works): an incremental pull.

    Raises:
        SourceError: the database cannot be reached or the query fails (the message names
            `label` and the URL without its password).
    """
    sql = query.strip().rstrip(";")
    bind: dict[str, Any] = dict(params or {})
    if modified_column is not None and since is not None:
        if not _IDENTIFIER.match(modified_column):
            msg = f"{label}: modified-at column {modified_column!r} is not a plain column name"
            raise SourceError(msg)
        sql = f'SELECT * FROM ({sql}) AS icp_source WHERE "{modified_column}" > :icp_since'
        bind["icp_since"] = since
    try:
        with engine_for(url) as made, made.connect() as connection:
            return pd.read_sql(sa.text(sql), connection, params=bind)
    except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
        cause = exc.__cause__ if isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ else exc
        detail = str(getattr(cause, "orig", cause)).splitlines()[0]
        msg = f"{label}: the query against {redact(url or DEFAULT_URL)} failed: {detail}"
        raise SourceError(msg) from exc


def read_table(
    url: str | None,
    table: str,
    label: str,
    modified_column: str | None = None,
    since: datetime | None = None,
) -> pd.DataFrame:
    """Every row of a table (or, for DuckDB, a file read in place: `accounts.parquet`)."""
    if _IDENTIFIER.match(table) or re.match(r"^[A-Za-z_][\w]*\.[A-Za-z_]\w*$", table):
        source = table
    else:  # a path or glob, read in place by DuckDB
        source = "'" + table.replace("'", "''") + "'"
    return read_query(url, f"SELECT * FROM {source}", label, modified_column, since)


def write_table(url: str, table: str, frame: pd.DataFrame) -> int:
    """Replace `table` in the database with the rows of `frame`; the number of rows.

    DuckDB is written natively (a million rows in about a second); other databases
    through pandas' `to_sql` in chunks.
    """
    if not re.match(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)?$", table):
        msg = f"--table {table!r}: expected a table name (optionally schema.table)"
        raise SourceError(msg)
    schema, _, name = table.rpartition(".")
    with engine_for(url) as target:
        if target.dialect.name == "duckdb":
            import duckdb

            database = sa.engine.make_url(expand(url)).database or ":memory:"
            with duckdb.connect(database) as connection:
                connection.register("icp_frame", frame)
                connection.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM icp_frame")
            return len(frame)
        try:
            with target.begin() as connection:
                frame.to_sql(
                    name,
                    connection,
                    schema=schema or None,
                    if_exists="replace",
                    index=False,
                    chunksize=10_000,
                    method="multi",
                )
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", exc)).splitlines()[0]
            msg = f"writing {table} to {redact(url)} failed: {detail}"
            raise SourceError(msg) from exc
    return len(frame)
