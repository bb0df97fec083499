"""The typed records the state stores and returns, and its errors: no storage code here.

`sync.plan`, `sync.pull` and the runner import these without loading a database driver.
Timestamps are tz-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from icp_engine.connectors.id_set import Ids

FILE_NAME = "state.sqlite"
"""The SQLite state file inside a state directory."""
LIMIT_REACHED = "LIMIT_REACHED"
"""The `Failure.code` of a record not written because an API limit stopped the run."""


class StateError(Exception):
    """The state cannot be used: damaged, foreign, unreadable, read-only, full or unreachable.

    str() names where the state is (a path, or a redacted database URL), what is wrong and
    what to do.
    """

    def __init__(self, path: Path | str, problem: str, advice: str | None = None) -> None:
        self.path, self.problem = path, problem
        if advice is None:
            if isinstance(path, Path):
                directory = path.parent if path.name.startswith(FILE_NAME) else path
                where = f"--state {directory}"
            else:
                where = "(same ICP_STATE_URL)"
            advice = (
                f"Restore {path} from a backup, or run `icp state reset {where}` "
                "to start a new state (it says what is lost; the next run rebuilds the rest "
                "from the CRM)"
            )
        super().__init__(f"state {path}: {problem}. {advice}")


class StateVersionError(StateError):
    """The state was written by a newer engine, with a schema this one does not know."""


class Pending(NamedTuple):
    """A change handed over (in an update file) that the CRM does not show yet.

    A tuple, not a dataclass: a run may hold every pending field of 200,000 accounts.
    """

    value: Any
    run_id: int
    since: datetime
    """When the engine first decided this value."""


@dataclass(frozen=True)
class Watermark:
    """Pull records modified at or after `value`, skipping `boundary_ids` (modified at `value`)."""

    value: datetime
    boundary_ids: Ids


@dataclass(frozen=True)
class Written:
    """The value last written to one field of one record, and when (tz-aware UTC)."""

    value: Any
    written_at: datetime


@dataclass(frozen=True)
class Failure:
    """A record whose write failed: the CRM's answer and the field values we tried to write."""

    record_id: str
    code: str | None
    message: str | None
    transient: bool
    values: dict[str, Any]


@dataclass(frozen=True)
class ScoreRecord:
    """A score the CRM now holds for an account, and the criteria version that gave it."""

    account_id: str
    score: float | None
    tier: str | None
    version: str
    """`v0003` for a learned version, `manual` for the hand-written criteria."""
    fingerprint: str
    """The criteria's fingerprint (tells apart edits of the hand-written file)."""


SCORE_RECORD_COLUMNS = ("account_id", "score", "tier", "version", "fingerprint")
"""`ScoreRecord`'s fields, as the columns of a frame of them."""


def score_frame(
    desired: pd.DataFrame, ids: Sequence[str], version: str, criteria_fp: str
) -> pd.DataFrame:
    """The scores and tiers of `ids` in `desired` (a run's outputs, indexed by account id)
    as a frame of `SCORE_RECORD_COLUMNS` (a whole org's: no object per account)."""
    known = desired.index.intersection(pd.Index(list(ids), dtype=object))
    rows = desired.loc[known, ["score", "tier"]]
    return pd.DataFrame(
        {
            "account_id": rows.index.astype(str).to_numpy(dtype=object),
            "score": pd.to_numeric(rows["score"], errors="coerce").to_numpy(
                dtype=float, na_value=np.nan
            ),
            "tier": rows["tier"].to_numpy(dtype=object),
            "version": version,
            "fingerprint": criteria_fp,
        }
    )


@dataclass(frozen=True)
class FailureRecord(Failure):
    """A stored `Failure`: how many runs failed it, first and last (tz-aware UTC)."""

    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime


@dataclass(frozen=True)
class RunRecord:
    """One run; `finished_at` and `outcome` are None if it never finished (it was killed)."""

    id: int
    crm: str
    kind: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    exit_code: int | None
    counts: dict[str, int]
    api_calls: int
    message: str | None


PENDING_COLUMNS = ("record_id", "field", "value", "run_id", "since")
"""The columns of `PendingChanges.frame`."""


class PendingChanges(Mapping[tuple[str, str], Pending]):
    """The pending queue as columns, read as (record id, CRM field) -> `Pending`.

    `frame` holds `PENDING_COLUMNS` (one row per pending field, ids and fields unique
    together); a `Pending` is made only for a key someone looks up.
    """

    def __init__(self, frame: pd.DataFrame | None = None) -> None:
        if frame is None:
            frame = pd.DataFrame({name: [] for name in PENDING_COLUMNS}, dtype=object)
        self.frame = frame
        self._where: dict[tuple[str, str], int] | None = None

    def __len__(self) -> int:
        return len(self.frame)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return zip(self.frame["record_id"].tolist(), self.frame["field"].tolist(), strict=True)

    def __getitem__(self, key: tuple[str, str]) -> Pending:
        if self._where is None:
            self._where = {k: i for i, k in enumerate(self)}
        row = self._where[key]
        value, run_id, since = (self.frame[name].to_numpy()[row] for name in PENDING_COLUMNS[2:])
        return Pending(value, int(run_id), since)
