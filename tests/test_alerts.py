"""Alerts end to end: `icp` against the fake HubSpot portal (or a CSV export), delivering
to a real HTTP receiver on loopback. Each condition alerts exactly once until it clears,
however often the schedule reruns; a failed delivery is recorded and never fails a run."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from icp_engine.connectors.sample import write_sample_crm
from icp_engine.sync import alerts as alerts_module
from icp_engine.sync.cli.main import main
from icp_engine.sync.state.store import StateStore

from tests.fakes.hubspot import FakeHubSpot
from tests.hsdata import seed_portal
from tests.test_hubspot_e2e import fast_mappings
from tests.webhook_receiver import WebhookReceiver

HOOK = "ICP_TEST_ALERT_WEBHOOK"
JSON_HOOK = "ICP_TEST_ALERT_JSON"


def icp(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(alerts_module, "pause", waits.append)
    return waits


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hook:
        monkeypatch.setenv(HOOK, hook.url())
        monkeypatch.setenv(JSON_HOOK, hook.url("/generic/secret-json-path"))
        yield hook


pytestmark = [pytest.mark.e2e, pytest.mark.portal(companies=120, deals_per_company=2.0)]


def mappings(folder: Path, alerts: dict[str, Any] | None = None, **settings: Any) -> Path:
    fast_mappings(folder, **settings)
    config = {"webhooks": [{"name": "revops", "url_env": HOOK}], "failing_runs": 3}
    config.update(alerts or {})
    (folder / "operate.yaml").write_text(yaml.safe_dump({"alerts": config}), encoding="utf-8")
    return folder


def run(folder: Path, state: Path, *extra: str) -> dict[str, Any]:
    code, out, err = icp(
        "sync", "--crm", "hubspot", "--mappings", folder, "--state", state, "--json", *extra
    )
    summary = json.loads(out)
    assert summary["exit_code"] == code, err
    return summary


def titles(hook: WebhookReceiver) -> list[str]:
    return [b["blocks"][0]["text"]["text"] for b in hook.delivered()]


def test_records_failing_3_runs_in_a_row_alert_once_with_the_crms_messages(
    portal: FakeHubSpot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    folder, state = mappings(tmp_path / "m"), tmp_path / "state"
    bad = sorted(portal.objects("companies"))[:2]
    portal.poison(bad)
    for _ in range(2):
        assert run(folder, state)["exit_code"] == 1
    assert receiver.received == []  # failing twice is not yet "3 runs in a row"
    third = run(folder, state)
    assert third["exit_code"] == 1
    assert len(receiver.delivered()) == 1
    _, shown, _ = icp("runs", "show", str(third["run_id"]), "--state", state, "--json")
    groups = json.loads(shown)["failures"]
    assert sum(g["count"] for g in groups) == 2 and {g["code"] for g in groups} == {
        "VALIDATION_ERROR"
    }
    assert sorted(r for g in groups for r in g["records"]) == bad
    body = receiver.delivered()[0]
    assert body["blocks"][0]["text"]["text"] == "ICP hubspot sync: 2 records failed 3 runs in a row"
    text = body["text"]
    assert "2 x VALIDATION_ERROR" in text  # grouped by the CRM's message
    assert all(b in text for b in bad)
    assert "What was kept:" in text and "Look closer: icp status --crm hubspot" in text
    for _ in range(3):  # the schedule keeps running: no storm
        run(folder, state)
    assert len(receiver.received) == 1
    _code, out, _ = icp("status", "--state", state)
    assert "Alert active since" in out and "2 records failed 3 runs in a row (sent)" in out

    portal.clear_faults()
    assert run(folder, state)["exit_code"] == 0
    _code, out, _ = icp("status", "--state", state, "--json")
    assert json.loads(out)["alerts"] == []  # cleared: the next failure alerts again
    assert len(receiver.received) == 1


def test_a_run_that_cannot_reach_the_crm_alerts_once_until_one_succeeds(
    portal: FakeHubSpot, receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, state = mappings(tmp_path / "m"), tmp_path / "state"
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-wrong-token")
    for _ in range(3):
        code, _, err = icp("sync", "--crm", "hubspot", "--mappings", folder, "--state", state)
        assert code == 3 and "Traceback" not in err
    assert titles(receiver) == ["ICP hubspot sync failed (exit 3: could not reach the CRM)"]
    text = receiver.delivered()[0]["text"]
    assert "Nothing was written by this run" in text and "pat-na1-wrong-token" not in text
    _, out, _ = icp("status", "--state", state, "--json")
    status = json.loads(out)
    assert status["trend"][0]["failed_runs"] == 3  # failed runs are in the history too
    assert [r["exit_code"] for r in status["runs"]] == [3, 3, 3]
    _, out, _ = icp("runs", "show", str(status["runs"][0]["id"]), "--state", state)
    assert "error (exit 3)" in out and "INVALID_AUTHENTICATION" in out
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", portal.token)
    assert run(folder, state)["exit_code"] == 0
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-wrong-token")
    icp("sync", "--crm", "hubspot", "--mappings", folder, "--state", state)
    assert len(receiver.delivered()) == 2  # it cleared, then happened again


def test_bad_configuration_exit_2_alerts_once_with_the_file_and_line(
    portal: FakeHubSpot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    folder, state = mappings(tmp_path / "m"), tmp_path / "state"
    mapping = yaml.safe_load((folder / "hubspot.yaml").read_text())
    mapping["outputs"]["tier"]["policy"] = "sometimes"
    (folder / "hubspot.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False))
    for _ in range(2):
        code, _, _ = icp("sync", "--crm", "hubspot", "--mappings", folder, "--state", state)
        assert code == 2
    assert titles(receiver) == ["ICP hubspot sync failed (exit 2: bad configuration or usage)"]
    text = receiver.delivered()[0]["text"]
    assert "hubspot.yaml:" in text and "outputs.tier.policy" in text
    assert "Look closer: icp mappings validate" in text


def test_daily_limit_stop_alerts_once(
    portal: FakeHubSpot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    seed_portal(portal, 280, deals_per_company=2.0)  # 400 companies: more than one batch round
    folder = mappings(tmp_path / "m", daily_reserve=0)
    calls = portal.api_calls
    run(folder, tmp_path / "probe", "--dry-run")
    pull = portal.api_calls - calls
    state = tmp_path / "state"
    portal.daily_remaining = pull + 1
    stopped = run(folder, state)
    assert stopped["exit_code"] == 1 and "daily" in (stopped["message"] or "")
    assert titles(receiver) == ["ICP hubspot sync stopped at the CRM's API limit"]
    assert "kept and written by the next run" in receiver.delivered()[0]["text"]
    portal.daily_remaining = pull  # still spent on the next run: no second alert
    run(folder, state)
    assert len(receiver.delivered()) == 1


def _backdate(state: Path, hours: float) -> None:
    """Move every run's times `hours` into the past (as if the schedule stopped then)."""
    with sqlite3.connect(state / StateStore.FILE_NAME) as db:
        for run_id, started, finished in db.execute(
            "SELECT id, started_at, finished_at FROM runs"
        ).fetchall():
            moved = [
                (datetime.fromisoformat(t) - timedelta(hours=hours)).isoformat() if t else None
                for t in (started, finished)
            ]
            db.execute(
                "UPDATE runs SET started_at = ?, finished_at = ? WHERE id = ?", (*moved, run_id)
            )


