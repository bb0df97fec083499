"""Alert bodies, scrubbing and the retry schedule, against a real loopback receiver."""

from __future__ import annotations

from pathlib import Path

import pytest
from icp_engine.sync.alerts import Alert, DeliveryError, Notifier, post, scrub, slack_body
from icp_engine.sync.operate_config import Alerts, Webhook

from tests.webhook_receiver import WebhookReceiver

ALERT = Alert(
    "run_failed:hubspot",
    "ICP hubspot sync failed (exit 3: could not reach the CRM)",
    "401 for token pat-na1-0123456789 at https://api.example.test",
    "Nothing was written by this run.",
    "icp status --crm hubspot",
    ["first detail"],
    "hubspot",
)


def test_slack_body_has_a_fallback_text_and_blocks() -> None:
    body = slack_body(ALERT)
    assert body["text"].startswith(ALERT.title) and "Look closer: icp status" in body["text"]
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds == ["header", "section", "section", "context"]
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": ALERT.title}
    assert "*What was kept:* Nothing was written" in body["blocks"][1]["text"]["text"]


def test_credentials_quoted_by_an_error_never_reach_the_channel() -> None:
    clean = scrub(ALERT, {"HUBSPOT_ACCESS_TOKEN": "pat-na1-0123456789"})
    assert "pat-na1" not in clean.text() and "[redacted]" in clean.happened


def test_retries_back_off_exponentially_and_stop() -> None:
    waits: list[float] = []
    with WebhookReceiver() as hook:
        hook.answers = [503, 429, 200]
        post(hook.url(), {"text": "x"}, 4, waits.append)
        assert [r.status for r in hook.received] == [503, 429, 200] and waits == [1, 2]
        hook.always = 500
        with pytest.raises(DeliveryError, match="HTTP 500 after 4 tries"):
            post(hook.url(), {"text": "x"}, 4, waits.append)
        assert waits[2:] == [1, 2, 4]
        hook.always = 404  # refused: not worth another try
        before = len(hook.received)
        with pytest.raises(DeliveryError, match="HTTP 404"):
            post(hook.url(), {"text": "x"}, 4, waits.append)
        assert len(hook.received) == before + 1


def test_unset_variable_is_recorded_and_the_url_never_stored(tmp_path: Path) -> None:
    config = Alerts(webhooks=[Webhook(url_env="ICP_NOT_SET_ANYWHERE")])
    notifier = Notifier(tmp_path, config, environ={}, sleep=lambda s: None)
    assert notifier.update({ALERT.key: ALERT}) == []
    from icp_engine.sync.alerts import pending

    [row] = pending(tmp_path)
    assert not row.delivered and row.last_error == (
        "webhook: environment variable ICP_NOT_SET_ANYWHERE is not set"
    )


def _model(shares: dict[str, float], names: list[str], emerging: list[str]) -> dict:
    return {
        "criteria": {
            "criteria": {"strong_signal": [{"name": n} for n in names]},
            "learned": {"tiers": [{"tier": t, "share": s} for t, s in shares.items()]},
        },
        "emerging": [{"name": e} for e in emerging],
    }


def test_after_train_names_each_significant_change() -> None:
    from icp_engine.sync.alert_rules import after_train

    before = _model({"A": 0.15, "B": 0.30}, ["Employees 50-499", "Industry: SaaS"], [])
    now = _model({"A": 0.22, "B": 0.31}, ["Employees 50-499", "Funding: Series A-C"], ["Fintech"])
    now |= {"version": "v0004", "activated": False}
    [(key, alert)] = after_train(
        "csv", now, before, Alerts(), ["worse than v0003 on recent"]
    ).items()
    assert key.startswith("icp_changed:csv:") and alert is not None
    assert alert.title == "ICP csv: the learned ICP changed (v0004)"
    again = now | {"version": "v0005"}  # the same news from the next retrain: the same key
    assert list(after_train("csv", again, before, Alerts(), ["worse than v0004"])) == [key]
    assert alert.details == [
        "the new candidate was not activated: worse than v0003 on recent",
        "tier A: 15% -> 22% of accounts",  # B moved 1 point: below the 5-point bar
        "criterion added: Funding: Series A-C",
        "criterion removed: Industry: SaaS",
        "emerging segment: Fintech",
    ]
    assert alert.kept.startswith("The criteria in use are unchanged")
    same = after_train("csv", before | {"version": "v0005", "activated": True}, before, Alerts())
    assert same == {}  # nothing significant: no alert
