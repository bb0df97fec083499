"""When an alert is due: the conditions, each turned into an `Alert` or `None` (clear).

Every function returns `key -> Alert | None` for the keys it decides; a key it leaves
out is left as it was (a run skipped by the lock says nothing about the CRM).

- after a run: `run_failed` (exit 2 or 3), `records_failing` (records failing for
  `failing_runs` runs in a row, grouped by the CRM's message), `daily_limit` (writing
  stopped at an API limit);
- as a run starts: `no_success` (no successful run for longer than `no_success_hours`);
- after `icp train`: `icp_changed` (tier shares moving, criteria entering or leaving,
  an emerging segment, a candidate not activated). This one is news rather than a state:
  its key is a fingerprint of the changes, so a retrain that finds the same news again
  (the same outcomes, the same candidate held back) does not repeat it.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from icp_engine.sync.alerts import Alert
from icp_engine.sync.operate_config import Alerts
from icp_engine.sync.state.records import LIMIT_REACHED, FailureRecord, RunRecord

SUCCESS = ("ok", "partial")
"""Outcomes that count as a successful run (it finished its writes)."""
_EXAMPLES = 3
_VERSION = re.compile(r"\bv\d{4,}\b")
_NUMBERS = re.compile(r"\d+(\.\d+)?")
_GROUPS = 8


def after_run(
    crm: str,
    exit_code: int,
    message: str | None,
    failures: Sequence[FailureRecord],
    config: Alerts,
    dry_run: bool = False,
    command: str | None = None,
) -> dict[str, Alert | None]:
    """The conditions a finished (or failed) run decides (`command`: where to look
    closer at a failed run, if not `icp status`)."""
    found: dict[str, Alert | None] = {}
    if exit_code == 4 or dry_run:
        return found
    status = f"icp status --crm {crm}"
    if exit_code in (2, 3):
        why = "bad configuration or usage" if exit_code == 2 else "could not reach the CRM"
        found[f"run_failed:{crm}"] = Alert(
            f"run_failed:{crm}",
            f"ICP {crm} sync failed (exit {exit_code}: {why})",
            message or why,
            "Nothing was written by this run. The CRM, the watermarks and the records still "
            "to retry are as the last good run left them; the next run picks up from there.",
            command or status,
            crm=crm,
        )
        return found  # the other conditions need a run that got to the CRM
    found[f"run_failed:{crm}"] = None
    found[f"records_failing:{crm}"] = _records_failing(crm, failures, config.failing_runs)
    limited = [f for f in failures if f.code == LIMIT_REACHED]
    if message and limited:
        found[f"daily_limit:{crm}"] = Alert(
            f"daily_limit:{crm}",
            f"ICP {crm} sync stopped at the CRM's API limit",
            message,
            f"{len(limited)} records not written yet are kept and written by the next run "
            "once the limit resets; everything written before the stop stays.",
            status,
            crm=crm,
        )
    else:
        found[f"daily_limit:{crm}"] = None
    return found


def _records_failing(crm: str, failures: Sequence[FailureRecord], runs: int) -> Alert | None:
    stuck = [f for f in failures if f.attempts >= runs and f.code != LIMIT_REACHED]
    if not stuck:
        return None
    groups: dict[tuple[str, str], list[FailureRecord]] = defaultdict(list)
    for failure in stuck:  # one group per message, whatever value or id it quotes
        shape = _NUMBERS.sub("#", failure.message or "")
        groups[(failure.code or "error", shape)].append(failure)
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
    details = [
        f"{len(group)} x {code}: {(group[0].message or '')[:200]}"
        f" (e.g. {', '.join(f.record_id for f in group[:_EXAMPLES])})"
        for (code, _), group in ordered[:_GROUPS]
    ]
    if len(ordered) > _GROUPS:
        details.append(f"... and {len(ordered) - _GROUPS} more kinds of error")
    return Alert(
        f"records_failing:{crm}",
        f"ICP {crm} sync: {len(stuck)} records failed {runs} runs in a row",
        f"The CRM refused {len(stuck)} records on each of the last {runs} or more runs "
        f"({len(ordered)} kind(s) of error).",
        "Every other record was written. The refused ones are kept with the CRM's answer "
        "and retried each run; fix the data or the field in the CRM and the next run writes them.",
        f"icp status --crm {crm}",
        details,
        crm,
    )


def at_start(
    crm: str, runs: Sequence[RunRecord], config: Alerts, now: datetime
) -> dict[str, Alert | None]:
    """`no_success`, checked as a run starts: the schedule may have been dead for days."""
    if config.no_success_hours is None:
        return {}
    real = [r for r in runs if not r.dry_run]
    if not real:
        return {}  # a new installation: nothing was expected yet
    good = [r for r in real if r.outcome in SUCCESS and r.finished_at is not None]
    last = max((r.finished_at for r in good if r.finished_at), default=None)
    since = last or min(r.started_at for r in real)
    hours = (now - since).total_seconds() / 3600
    key = f"no_success:{crm}"
    if hours <= config.no_success_hours:
        return {key: None}
    what = (
        f"the last successful run finished {since:%Y-%m-%d %H:%M} UTC"
        if last
        else f"no run has succeeded since the first one started {since:%Y-%m-%d %H:%M} UTC"
    )
    return {
        key: Alert(
            key,
            f"ICP {crm}: no successful sync for {hours:.0f} hours",
            f"{what}, {hours:.1f} hours ago (the limit is {config.no_success_hours:g} h). "
            "The schedule may have stopped, or every run since has failed.",
            "Scores in the CRM are those of the last successful run; nothing was lost, and "
            "the next successful run catches up from the watermarks.",
            f"icp status --crm {crm}",
            crm=crm,
        )
    }


def after_success(crm: str, outcome: str | None) -> dict[str, Alert | None]:
    """A successful run clears `no_success`."""
    return {f"no_success:{crm}": None} if outcome in SUCCESS else {}


def after_train(
    crm: str,
    payload: dict[str, Any],
    previous: dict[str, Any] | None,
    config: Alerts,
    notes: Sequence[str] = (),
) -> dict[str, Alert | None]:
    """`icp_changed`: what makes a retrain worth telling people about."""
    version = payload.get("version")
    if not version:
        return {}  # nothing was saved (no signal, a dry run): nothing changed
    details: list[str] = []
    if not payload.get("activated"):
        reason = "; ".join(notes) or "it is not better than the criteria in use"
        details.append(f"the new candidate was not activated: {reason}")
    if previous is None and payload.get("activated"):
        details.append(f"first learned ICP: {version} replaces the hand-written criteria")
    if previous is not None:
        details += _tier_moves(_tier_shares(payload), _tier_shares(previous), config)
        now_names, before_names = _criteria_names(payload), _criteria_names(previous)
        details += [f"criterion added: {n}" for n in sorted(now_names - before_names)]
        details += [f"criterion removed: {n}" for n in sorted(before_names - now_names)]
    emerging_before = _names(previous.get("emerging") if previous else None)
    details += [
        f"emerging segment: {n}" for n in sorted(_names(payload.get("emerging")) - emerging_before)
    ]
    if not details:
        return {}
    key = f"icp_changed:{crm}:{_fingerprint(details)}"
    kept = (
        f"{version} is saved and active: the next sync scores with it."
        if payload.get("activated")
        else "The criteria in use are unchanged; the candidate is saved for review."
    )
    return {
        key: Alert(
            key,
            f"ICP {crm}: the learned ICP changed ({version})",
            f"icp train learned {version}; {len(details)} significant change(s).",
            kept,
            f"icp report --crm {crm}",
            details,
            crm,
        )
    }


def _fingerprint(details: list[str]) -> str:
    """The same news twice (a rerun of train on the same outcomes) is told once: the key
    ignores version names and the wording of why a candidate was held back."""
    parts = [
        "not activated" if d.startswith("the new candidate was not activated") else d
        for d in details
    ]
    text = _VERSION.sub("v#", "\n".join(parts))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _tier_shares(model: dict[str, Any]) -> dict[str, float]:
    learned = (model.get("criteria") or {}).get("learned") or {}
    rows = learned.get("tiers") or []
    return {
        str(r["tier"]): float(r["share"])
        for r in rows
        if isinstance(r, dict) and "tier" in r and r.get("share") is not None
    }


def _tier_moves(now: dict[str, float], before: dict[str, float], config: Alerts) -> list[str]:
    moves = []
    for tier in sorted(set(now) | set(before)):
        a, b = before.get(tier, 0.0) * 100, now.get(tier, 0.0) * 100
        if abs(b - a) >= config.tier_share_points:
            moves.append(f"tier {tier}: {a:.0f}% -> {b:.0f}% of accounts")
    return moves


def _criteria_names(model: dict[str, Any]) -> set[str]:
    groups = (model.get("criteria") or {}).get("criteria") or {}
    return {
        str(c["name"])
        for rules in groups.values()
        if isinstance(rules, list)
        for c in rules
        if isinstance(c, dict) and c.get("name")
    }


def _names(items: Any) -> set[str]:
    if not isinstance(items, list):
        return set()
    return {str(i.get("name")) for i in items if isinstance(i, dict) and i.get("name")}
