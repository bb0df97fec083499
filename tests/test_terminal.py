"""What a person or a scheduler sees: JSON log files, quiet runs, the dry-run preview,
the criteria-change table and `mappings diff` saying when there is nothing to show.

Everything runs through the `icp` command (a subprocess where the README's shell form
matters, click's CliRunner elsewhere) on a generated Salesforce-layout export.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import icp_engine.mappings as bundled
import pytest
import yaml
from icp_engine.connectors.sample import write_sample_crm
from icp_engine.sync import numbers
from icp_engine.sync.criteria_changes import compare

from tests.cli_helpers import icp
from tests.crmsim import Clock, edit_rows, load_updates, read_rows

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def base_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("terminal") / "export"
    write_sample_crm(directory, accounts=400)
    return directory


@pytest.fixture
def export(base_export: Path, tmp_path: Path) -> Path:
    target = tmp_path / "export"
    shutil.copytree(base_export, target)
    return target


def shell(command: str, cwd: Path) -> int:
    """Run `command` as cron would: through /bin/sh, the package's `icp` on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(command, shell=True, cwd=cwd, env=env, check=False).returncode


def json_lines(path: Path) -> list[dict]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines, f"{path} is empty"
    return [json.loads(line) for line in lines]  # every line must parse


def readme_cron_command(export: Path, state: Path, log: Path) -> str:
    """The cron line of the README's Scheduling section, pointed at this test's files."""
    readme = Path(__file__).resolve().parent.parent / "README.md"
    (line,) = [x for x in readme.read_text().splitlines() if x.startswith("*/15 * * * *")]
    command = line.split(".venv/bin/", 1)[1]
    assert "--log-format json >> /var/log/icp.log 2>&1" in command
    command = command.replace("/data/export", str(export)).replace("/var/log/icp.log", str(log))
    return command.replace("icp sync", f"icp sync --state {state}", 1)


def test_readme_cron_line_gives_a_file_of_json_lines(export: Path, tmp_path: Path) -> None:
    log = tmp_path / "icp.log"
    command = readme_cron_command(export, tmp_path / "state", log)
    assert shell(command, tmp_path) == 0
    assert shell(command, tmp_path) == 0  # the second run: nothing to write
    (export / "Account.csv").write_text(
        (export / "Account.csv").read_text() + "another,broken,row\n"
    )
    assert shell(command.replace("sync", "sync -v", 1), tmp_path) == 0
    entries = json_lines(log)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    summaries = [e for e in entries if e.get("event") == "summary"]
    assert len(summaries) == 3  # one per run, as a JSON line, not plain text
    assert summaries[0]["summary"]["counts"]["written"] == 400
    assert summaries[1]["summary"]["counts"]["records_to_write"] == 0
    progress = [e for e in entries if e.get("event") == "progress"]
    stages = {e["stage"] for e in progress}
    assert {"Reading accounts", "Writing changes"} <= stages
    done = [e for e in progress if e["status"] == "done"]
    assert all(isinstance(e["seconds"], float) for e in done)
    assert any(e["level"] == "warning" and "line" in e["message"] for e in entries)
    # -v: the engine's debug lines (the rows at the watermark were read last time, and the
    # broken row is unreadable, so no page of changes comes back)
    assert any(
        e["level"] == "debug" and "no row changed since the last run" in e["message"]
        for e in entries
    )


def test_errors_are_json_lines_too(export: Path, tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "csv.yaml").write_text("crm: csv\nobjects: [\n")
    log = tmp_path / "icp.log"
    command = (
        f"icp sync --crm csv --source {export} --mappings {maps} --state {tmp_path / 's'} "
        f"--log-format json >> {log} 2>&1"
    )
    assert shell(command, tmp_path) == 2
    entries = json_lines(log)
    assert entries[-1]["level"] == "error" and "nothing was written" in entries[-1]["message"]
    assert any("csv.yaml" in e["message"] for e in entries)


