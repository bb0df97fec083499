"""End to end through the `icp` command, on a generated Salesforce export."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import icp_engine.mappings as bundled
import pytest
import yaml
from click.testing import CliRunner
from icp_engine.connectors.sample import write_sample_crm
from icp_engine.sync.cli.main import main

from tests.crmsim import Clock, edit_rows, load_updates, read_rows
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def base_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("base") / "export"
    write_sample_crm(directory, accounts=300)
    return directory


@pytest.fixture
def export(base_export: Path, tmp_path: Path) -> Path:
    target = tmp_path / "export"
    shutil.copytree(base_export, target)
    return target


def icp(*args: str | Path, state: Path | None = None) -> tuple[int, str, str]:
    runner = CliRunner()
    argv = [str(a) for a in args]
    if state is not None:
        argv += ["--state", str(state)]
    result = runner.invoke(main, argv, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def sync(export: Path, state: Path, *extra: str) -> tuple[int, str, str]:
    return icp("sync", "--crm", "csv", "--source", export, *extra, state=state)


def summary(export: Path, state: Path, *extra: str) -> dict:
    code, out, err = sync(export, state, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def update_rows(export: Path) -> list[dict[str, str]]:
    return read_rows(export / "icp_updates.csv")[1]


def test_demo_runs_the_whole_loop_offline(tmp_path: Path) -> None:
    code, out, _ = icp("demo", "--dir", tmp_path / "demo", "--accounts", "500")
    assert code == 0
    assert "Accounts by ICP tier" in out
    assert "win rate" in out
    updates = tmp_path / "demo" / "export" / "icp_updates.csv"
    assert str(updates) in out.replace("\n", "")
    assert len(read_rows(updates)[1]) == 500  # first run: every account gets its values


def test_demo_json_has_per_tier_outcomes(tmp_path: Path) -> None:
    code, out, _ = icp("demo", "--dir", tmp_path / "demo", "--accounts", "800", "--json")
    assert code == 0
    tiers = {t["tier"]: t for t in json.loads(out)["tiers"]}
    assert set(tiers) == {"A", "B", "C", "D"}
    assert sum(t["accounts"] for t in tiers.values()) == 800
    # The default ICP comes from the same seeds as the sample's outcomes: A must beat D.
    assert tiers["A"]["win_rate"] > tiers["D"]["win_rate"]


def test_an_unloaded_update_file_is_handed_over_again_in_full(export: Path, tmp_path: Path) -> None:
    # Changed deliberately (issue 10): the second run used to write a header-only file and
    # count the 300 unloaded rows as written. Now they stay pending until an export shows them.
    first = summary(export, tmp_path / "state")
    assert first["counts"]["written"] == 300
    rows = update_rows(export)
    assert len(rows) == 300
    second = summary(export, tmp_path / "state")
    assert second["counts"]["written"] == 0  # nothing new decided
    assert second["counts"]["pending"] == 300
    assert update_rows(export) == rows  # the latest file alone is enough
    kept = sorted(p.name for p in export.glob("icp_updates-run-*.csv"))
    assert kept == ["icp_updates-run-000001.csv", "icp_updates-run-000002.csv"]
    assert read_rows(export / kept[0])[1] == rows
    status = json.loads(icp("status", "--json", state=tmp_path / "state")[1])
    assert [(p["run_id"], p["records"], p["fields"]) for p in status["pending"]] == [(1, 300, 1500)]

    load_updates(export, Clock())  # now the admin loads it: the next export shows it all
    third = summary(export, tmp_path / "state")
    assert (third["counts"]["confirmed"], third["counts"]["pending"]) == (300, 0)
    assert update_rows(export) == []
    assert read_rows(export / "icp_updates.csv")[0][0] == "Id"  # header still written
    assert json.loads(icp("status", "--json", state=tmp_path / "state")[1])["pending"] == []


def test_second_sync_after_loading_the_updates_writes_nothing(export: Path, tmp_path: Path) -> None:
    summary(export, tmp_path / "state")
    load_updates(export, Clock())  # the admin loads the file: SystemModstamp moves
    again = summary(export, tmp_path / "state")
    assert again["counts"]["accounts_pulled"] == 300  # our own writes look like changes
    assert again["counts"]["written"] == 0


def test_edited_account_is_rescored_and_only_its_row_written(export: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    summary(export, state)
    clock = Clock()
    load_updates(export, clock)
    summary(export, state)
    _, accounts = read_rows(export / "Account.csv")
    target = next(r for r in accounts if r["ICP_Tier__c"] in ("C", "D"))

    def upgrade(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        for row in rows:
            if row["Id"] == target["Id"]:
                row.update(
                    Industry="Software",
                    NumberOfEmployees="120",
                    AnnualRevenue="9000000",
                    Technologies__c="Salesforce;Outreach;Gong",
                    BillingCountry="USA",
                )
        return rows

    edit_rows(export / "Account.csv", clock, upgrade)
    result = summary(export, state)
    assert result["counts"]["accounts_pulled"] == 1
    rows = update_rows(export)
    assert [r["Id"] for r in rows] == [target["Id"]]
    assert float(rows[0]["ICP_Score__c"]) > float(target["ICP_Score__c"])
    assert "Employees 50-500" in rows[0]["ICP_Reasons__c"]


def test_dry_run_prints_the_diff_and_writes_nothing(export: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    summary(export, state)
    clock = Clock()
    load_updates(export, clock)
    summary(export, state)
    before = (export / "icp_updates.csv").read_bytes()
    edit_rows(
        export / "Account.csv",
        clock,
        lambda rows: [{**r, "AnnualRevenue": "0"} if i == 0 else r for i, r in enumerate(rows)],
    )
    first_id = read_rows(export / "Account.csv")[1][0]["Id"]
    code, out, _ = sync(export, state, "--dry-run")
    assert code == 0
    # Changed by issue 18: the preview opens with a summary, the detail follows.
    assert "Per field" in out and "Detail" in out and first_id in out
    assert "ICP_Score__c" in out and "Cost:" in out
    assert (export / "icp_updates.csv").read_bytes() == before
    # Nothing moved: the real run still sees the change.
    assert summary(export, state)["counts"]["written"] == 1


def test_person_edit_is_left_alone_under_if_unchanged(export: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    summary(export, state)
    clock = Clock()
    load_updates(export, clock)
    summary(export, state)
    victim = read_rows(export / "Account.csv")[1][5]["Id"]

    def person(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        for row in rows:
            if row["Id"] == victim:  # a rep routes it by hand, and the account also changes
                row.update(
                    ICP_Route__c="Jane Doe - key account",
                    NumberOfEmployees="75",
                    Industry="Banking",
                    AnnualRevenue="20000000",
                )
        return rows

    edit_rows(export / "Account.csv", clock, person)
    _code, out, _ = sync(export, state, "--dry-run", "--all")
    # Changed by issue 18: the preview lists edits left alone in a table of their own.
    assert "Edits made in the CRM left alone (1)" in out
    assert "Jane Doe - key account" in out and "edited since the engine wrote it" in out
    result = summary(export, state)
    assert result["counts"]["fields_skipped"] == 1
    rows = {r["Id"]: r for r in update_rows(export)}
    assert rows[victim]["ICP_Route__c"] == ""  # blank: Data Loader leaves the rep's value
    assert rows[victim]["ICP_Score__c"] != ""


def test_corrupted_mapping_exits_2_naming_file_and_line(export: Path, tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    icp("mappings", "init", maps)
    text = (maps / "icp.yaml").read_text().replace("weight: 0.25", "wieght: 0.25")
    (maps / "icp.yaml").write_text(text)
    line = text.splitlines().index("      wieght: 0.25") + 1
    code, _, err = sync(export, tmp_path / "state", "--mappings", str(maps))
    assert code == 2
    assert f"icp.yaml:{line}" in err and "wieght" in err and "'weight'" in err
    assert "Traceback" not in err
    assert not (export / "icp_updates.csv").exists()
    code, _, err = icp("mappings", "validate", "--mappings", maps)
    assert code == 2 and f"icp.yaml:{line}" in err


def test_mappings_init_then_validate_is_clean(tmp_path: Path) -> None:
    code, out, _ = icp("mappings", "init", tmp_path / "m")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(bundled.FILES)
    code, out, _ = icp("mappings", "validate", "--mappings", tmp_path / "m")
    assert code == 0 and "0 errors" in out


def test_status_shows_runs_watermarks_and_failures(export: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    summary(export, state)
    sync(export, state, "--dry-run")
    code, out, _ = icp("status", state=state)
    assert code == 0
    assert "Recent runs" in out and "dry run" in out and "Watermarks" in out
    assert "Records still failing: none." in out  # issue 18: says so, no empty table
    status = json.loads(icp("status", "--json", state=state)[1])
    assert [r["kind"] for r in status["runs"]] == ["sync", "sync"]
    assert {w["object"] for w in status["watermarks"]} == {"account", "opportunity"}


def test_unreadable_rows_are_reported_with_line_numbers(export: Path, tmp_path: Path) -> None:
    path = export / "Account.csv"
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(3, "broken,row\n")
    path.write_text("".join(lines))
    code, out, err = sync(export, tmp_path / "state", "--json")
    assert code == 0
    assert json.loads(out)["counts"]["unreadable_rows"] == 1
    assert "line 4" in err and "has 2 fields" in err


def test_json_logs_for_schedulers(export: Path, tmp_path: Path) -> None:
    (export / "Account.csv").write_text(
        (export / "Account.csv").read_text() + "another,broken,row\n"
    )
    code, _, err = sync(export, tmp_path / "state", "--log-format", "json", "--json")
    assert code == 0
    entries = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert entries and all({"time", "level", "message"} <= set(e) for e in entries)


def _cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "icp_engine.sync.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.e2e
def test_second_run_on_a_locked_state_exits_4(export: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from icp_engine.sync.state import StateStore; "
            "s = StateStore(sys.argv[1]); s.acquire_lock(); "
            "print('locked', flush=True); time.sleep(30)",
            str(state),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        code, _, err = sync(export, state)
        assert code == 4
        assert "locked" in err and str(holder.pid) in err
        assert not (export / "icp_updates.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    assert sync(export, state)[0] == 0


@pytest.mark.slow
@pytest.mark.e2e
def test_killed_once_its_update_file_landed_converges_on_rerun(tmp_path: Path) -> None:
    # Changed deliberately (issue 10): there is no `.partial` file any more; the update
    # file lands whole, then the state commits. Killed between the two, the rerun must
    # write the same full file (it used to write a header-only one).
    export = tmp_path / "export"
    write_sample_crm(export, accounts=3000)
    state = tmp_path / "state"
    landed = export / "icp_updates-run-000001.csv"
    process = _cli("sync", "--crm", "csv", "--source", export, "--state", state)
    wait_until(landed.exists, "the run's update file landed", alive=lambda: process.poll() is None)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert landed.exists() and len(read_rows(landed)[1]) == 3000  # whole, never half

    rerun = _cli("sync", "--crm", "csv", "--source", export, "--state", state)
    assert rerun.wait() == 0
    rows = update_rows(export)
    assert len({r["Id"] for r in rows}) == len(rows) == 3000  # nothing lost, nothing twice

    fresh = tmp_path / "fresh"
    shutil.copytree(export, fresh, ignore=shutil.ignore_patterns("icp_updates*"))
    summary(fresh, tmp_path / "fresh-state")
    expected = {r["Id"]: r for r in update_rows(fresh)}
    assert {r["Id"]: r for r in rows} == expected


def test_expansion_output_is_written_for_customers_only(export: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mappings"
    assert icp("mappings", "init", folder)[0] == 0
    crm = yaml.safe_load((folder / "csv.yaml").read_text())
    crm["outputs"]["expansion"] = {"field": "ICP_Expansion__c", "type": "number"}
    (folder / "csv.yaml").write_text(yaml.safe_dump(crm, sort_keys=False))
    criteria = yaml.safe_load((folder / "icp.yaml").read_text())
    criteria["expansion"] = [
        {"name": "Salesforce", "field": "technologies", "contains": ["Salesforce"], "weight": 1}
    ]
    (folder / "icp.yaml").write_text(yaml.safe_dump(criteria, sort_keys=False))
    code, _, err = sync(export, tmp_path / "state", "--mappings", str(folder))
    assert code == 0, err

    _, opportunities = read_rows(export / "Opportunity.csv")
    customers = {o["AccountId"] for o in opportunities if o["IsWon"].lower() == "true"}
    written = {r["Id"]: r["ICP_Expansion__c"] for r in update_rows(export)}
    scored = {i for i, v in written.items() if v}
    assert scored and scored == customers & set(written)
    assert {written[i] for i in scored} <= {"0", "100"}
