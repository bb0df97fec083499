"""What a scheduled run remembers between runs, in one SQLite file per state directory.

`store` (runs, watermarks, last written values, failures, pending hand-overs, scores),
`mirror` (canonical frames stored as rows), `lock` (one run at a time per state
directory), `opsdb` (run details, alert conditions, audience exports), `reset` (setting a
damaged state aside).
"""

from icp_engine.sync.state.lock import DirectoryLock, LockedError
from icp_engine.sync.state.mirror import to_jsonable
from icp_engine.sync.state.opsdb import ConditionRow, OpsDB
from icp_engine.sync.state.reset import reset_state
from icp_engine.sync.state.store import (
    Failure,
    FailureRecord,
    RunRecord,
    ScoreRecord,
    StateError,
    StateStore,
    Watermark,
    Written,
)

__all__ = [
    "ConditionRow",
    "DirectoryLock",
    "Failure",
    "FailureRecord",
    "LockedError",
    "OpsDB",
    "RunRecord",
    "ScoreRecord",
    "StateError",
    "StateStore",
    "Watermark",
    "Written",
    "reset_state",
    "to_jsonable",
]
