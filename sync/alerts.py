"""Alerts: one message per condition, delivered to webhooks, never failing the run.

A condition (`run_failed:csv`, `records_failing:csv`, `daily_limit:csv`,
`no_success:csv`, `icp_changed:csv:v0004`) is evaluated after a run (or as it starts,
or after `icp train`). A condition that becomes active sends its one alert; while it
stays active nothing more is sent, however often the schedule reruns; when it clears it
is marked so, and the next time it becomes active it alerts again. A delivery that fails
after its retries is recorded (`icp status` shows it) and tried again by the next run;
it never changes the run's exit code.

Bodies: Slack incoming webhooks take a JSON POST with `text` (the notification
fallback) and Block Kit `blocks` (https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks,
https://docs.slack.dev/tools/slack-github-action/sending-data-slack-incoming-webhook);
`format: json` posts a flat object for anything else (a pager, a Teams flow, a script).
The URL comes from the environment variable the webhook names, and is never logged:
errors name the webhook and the variable, never the URL.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from icp_engine.sync.logs import redact
from icp_engine.sync.operate_config import Alerts, Webhook
from icp_engine.sync.state.opsdb import ConditionRow, OpsDB
from icp_engine.sync.state.store import StateStore
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

log = logging.getLogger(__name__)
TIMEOUT_S = 10.0


def pause(seconds: float) -> None:
    """The wait between tries (tests replace it: they never sleep)."""
    time.sleep(seconds)


@dataclass(frozen=True)
class Alert:
    """One message: what happened, what was kept, and the command to look closer."""

    key: str
    title: str
    happened: str
    kept: str
    command: str
    details: list[str] = field(default_factory=list)
    crm: str = ""

    def text(self) -> str:
        """The message as plain text (the Slack fallback, and what a person reads)."""
        lines = [self.title, f"What happened: {self.happened}", f"What was kept: {self.kept}"]
        lines += [f"  - {d}" for d in self.details]
        lines.append(f"Look closer: {self.command}")
        return "\n".join(lines)


SECRET_ENV = (
    "HUBSPOT_ACCESS_TOKEN",
    "SF_ACCESS_TOKEN",
    "SF_PASSWORD",
    "SF_SECURITY_TOKEN",
    "SF_CONSUMER_KEY",
)
"""Credentials (DESIGN.md) whose values are cut out of every alert, whatever echoed them."""


def scrub(alert: Alert, environ: Mapping[str, str], also: Sequence[str] = ()) -> Alert:
    """`alert` with the values of credential variables (and of `also`) replaced by
    `[redacted]`: an error message quoting a token must not post it to a channel."""
    secrets = [v for v in (*(environ.get(n, "") for n in SECRET_ENV), *also) if len(v) >= 6]

    def clean(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "[redacted]")
        return redact(text)  # issue 11's: every secret variable, in every echoed form

    return replace(
        alert,
        title=clean(alert.title),
        happened=clean(alert.happened),
        kept=clean(alert.kept),
        details=[clean(d) for d in alert.details],
    )


def slack_body(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook body: `text` as fallback, Block Kit blocks to read."""
    detail = "\n".join(f"• {d}" for d in alert.details)
    body = f"*What happened:* {alert.happened}\n*What was kept:* {alert.kept}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": body[:3000]}},
    ]
    if detail:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": detail[:3000]}})
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"`{alert.command}`"}]}
    )
    return {"text": alert.text()[:4000], "blocks": blocks}


def json_body(alert: Alert, at: datetime) -> dict[str, Any]:
    """A flat JSON body for any receiver."""
    return {
        "source": "icp-engine",
        "condition": alert.key.split(":")[0],
        "key": alert.key,
        "crm": alert.crm,
        "title": alert.title,
        "happened": alert.happened,
        "kept": alert.kept,
        "details": alert.details,
        "command": alert.command,
        "at": at.isoformat(),
    }


class DeliveryError(Exception):
    """A webhook answered with an error, or could not be reached."""


class _Transient(DeliveryError):
    """Worth another try: no answer, 429 or 5xx."""


