"""A person and Data Loader acting on a CSV export, for end-to-end tests.

`load_updates` does what an admin does with `icp_updates.csv`: loads it into the org
(blank cells untouched, `#N/A` clears), which bumps SystemModstamp like any write.
Edits go through `edit_rows`, stamping the rows they touch.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path


def stamp(moment: datetime) -> str:
    """Salesforce's export layout for datetimes, to the millisecond."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Clock:
    """The CRM's clock: it runs with the real one, and never gives the same stamp twice.

    Like a real org's clock, an edit made after the engine's write carries a later stamp
    than that write.
    """

    def __init__(self) -> None:
        self.now = datetime.now(UTC) - timedelta(seconds=1)

    def tick(self) -> str:
        self.now = max(self.now + timedelta(milliseconds=1), datetime.now(UTC))
        return stamp(self.now)


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def write_rows(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def edit_rows(
    path: Path, clock: Clock, change: Callable[[list[dict[str, str]]], list[dict[str, str]]]
) -> None:
    """Apply `change` to the rows of a CSV; rows it modified or added get a new stamp."""
    header, rows = read_rows(path)
    before = {r["Id"]: dict(r) for r in rows}
    after = change([dict(r) for r in rows])
    moment = clock.tick()  # one save: every row it touches gets the same stamp
    for row in after:
        if before.get(row["Id"]) != row:
            row["SystemModstamp"] = moment
    write_rows(path, header, after)


def load_updates(export: Path, clock: Clock, updates: Path | None = None) -> int:
    """Load the update file into Account.csv as Data Loader would; return rows loaded."""
    updates = updates or export / "icp_updates.csv"
    _, changes = read_rows(updates)
    by_id = {row["Id"]: row for row in changes}

    def apply(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        for row in rows:
            for name, value in by_id.get(row["Id"], {}).items():
                if name != "Id" and value != "":
                    row[name] = "" if value == "#N/A" else value
        return rows

    edit_rows(export / "Account.csv", clock, apply)
    return len(changes)
