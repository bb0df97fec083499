"""Hooks that tie alerts and run history to `icp sync`, `icp backfill` and `icp train`.

The CLI calls `RunHooks.before()` as a run starts, then `after()` with its result or
`failed()` with the error that ended it, and `train_done()` after `icp train`. A hook
never changes what the run did or its exit code: whatever goes wrong in one (an
unreachable webhook, a broken operate.yaml) is logged as a warning and recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from icp_engine.sync import alert_rules, history
from icp_engine.sync.alerts import Alert, Notifier
from icp_engine.sync.logs import redact
from icp_engine.sync.operate_config import Operate, load_operate
from icp_engine.sync.state.store import StateStore
from icp_engine.sync.yamlfile import ConfigError, ConfigProblem

log = logging.getLogger(__name__)


def _operate(mappings: Path | None) -> Operate:
    problems: list[ConfigProblem] = []
    try:
        return load_operate(mappings, None, problems)
    except (ConfigError, OSError):
        return Operate()


class RunHooks:
    """Alerts and history around one `sync` or `backfill`.

    Args:
        crm: the CRM of the run.
        mappings: the mappings directory (operate.yaml is read from it).
        state_dir: the run's state directory.
        dry_run: a dry run sends no alert.
        kind: `sync` or `backfill`.
        environ, sleep, now: test seams (the process environment, time.sleep, the clock).
    """

    def __init__(
        self,
        crm: str,
        mappings: Path | None,
        state_dir: Path,
        dry_run: bool = False,
        kind: str = "sync",
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.crm = crm
        self.state_dir = state_dir
        self.dry_run = dry_run
        self.kind = kind
        self.now = now or (lambda: datetime.now(UTC))
        self.operate = _operate(mappings)
        self.notifier = Notifier(state_dir, self.operate.alerts, environ, sleep, self.now)
        self.started = self.now()
        self.last_run_before: int = 0

    def _guard(self, what: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as exc:  # a hook must never fail the run
            log.warning("%s: %s: %s (the run is not affected)", what, type(exc).__name__, exc)

    def _send(self, evaluated: dict[str, Alert | None]) -> None:
        for alert in self.notifier.update(evaluated):
            log.info("alert sent: %s", alert.title)

    def before(self) -> None:
        """Note the last run so far and check for a dead schedule."""

        def check() -> None:
            if not StateStore.exists(self.state_dir):
                return
            with StateStore(self.state_dir) as state:
                runs = state.runs(self.crm, 10_000)
            self.last_run_before = runs[0].id if runs else 0
            if not self.dry_run:
                config = self.operate.alerts
                self._send(alert_rules.at_start(self.crm, runs, config, self.now()))

        self._guard("alert check at start", check)

    def after(self, result: Any, tier_field: str | None) -> None:
        """Record the run's detail; send what its outcome calls for."""
        self._guard("run history", lambda: history.record(self.state_dir, result, tier_field))

        def alerts() -> None:
            with StateStore(self.state_dir) as state:
                failures = state.failures(self.crm)
            evaluated = alert_rules.after_run(
                self.crm,
                result.exit_code,
                result.message,
                failures,
                self.operate.alerts,
                result.dry_run,
            )
            if not result.dry_run:
                evaluated.update(alert_rules.after_success(self.crm, result.outcome))
            self._send(evaluated)

        self._guard("alerts", alerts)

    def failed(
        self, exit_code: int, message: str, criteria: str = "", command: str | None = None
    ) -> None:
        """A run that ended with an error (bad configuration, CRM unreachable...)."""

        def detail() -> None:
            if exit_code == 4:
                return  # skipped for another run: not a run of its own
            with StateStore(self.state_dir) as state:
                runs = state.runs(self.crm, 1)
                if runs and runs[0].id > self.last_run_before:
                    run_id = runs[0].id
                else:  # it ended before the run was recorded: record it, so history shows it
                    run_id = state.start_run(
                        self.crm, self.kind, self.dry_run, started_at=self.started
                    )
                    state.finish_run(run_id, "error", exit_code, {}, 0, redact(message)[:500])
            history.record_error(self.state_dir, run_id, self.crm, criteria, message)

        self._guard("run history", detail)
        evaluated = alert_rules.after_run(
            self.crm, exit_code, message[:500], [], self.operate.alerts, self.dry_run, command
        )
        self._guard("alerts", lambda: self._send(evaluated))


def failure_text(exc: BaseException) -> str:
    """What ended a run, as people read it: the engine's own errors speak for themselves."""
    from icp_engine.connectors.errors import ConnectorError

    if isinstance(exc, ConnectorError | ConfigError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def config_message(exc: ConfigError) -> str:
    """A one-paragraph summary of configuration problems (for an alert)."""
    shown = "; ".join(str(p) for p in exc.problems[:3])
    more = f" (and {len(exc.problems) - 3} more)" if len(exc.problems) > 3 else ""
    return f"{len(exc.problems)} problem(s) in the mapping files: {shown}{more}"


def train_done(
    crm: str,
    mappings: Path | None,
    state_dir: Path,
    outcome: Any,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> list[Alert]:
    """After `icp train`: alert on a significant change of the ICP (once per version)."""
    sent: list[Alert] = []

    def check() -> None:
        from icp_engine.sync.versions import VersionStore

        version = outcome.version
        if version is None:
            return  # nothing saved: no signal, or a dry run
        operate = _operate(mappings)
        current = {"criteria": outcome.result.criteria, **outcome.payload}
        previous = VersionStore(state_dir).previous(version)
        before = previous.load_model() if previous is not None else None
        evaluated = alert_rules.after_train(
            crm, current, before, operate.alerts, () if outcome.activated else outcome.notes
        )
        sent.extend(Notifier(state_dir, operate.alerts, environ, sleep).update(evaluated))

    try:
        check()
    except Exception as exc:
        log.warning(
            "alerts after train: %s: %s (training is not affected)", type(exc).__name__, exc
        )
    return sent