def test_a_dead_schedule_is_noticed_by_the_next_run_once(
    portal: FakeHubSpot, receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = mappings(tmp_path / "m", {"no_success_hours": 24})
    state = tmp_path / "state"
    assert run(folder, state)["exit_code"] == 0
    assert receiver.received == []
    _backdate(state, 30)  # nothing ran for 30 hours
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-wrong-token")  # and the CRM is down
    for _ in range(2):
        icp("sync", "--crm", "hubspot", "--mappings", folder, "--state", state)
    assert titles(receiver) == [
        "ICP hubspot: no successful sync for 30 hours",
        "ICP hubspot sync failed (exit 3: could not reach the CRM)",
    ]
    assert "the last successful run finished" in receiver.delivered()[0]["text"]
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", portal.token)
    run(folder, state)
    run(folder, state)
    assert len(receiver.delivered()) == 2


def test_a_receiver_down_never_fails_the_run_and_is_retried_next_run(
    portal: FakeHubSpot,
    receiver: WebhookReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_sleep: list[float],
) -> None:
    folder, state = mappings(tmp_path / "m", {"attempts": 3}), tmp_path / "state"
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-wrong-token")
    receiver.always = 503
    code, out, err = icp("sync", "--crm", "hubspot", "--mappings", folder, "--state", state)
    assert code == 3  # the run's own code, not the alert's
    assert len(receiver.received) == 3 and no_sleep == [1, 2]  # bounded, with backoff
    assert "secret-token-xyz" not in out + err  # the URL is a secret
    assert "alert 'run_failed:hubspot' not delivered: revops: HTTP 503 after 3 tries" in err
    code, out, _ = icp("status", "--state", state, "--json")
    alerts = json.loads(out)["alerts"]
    assert [(a["delivered"], a["last_error"]) for a in alerts] == [
        (False, "revops: HTTP 503 after 3 tries")
    ]
    assert b"secret-token-xyz" not in (state / StateStore.FILE_NAME).read_bytes()
    receiver.always = None
    icp("sync", "--crm", "hubspot", "--mappings", folder, "--state", state)
    assert len(receiver.delivered()) == 1  # delivered by the next run, once
    icp("sync", "--crm", "hubspot", "--mappings", folder, "--state", state)
    assert len(receiver.delivered()) == 1


def test_generic_json_body_and_a_transient_error_retried(
    portal: FakeHubSpot, receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks = {"webhooks": [{"name": "pager", "url_env": JSON_HOOK, "format": "json"}]}
    folder, state = mappings(tmp_path / "m", hooks), tmp_path / "state"
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-wrong-token")
    receiver.answers = [500]
    icp("sync", "--crm", "hubspot", "--mappings", folder, "--state", state)
    assert [r.status for r in receiver.received] == [500, 200]
    body = receiver.delivered()[0]
    assert receiver.received[1].path == "/generic/secret-json-path"
    assert receiver.received[1].content_type == "application/json"
    assert body["source"] == "icp-engine" and body["condition"] == "run_failed"
    assert body["key"] == "run_failed:hubspot" and body["crm"] == "hubspot"
    assert body["command"] == "icp status --crm hubspot"
    assert {"title", "happened", "kept", "details", "at"} <= set(body)


def test_a_webhook_url_written_in_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "operate.yaml").write_text(
        "alerts:\n  webhooks:\n    - name: slack\n      url: https://hooks.slack.com/services/x\n"
        "  failing_runs: 0\n"
    )
    code, _, err = icp("mappings", "validate", "--mappings", folder)
    assert code == 2
    assert "operate.yaml:3: alerts.webhooks.0: a webhook URL is a secret" in err
    assert "operate.yaml:5: alerts.failing_runs" in err and "Traceback" not in err


# -- after icp train -------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("alerts-train") / "export"
    write_sample_crm(directory, accounts=2000)
    return directory


def test_a_significant_retrain_alerts_once_and_an_identical_one_does_not(
    sample: Path, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    config = {"alerts": {"webhooks": [{"url_env": HOOK}], "tier_share_points": 1}}
    (folder / "operate.yaml").write_text(yaml.safe_dump(config))
    state = tmp_path / "state"

    def train(*extra: str) -> None:
        code, _, err = icp(
            "train", "--crm", "csv", "--source", sample, "--mappings", folder, "--state", state,
            *extra,
        )  # fmt: skip
        assert code == 0, err

    train()
    assert titles(receiver) == ["ICP csv: the learned ICP changed (v0001)"]
    first = receiver.delivered()[0]["text"]
    # the activation gate holds v0001 back: it is no better than the hand-written ICP
    assert "the new candidate was not activated" in first
    assert "The criteria in use are unchanged; the candidate is saved for review." in first
    train()  # the same outcomes again: v0002 is the same news
    assert len(receiver.delivered()) == 1
    train("--lookback-days", "540")  # a shorter history: a different ICP
    assert len(receiver.delivered()) == 2
    text = receiver.delivered()[1]["text"]
    assert titles(receiver)[1] == "ICP csv: the learned ICP changed (v0003)"
    assert "Look closer: icp report --crm csv" in text
    assert re.search(r"criterion (added|removed): ", text)
    assert re.search(r"tier B: \d+% -> \d+% of accounts", text)
    train("--lookback-days", "540")  # rerun: the same ICP again, no alert
    assert len(receiver.delivered()) == 2