def test_quiet_prints_no_progress_and_no_story(export: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    code, _, loud = icp("sync", "--crm", "csv", "--source", export, "--state", state,
                        "--log-format", "json")  # fmt: skip
    assert code == 0 and '"event": "progress"' in loud
    code, out, err = icp("sync", "--crm", "csv", "--source", export, "--state", state,
                         "--log-format", "json", "-q")  # fmt: skip
    assert code == 0
    assert err == "" and out == ""  # no progress, no summary line at info, nothing else
    code, out, err = icp("sync", "--crm", "csv", "--source", export, "--state", state, "-q")
    assert code == 0 and err == ""
    assert "nothing new to write" in out  # the result still goes to stdout


def _load_and_edit(export: Path, state: Path) -> None:
    """Write, load the update file into the 'CRM', then change accounts and a rep's route."""
    assert icp("sync", "--crm", "csv", "--source", export, "--state", state, "--json")[0] == 0
    clock = Clock()
    load_updates(export, clock)
    rows = read_rows(export / "Account.csv")[1]
    rep_edited = rows[5]["Id"]

    def edit(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        for i, row in enumerate(rows):
            if i % 7 == 0:  # revenue gone: anti-pattern, tiers drop
                row["AnnualRevenue"] = "0"
            if i % 11 == 0:  # grew into the sweet spot
                row.update(NumberOfEmployees="120", Industry="Technology/SaaS")
            if row["Id"] == rep_edited:
                row.update(ICP_Route__c="Jane Doe - key account", NumberOfEmployees="75")
        return rows

    edit_rows(export / "Account.csv", clock, edit)


def test_dry_run_preview_counts_and_tier_matrix_match_the_plan(
    export: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    _load_and_edit(export, state)
    before = {r["Id"]: r for r in read_rows(export / "Account.csv")[1]}
    code, out, _ = icp("sync", "--crm", "csv", "--source", export, "--state", state,
                       "--dry-run", "--json")  # fmt: skip
    assert code == 0
    preview = json.loads(out)["preview"]

    code, text, _ = icp("sync", "--crm", "csv", "--source", export, "--state", state,
                        "--dry-run", "--limit", "5")  # fmt: skip
    assert code == 0
    for heading in ("Per field", "Tier movement (ICP_Tier__c)", "left alone (1)", "Cost:"):
        assert heading in text
    assert "page 1 of" in text and "--page 2 for the next" in text
    assert text.index("Per field") < text.index("Tier movement") < text.index("Detail")

    # What the real run writes is what the preview counted, field by field.
    assert icp("sync", "--crm", "csv", "--source", export, "--state", state)[0] == 0
    updates = read_rows(export / "icp_updates.csv")[1]
    written = Counter(f for row in updates for f, v in row.items() if f != "Id" and v != "")
    for field, figures in preview["fields"].items():
        assert figures["to_write"] == written[field], field
    # and no field is written that the preview did not count
    assert set(written) <= set(preview["fields"]), set(written) - set(preview["fields"])
    assert preview["fields"]["ICP_Route__c"]["left_alone"] == 1
    assert sum(written.values()) > 0

    # The tier matrix: every account once; off the diagonal exactly the tier writes.
    moves = {(m["from"], m["to"]): m["accounts"] for m in preview["tier_moves"]}
    assert sum(moves.values()) == 400
    new_tier = {r["Id"]: r["ICP_Tier__c"] for r in updates if r["ICP_Tier__c"]}
    expected = Counter((before[i]["ICP_Tier__c"], tier) for i, tier in new_tier.items())
    off_diagonal = {pair: n for pair, n in moves.items() if pair[0] != pair[1]}
    assert off_diagonal == dict(expected)
    assert off_diagonal  # the edits moved some accounts between tiers


def test_csv_run_reports_no_api_calls(export: Path, tmp_path: Path) -> None:
    code, out, _ = icp("sync", "--crm", "csv", "--source", export, "--state", tmp_path / "s")
    assert code == 0
    assert "API calls used" not in out and "no API calls" in out
    assert "400 accounts" in out and "2,000 fields" in out  # one number style


def test_mappings_diff_with_nothing_to_diff_says_so(tmp_path: Path) -> None:
    state = tmp_path / "state"
    code, out, _ = icp("mappings", "diff", "--state", state)
    assert code == 0 and "No differences to show" in out
    copies = tmp_path / "mappings"
    assert icp("mappings", "init", copies)[0] == 0
    code, out, _ = icp("mappings", "diff", "--mappings", copies, "--state", state)
    assert code == 0
    assert "bundled/icp.yaml vs" in out and "no differences" in out
    assert "No differences to show" in out


def test_mappings_diff_shows_criteria_changes_as_a_table(tmp_path: Path) -> None:
    copies = tmp_path / "mappings"
    assert icp("mappings", "init", copies)[0] == 0
    document = yaml.safe_load(bundled.default("icp.yaml").read_text())
    removed = document["criteria"]["must_have"].pop(0)["name"]
    document["criteria"]["bonus"].append({"name": "Has a CFO", "field": "industry",
                                          "eq": "Banking", "weight": 10})  # fmt: skip
    (copies / "icp.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    code, out, _ = icp("mappings", "diff", "--mappings", copies, "--state", tmp_path / "s")
    assert code == 0
    assert "added" in out and "Has a CFO" in out and "removed" in out and removed in out
    assert "re-weighted" in out  # the others' share of the score moved
    assert "+++ " not in out and "--yaml-diff" in out
    code, out, _ = icp("mappings", "diff", "--mappings", copies, "--state", tmp_path / "s",
                       "--yaml-diff")  # fmt: skip
    assert "+++ " in out and "Has a CFO" in out


def test_criteria_changes_read_win_rates_and_weights_as_points() -> None:
    before = {
        "criteria": {"must_have": [
            {"name": "employees 50-499", "field": "employees", "between": [50, 499],
             "weight": 0.5, "description": "won 65% of 339 vs 48% overall"},
            {"name": "industry SaaS", "field": "industry", "eq": "SaaS", "weight": 0.5},
        ]},
        "tiers": {"A": 70, "B": 40, "C": 0},
    }  # fmt: skip
    after = {
        "criteria": {"must_have": [
            {"name": "employees 50-499", "field": "employees", "between": [50, 499],
             "weight": 0.75, "description": "won 66% of 1,204 vs 48% overall"},
            {"name": "growth", "field": "employee_growth", "gte": 0.3, "weight": 0.25},
        ]},
        "tiers": {"A": 66, "B": 40, "C": 0},
    }  # fmt: skip
    rows = {(r.change, r.name): r for r in compare(before, after)}
    assert set(rows) == {
        ("added", "growth"),
        ("removed", "industry SaaS"),
        ("re-weighted", "employees 50-499"),
        ("moved", "A"),
    }
    reweighted = rows[("re-weighted", "employees 50-499")]
    assert (reweighted.before, reweighted.after) == ("50 pts", "75 pts")
    assert (reweighted.win_rate, reweighted.accounts) == ("66%", "1,204")
    assert rows[("removed", "industry SaaS")].win_rate == numbers.NO_DATA
    assert compare(after, after) == []


def test_intervals_without_width_or_data_say_no_data() -> None:
    assert numbers.interval(0.5, 0.5) == "no data"
    assert numbers.interval(None, 0.7) == "no data"
    assert numbers.interval(0.57, 0.73) == "0.57-0.73"
    assert numbers.count(100000) == "100,000"
    assert numbers.count(1, "account") == "1 account"
    assert numbers.points(-29.6, signed=True) == "\u221229.6 pts"


def test_a_step_without_units_says_how_long_is_left_from_last_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from icp_engine.sync.logs import configure
    from icp_engine.sync.progress import progress_for, timed_stage

    class Memory(dict):
        def get_meta(self, key: str) -> str | None:
            return self.get(key)

        def set_meta(self, key: str, value: str) -> None:
            self[key] = value

    memory = Memory()
    configure("json")
    with progress_for(sys.stderr), timed_stage(memory, "csv.learn", 100, "Learning") as first:
        assert first.expected is None  # nothing to go by the first time
    pace = float(memory["pace.csv.learn"])
    with progress_for(sys.stderr), timed_stage(memory, "csv.learn", 300, "Learning") as second:
        assert second.expected == pytest.approx(pace * 300)
        assert "seconds_left" in second.figures()
    events = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert [e["status"] for e in events] == ["started", "done", "started", "done"]


def test_salesforce_preview_costs_calls_and_time_and_v_shows_pages_and_batches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.fakes.salesforce import FakeSalesforce
    from tests.sfdata import seed_org, use_org

    with FakeSalesforce() as org:
        seed_org(org, 300)
        use_org(monkeypatch, org)
        state = tmp_path / "state"
        code, out, err = icp("sync", "--crm", "salesforce", "--state", state, "--dry-run", "-v")
        assert code == 0
        assert "Cost: about 5 API calls (3 to read, 2 to write via sObject Collections)" in out
        assert "at a typical 0.5 s a call" in out
        assert "Filled for the first time" in out  # an empty org: segments are first fills
        assert "accounts page 1: 300 rows" in err and "1 API call" in err
        code, _, err = icp("sync", "--crm", "salesforce", "--state", state, "-v",
                           "--log-format", "json")  # fmt: skip
        assert code == 0
        entries = [json.loads(line) for line in err.splitlines()]
        batches = [e["message"] for e in entries if e["message"].startswith("batch ")]
        assert batches == [
            "batch 1: 200 records, 200 written, 0 failed, 0 deleted in the CRM; 1 API call; "
            + batches[0].rsplit("; ", 1)[1],
            "batch 2: 100 records, 100 written, 0 failed, 0 deleted in the CRM; 1 API call; "
            + batches[1].rsplit("; ", 1)[1],
        ]
        [summary] = [e for e in entries if e.get("event") == "summary"]
        assert summary["summary"]["api_calls"] == summary["summary"]["estimated_calls"]["pull"] + 2
        code, out, _ = icp("sync", "--crm", "salesforce", "--state", state, "--dry-run")
        assert "the pace of the last 1 run here" in out  # measured now


def test_a_criterion_renamed_with_the_same_rule_is_one_row() -> None:
    rule = {"field": "employees", "between": [50, 499]}
    before = {"criteria": {"must_have": [{"name": "employees 50-499", **rule, "weight": 1}]}}
    after = {"criteria": {"must_have": [{"name": "Employees 50-499", **rule, "weight": 1}]}}
    [row] = compare(before, after)
    assert (row.change, row.name) == ("renamed", "Employees 50-499 (was employees 50-499)")
