"""`icp state reset`: set a damaged state aside, start a new one, say what is lost.

The old file (with its `-wal`/`-shm` companions) is renamed, never deleted, so it can
still be examined or restored. On PostgreSQL (`ICP_STATE_URL`) "set aside" means the
same: the state's schema is renamed with everything in it (`icp_state` ->
`icp_state_damaged_20261207t051500z`) and a new schema of the old name is created; drop
the old one (`DROP SCHEMA ... CASCADE`) once it is no longer needed.

What it held is counted when it can still be read. The new state is empty: the next
`sync` or `backfill` pulls everything from the CRM again (mirror, watermarks), so what
cannot come back is what only the engine knew: the values it last wrote (which
`if_unchanged` needs to tell a person's edit from its own), changes handed over and not
yet seen in the CRM, failed records and the run history.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import psycopg
from icp_engine.sync.state.lock import DirectoryLock
from icp_engine.sync.state.postgres import (
    LOCK_TABLE,
    AdvisoryLock,
    PgConnection,
    PgTarget,
    pg_error,
)
from icp_engine.sync.state.records import StateError
from icp_engine.sync.state.store import StateStore, _pg_target

_COMPANIONS = ("", "-wal", "-shm", "-journal")


def _counts(path: Path) -> dict[str, int] | str:
    """Rows per table of the old file, or why they cannot be read."""
    try:
        with StateStore(path.parent, create=False) as old:
            return old.counts()
    except StateError as exc:
        problem = exc.problem
    try:  # damaged but perhaps partly readable: count what SQLite still gives
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            found: dict[str, int] = {}
            for table in ("last_written", "pending", "failures", "runs"):
                try:
                    found[table] = int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                except sqlite3.Error:
                    continue
            if found:
                return found
        finally:
            db.close()
    except sqlite3.Error:
        pass
    return problem


def reset_state(directory: Path, yes: bool, url: str | None = None) -> dict[str, Any]:
    """Move the state aside and create a new one; return what was lost.

    The state is `directory`'s file, or the PostgreSQL schema of `url` (default
    `ICP_STATE_URL`)."""
    target = _pg_target(url)
    if target is not None:
        return _reset_postgres(directory, target, yes)
    path = directory / StateStore.FILE_NAME
    if directory.exists() and not directory.is_dir():
        raise StateError(directory, "is a file, not a state directory", "Give --state a directory")
    lock = DirectoryLock(directory, StateStore.LOCK_NAME)
    if directory.exists():
        lock.acquire()  # no run may be using it meanwhile
    try:
        lines: list[str] = []
        lost: dict[str, int] | str = {}
        kept_as: str | None = None
        if path.exists() or path.is_symlink():
            lost = _counts(path) if not path.is_dir() else "it is a directory"
            if not yes:
                click.confirm(
                    f"Set {path} aside and start a new state? What it holds is lost", abort=True
                )
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = directory / _untaken(
                f"{StateStore.FILE_NAME}.damaged-{stamp}",
                lambda name: any(
                    Path(f"{directory / name}{suffix}").exists()
                    or Path(f"{directory / name}{suffix}").is_symlink()
                    for suffix in _COMPANIONS
                ),
            )
            for suffix in _COMPANIONS:
                old = Path(f"{path}{suffix}")
                if old.exists() or old.is_symlink():
                    os.replace(old, f"{aside}{suffix}")
            kept_as = str(aside)
            lines.append(f"Set aside: {path} -> {aside}")
        else:
            lines.append(f"No state file in {directory}: starting one.")
        with StateStore(directory):
            pass
        lines.append(f"New state: {path}")
        lines += _lost_lines(lost)
        return {"state": str(path), "set_aside": kept_as, "lost": lost, "lines": lines}
    finally:
        lock.release()


def _reset_postgres(directory: Path, target: PgTarget, yes: bool) -> dict[str, Any]:
    """Rename the state's schema aside (kept, never dropped) and create a new one."""
    db = PgConnection(target)  # holds the advisory lock: no run may use the state meanwhile
    lock = AdvisoryLock(db)
    try:
        db.execute(LOCK_TABLE)
        lock.acquire()
        where = f"{target.shown} (schema {target.schema})"
        lines: list[str] = []
        lost: dict[str, int] | str = {}
        kept_as: str | None = None
        if db.tables() - {"lock_holder"}:
            try:
                with StateStore(directory, create=False, url=target.url) as old:
                    lost = old.counts()
            except StateError as exc:
                lost = exc.problem
            if not yes:
                click.confirm(
                    f"Set the state in {where} aside and start a new one? What it holds is lost",
                    abort=True,
                )
            stamp = datetime.now(UTC).strftime("%Y%m%dt%H%M%Sz")
            kept_as = _untaken(
                f"{target.schema}_damaged_{stamp}"[:60],
                lambda name: (
                    db.execute("SELECT 1 FROM pg_namespace WHERE nspname = ?", (name,)).fetchone()
                    is not None
                ),
            )
            lock.release()  # its holder row moves with the schema; the new one is taken below
            db.execute(f'ALTER SCHEMA "{target.schema}" RENAME TO "{kept_as}"')
            db.execute(f'CREATE SCHEMA "{target.schema}"')
            db.execute(LOCK_TABLE)
            lock.acquire()
            lines.append(f"Set aside: schema {target.schema} -> {kept_as} in {target.shown}")
        else:
            lines.append(f"No state in {where}: starting one.")
        with StateStore(directory, url=target.url):
            pass
        lines.append(f"New state: {where}")
        lines += _lost_lines(lost)
        return {"state": target.shown, "set_aside": kept_as, "lost": lost, "lines": lines}
    except psycopg.Error as exc:
        raise pg_error(target, exc) from None
    finally:
        lock.release()
        db.close()


def _untaken(name: str, taken: Callable[[str], bool]) -> str:
    """`name`, or `name-2`, `name-3`... (`_2` for a schema) if it is taken: two resets
    within one second must not set the first one's state aside onto the second's."""
    separator = "_" if "-" not in name else "-"
    candidate, number = name, 1
    while taken(candidate):
        number += 1
        candidate = f"{name}{separator}{number}"
    return candidate


def _lost_lines(lost: dict[str, int] | str) -> list[str]:
    """What the reset loses, for people, and what to run next."""
    lines: list[str] = []
    if isinstance(lost, str):
        lines.append(
            f"The old state could not be read ({lost}): everything in it is lost: the "
            "values the engine last wrote, handed-over changes, failed records, run history."
        )
    elif lost:
        lines += [
            "Lost with it:",
            f"  {lost.get('last_written', 0):,} last-written values: fields with policy "
            "if_unchanged now count the CRM's value as a person's and leave it until the "
            "engine writes them again (overwrite fields are unaffected)",
            f"  {lost.get('pending', 0):,} changes handed over and not yet seen in the CRM "
            "(the last update file still holds them; the next run decides them afresh)",
            f"  {lost.get('failures', 0):,} failed records (the next run retries whatever "
            "still differs)",
            f"  {lost.get('runs', 0):,} runs of history",
        ]
    lines.append(
        "Next: `icp backfill` (same --crm, --source, --state) pulls everything from the CRM "
        "again and rebuilds the rest: mirror and watermarks."
    )
    return lines
