"""What a scheduled run remembers between runs: one SQLite file per state directory, or
a PostgreSQL schema (`ICP_STATE_URL`).

`records` (the typed values stored and returned, and `StateError`; no database code),
`meta` (the names of the per-CRM keys), `store` (runs, watermarks, last written values,
failures, pending hand-overs, scores), `mirror` (canonical frames stored as rows), `lock`
(one run at a time per state directory), `postgres` (the PostgreSQL connection, advisory
lock and URL redaction), `sql` (the connection protocol both backends answer), `opsdb`
(run details, alert conditions, audience exports), `reset` (setting a damaged state aside).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from icp_engine.sync.state.lock import DirectoryLock, LockedError
    from icp_engine.sync.state.mirror import to_jsonable
    from icp_engine.sync.state.opsdb import ConditionRow, OpsDB
    from icp_engine.sync.state.records import (
        Failure,
        FailureRecord,
        Pending,
        RunRecord,
        ScoreRecord,
        StateError,
        Watermark,
        Written,
    )
    from icp_engine.sync.state.reset import reset_state
    from icp_engine.sync.state.store import StateStore

_WHERE = {  # name -> module: loaded on first use, so `records` alone loads no database code
    "ConditionRow": "opsdb",
    "DirectoryLock": "lock",
    "Failure": "records",
    "FailureRecord": "records",
    "LockedError": "lock",
    "OpsDB": "opsdb",
    "Pending": "records",
    "RunRecord": "records",
    "ScoreRecord": "records",
    "StateError": "records",
    "StateStore": "store",
    "Watermark": "records",
    "Written": "records",
    "reset_state": "reset",
    "to_jsonable": "mirror",
}
__all__ = [
    "ConditionRow",
    "DirectoryLock",
    "Failure",
    "FailureRecord",
    "LockedError",
    "OpsDB",
    "Pending",
    "RunRecord",
    "ScoreRecord",
    "StateError",
    "StateStore",
    "Watermark",
    "Written",
    "reset_state",
    "to_jsonable",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