def post(
    url: str,
    body: dict[str, Any],
    attempts: int,
    sleep: Callable[[float], None],
    session: requests.Session | None = None,
) -> None:
    """POST `body` as JSON, retrying transient failures with exponential backoff.

    Raises:
        DeliveryError: the receiver refused it (4xx other than 429), or every try failed.
        The message never holds the URL.
    """
    http = session or requests.Session()

    def once() -> None:
        try:
            response = http.post(url, json=body, timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            raise _Transient(f"no answer ({type(exc).__name__})") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise DeliveryError(f"HTTP {response.status_code}: {response.text[:200]}")

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=1, min=1, max=30),
        retry=retry_if_exception_type(_Transient),
        sleep=sleep,
        reraise=False,
    )
    try:
        retrying(once)
    except RetryError as exc:
        last = exc.last_attempt.exception()
        raise DeliveryError(f"{last} after {attempts} tries") from None


class Notifier:
    """Turns evaluated conditions into at most one alert each, and records delivery.

    Args:
        state_dir: where the conditions are remembered.
        config: `alerts:` from operate.yaml.
        environ: where the webhook URLs are read (the process environment by default).
        sleep: how to wait between tries (a test seam).
        now: the clock.
    """

    def __init__(
        self,
        state_dir: Path,
        config: Alerts,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.config = config
        self.environ = os.environ if environ is None else environ
        self.sleep = sleep
        self.now = now or (lambda: datetime.now(UTC))
        self.sent: list[Alert] = []

    def update(self, evaluated: Mapping[str, Alert | None]) -> list[Alert]:
        """Record each condition (`key -> Alert` if active, `None` if clear); send the
        alerts of conditions newly active or not yet delivered. Returns what was sent."""
        sent: list[Alert] = []
        stamp = self.now().isoformat()
        with OpsDB(self.state_dir) as db:
            for key, alert in evaluated.items():
                row = db.condition(key)
                if alert is None:
                    if row is not None and row.active:
                        db.put_condition(
                            ConditionRow(key, False, False, row.since, row.title, 0, None, stamp)
                        )
                    continue
                if row is not None and row.active and row.delivered:
                    continue  # told once already; stays quiet until it clears
                since = row.since if row is not None and row.active else stamp
                attempts = (row.attempts if row is not None and row.active else 0) + 1
                error = self._deliver(alert)
                db.put_condition(
                    ConditionRow(
                        key, True, error is None, since, alert.title, attempts, error, stamp
                    )
                )
                if error is None:
                    if self.config.webhooks:  # with none, the condition is only recorded
                        sent.append(alert)
                else:
                    log.warning("alert %r not delivered: %s (kept; retried next run)", key, error)
        self.sent += sent
        return sent

    def _deliver(self, alert: Alert) -> str | None:
        """Send to every webhook; None if all took it, else what went wrong."""
        if not self.config.webhooks:
            return None  # nowhere to send: the condition is still recorded and shown
        errors: list[str] = []
        for hook in self.config.webhooks:
            problem = self._deliver_one(hook, alert)
            if problem:
                errors.append(f"{hook.name}: {problem}")
        return "; ".join(errors) or None

    def _deliver_one(self, hook: Webhook, alert: Alert) -> str | None:
        url = self.environ.get(hook.url_env, "").strip()
        if not url:
            return f"environment variable {hook.url_env} is not set"
        if not url.startswith(("https://", "http://")):
            return f"{hook.url_env} does not hold an http(s) URL"
        urls = [self.environ.get(h.url_env, "") for h in self.config.webhooks]
        alert = scrub(alert, self.environ, urls)
        body = slack_body(alert) if hook.format == "slack" else json_body(alert, self.now())
        try:
            post(url, body, self.config.attempts, self.sleep or pause)
        except DeliveryError as exc:
            return str(exc).replace(url, f"${hook.url_env}")
        return None


def pending(state_dir: Path) -> list[ConditionRow]:
    """Conditions active now (delivered or not), for `icp status`."""
    if not StateStore.exists(state_dir):
        return []
    with OpsDB(state_dir) as db:  # news after train is shown only until it is delivered
        return [
            c
            for c in db.conditions()
            if c.active and not (c.delivered and c.key.startswith("icp_changed:"))
        ]
