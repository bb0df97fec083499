"""The database calls the state makes, as a protocol both backends answer.

`sqlite3.Connection` answers it as it is; `sync.state.postgres.PgConnection` answers it on
psycopg 3. The store's SQL uses `?` placeholders and runs unchanged on both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol


class Connection(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...

    @property
    def in_transaction(self) -> bool: ...

    def close(self) -> None: ...
