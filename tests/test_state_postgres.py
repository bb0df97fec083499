"""The state on PostgreSQL through `ICP_STATE_URL`, as a team without a persistent volume
runs it: `icp sync`, `icp status`, `icp runs show`, `icp state reset`; a run killed
mid-way converges when run again; the URL's password never shows.

The store's own tests (and the lock's) run on both backends in test_state.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from icp_engine.connectors.sample import write_sample_crm
from icp_engine.sync.cli.main import main
from icp_engine.sync.state.postgres import STATE_URL_ENV, parse_url

from tests.crmsim import read_rows
from tests.state_helpers import part_rows

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "s3cret-pw-4e1"  # the test server trusts every login: any password connects


@pytest.fixture(scope="module")
def base_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pg-base") / "export"
    write_sample_crm(directory, accounts=200, seed=5)
    return directory


def state_url(postgres_url: str) -> str:
    """A URL with a password and a schema of its own for one test."""
    with_password = postgres_url.replace("://icp@", f"://icp:{PASSWORD}@", 1)
    assert PASSWORD in with_password
    return f"{with_password}&schema=t_{uuid.uuid4().hex[:16]}"


def icp(url: str, *args: str | Path) -> tuple[int, str, str]:
    result = CliRunner(env={STATE_URL_ENV: url}).invoke(
        main, [str(a) for a in args], catch_exceptions=False
    )
    return result.exit_code, result.stdout, result.stderr


def sync_args(export: Path, state: Path) -> list[str | Path]:
    return ["sync", "--crm", "csv", "--source", export, "--state", state]


def tables(url: str, schema: str | None = None) -> set[str]:
    target = parse_url(url)
    with psycopg.connect(target.conninfo) as db:
        rows = db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema or target.schema,),
        )
        return {row[0] for row in rows}


def snapshot(url: str, export: Path) -> dict[str, object]:
    """The latest update file and the state's queue, last-written values and watermarks
    (run ids and timestamps aside)."""
    target = parse_url(url)
    with psycopg.connect(target.conninfo) as db:
        db.execute(f'SET search_path TO "{target.schema}"')

        def rows(sql: str) -> list[tuple[object, ...]]:
            return sorted(db.execute(sql).fetchall())

        state = {
            "pending": sorted(
                rows("SELECT crm, record_id, field, value FROM pending")
                + part_rows(db, "pending", ["record_id", "field", "value"])
            ),
            "last_written": sorted(
                rows("SELECT crm, record_id, field, value FROM last_written")
                + part_rows(db, "last_written", ["record_id", "field", "value"])
            ),
            "mirror": sorted(
                rows("SELECT crm, object, record_id FROM records")
                + [
                    (crm, name.removeprefix("records."), record)
                    for name in ("records.account", "records.opportunity")
                    for crm, record in part_rows(db, name, ["record_id"])
                ]
            ),
            "watermarks": rows("SELECT crm, object FROM watermarks"),
        }
    header, found = read_rows(export / "icp_updates.csv")
    return {**state, "file": (header, sorted(tuple(r.values()) for r in found))}


def test_sync_status_runs_show_and_reset_on_postgres(
    postgres_url: str, base_export: Path, tmp_path: Path
) -> None:
    url = state_url(postgres_url)
    export, state = tmp_path / "export", tmp_path / "state"
    shutil.copytree(base_export, export)

    code, out, err = icp(url, *sync_args(export, state))
    assert code == 0, err
    assert not (state / "state.sqlite").exists()  # the state is in PostgreSQL
    assert {"runs", "watermarks", "last_written", "pending", "run_details"} <= tables(url)

    code, out, err = icp(url, "status", "--state", state, "--json")
    assert code == 0, err
    status = json.loads(out)
    assert [r["outcome"] for r in status["runs"]] == ["ok"]
    assert {w["object"] for w in status["watermarks"]} == {"account", "opportunity"}
    assert status["pending"][0]["records"] == 200

    code, out, err = icp(url, "runs", "show", "1", "--state", state)
    assert code == 0, err
    assert "Run 1: csv sync" in out

    code, out, err = icp(url, "state", "reset", "--state", state, "--yes", "--json")
    assert code == 0, err
    report = json.loads(out)
    schema = parse_url(url).schema
    assert report["set_aside"].startswith(f"{schema}_damaged_")
    assert report["lost"]["runs"] == 1
    assert "runs" in tables(url, report["set_aside"])  # renamed, not dropped
    code, out, err = icp(url, "status", "--state", state, "--json")
    assert json.loads(out)["runs"] == []

    code, out, err = icp(url, *sync_args(export, state))  # the next run starts afresh
    assert code == 0, err
    everything = "".join(
        icp(url, *args)[1] + icp(url, *args)[2]
        for args in (("status", "--state", state), ("state", "reset", "--state", state, "--yes"))
    )
    assert PASSWORD not in everything + out + err
    assert "icp:***@" in everything


def test_an_unreachable_server_is_exit_2_without_the_password(
    base_export: Path, tmp_path: Path
) -> None:
    url = f"postgresql://icp:{PASSWORD}@127.0.0.1:1/icp?connect_timeout=5"
    code, out, err = icp(url, *sync_args(base_export, tmp_path / "state"))
    assert code == 2
    assert "cannot reach the PostgreSQL state" in err
    assert "Traceback" not in err
    assert PASSWORD not in out + err
    assert "icp:***@127.0.0.1:1" in err


def test_a_url_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    code, out, err = icp(f"mysql://icp:{PASSWORD}@db/icp", "status", "--state", tmp_path)
    assert code == 2
    assert "must be a postgresql:// URL" in err
    assert PASSWORD not in out + err


def _run_started(url: str) -> Callable[[], bool]:
    target = parse_url(url)

    def started() -> bool:
        try:
            with psycopg.connect(target.conninfo) as db:
                db.execute(f'SET search_path TO "{target.schema}"')
                row = db.execute("SELECT COUNT(*) FROM runs WHERE finished_at IS NULL")
                return bool(row.fetchone()[0])  # type: ignore[index]
        except psycopg.Error:  # not created yet
            return False

    return started


def kill_at(url: str, happened: Callable[[], bool], export: Path, state: Path) -> int:
    """Run `icp sync` in a process and SIGKILL it as soon as `happened()` is true; its
    exit code."""
    process = subprocess.Popen(
        [sys.executable, "-m", "icp_engine.sync.cli", *map(str, sync_args(export, state))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, STATE_URL_ENV: url},
    )
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if happened():
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
    finally:
        if process.poll() is None:
            process.kill()
    return process.wait(timeout=120)


@pytest.mark.parametrize("event", ["run started", "update file published"])
@pytest.mark.slow
@pytest.mark.e2e
def test_a_run_killed_mid_way_converges_when_run_again(
    postgres_url: str, base_export: Path, tmp_path: Path, event: str
) -> None:
    calm_url, hurt_url = state_url(postgres_url), state_url(postgres_url)
    calm_export, hurt_export = tmp_path / "calm", tmp_path / "hurt"
    shutil.copytree(base_export, calm_export)
    shutil.copytree(base_export, hurt_export)
    assert icp(calm_url, *sync_args(calm_export, tmp_path / "s1"))[0] == 0
    expected = snapshot(calm_url, calm_export)

    published = hurt_export / "icp_updates-run-000001.csv"
    happened = _run_started(hurt_url) if event == "run started" else published.exists
    assert kill_at(hurt_url, happened, hurt_export, tmp_path / "s2") == -signal.SIGKILL
    code, _, err = icp(hurt_url, *sync_args(hurt_export, tmp_path / "s2"))
    assert code == 0, err  # the killed run's lock went with its session
    assert snapshot(hurt_url, hurt_export) == expected
