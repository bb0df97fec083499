"""`icp train` and `icp report`: learn the ICP from outcomes, save it, judge earlier scores.

Training reads every account and opportunity through the connector (read-only, holding
the state lock so it does not race a sync), fits the learner (`scoring.learn.train`),
reports how the scores written under earlier criteria versions fared against outcomes
that have closed since (`track_predictions`), and, when the holdout shows real lift,
saves the learned criteria as a new version that becomes active for later syncs.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
from icp_engine import connectors
from icp_engine.connectors.base import Connector
from icp_engine.connectors.id_set import Ids
from icp_engine.scoring.labels import field_label, human_date, using_labels
from icp_engine.sync import numbers
from icp_engine.sync.config import Config, check_criteria, load_config
from icp_engine.sync.enrich import enrich
from icp_engine.sync.progress import stage, timed_stage
from icp_engine.sync.pull import WorkingSet, pull_object
from icp_engine.sync.runner import score
from icp_engine.sync.state.store import StateStore
from icp_engine.sync.versions import Version, VersionStore, criteria_yaml, track_predictions
from icp_engine.sync.yamlfile import ConfigError, ConfigProblem, load_yaml
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the learner (scikit-learn) loads only when `icp train` runs
    from icp_engine.scoring.learn import TrainResult, TrainSettings

log = logging.getLogger(__name__)


class NoModelError(Exception):
    """`icp report` before any `icp train` saved a version (exit 2)."""


@dataclass
class TrainOutcome:
    """What one `icp train` did, for the CLI to print."""

    result: TrainResult
    payload: dict[str, Any]
    """`icp train --json`: `TrainResult.to_json` plus version, activated and tracking."""
    proposed: str
    """The learned criteria as YAML (without the header)."""
    config: Config
    version: Version | None = None
    activated: bool = False
    diff: str = ""
    notes: list[str] = field(default_factory=list)


def read_all(connector: Connector) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every account and opportunity, as canonical frames (a full, read-only pull)."""
    connector.connect()
    nothing = Ids(pa.array([], pa.string()))  # a read, not a sync: nothing known to delete
    pulled = [pull_object(connector, kind, None, nothing) for kind in ("account", "opportunity")]
    frames = [p.frame for p in pulled]
    issues = sum(len(p.report.issues) for p in pulled)
    if issues:
        log.warning("%s rows or values could not be read (icp sync logs each one)", f"{issues:,}")
    return frames[0], frames[1]


def run_train(
    crm: str,
    mappings: Path | None,
    state_dir: Path,
    source: Path | None,
    dry_run: bool,
    settings: TrainSettings,
    connector: Connector | None = None,
    force_activate: bool = False,
) -> TrainOutcome:
    """Train, track, and (unless `dry_run` or without signal) save a version.

    The version goes live only when, on the same holdout, it is not worse than the
    criteria in use (`scoring.learn_holdout.GATE_MARGIN`: paired bootstrap of the AUC
    difference) or with `force_activate` (`icp train --activate`); otherwise it is saved
    as a candidate that `icp mappings activate vN` makes live.

    `icp.yaml`'s `learning:` block sets the objective and the tier shares unless
    `settings` already differ from the defaults.

    Raises `NotEnoughOutcomes`, `ConfigError`, `LockedError` and connector errors.
    """
    from icp_engine.scoring.learn import train
    from icp_engine.scoring.naming import describe_segments

    config = load_config(crm, mappings, state_dir)
    store = VersionStore(state_dir)
    with StateStore(state_dir) as state:
        state.acquire_lock()
        connector = connector or connectors.create(crm, config.mapping, source, None)
        accounts, opportunities = read_all(connector)
        accounts = enrich(config, accounts)
        assert config.manual_icp is not None
        now = datetime.now(UTC)
        types: dict[str, str] = config.account_field_types()
        if settings.tier_shares is None:
            settings.tier_shares = config.learning.tier_shares
        if settings.objective == "win_rate":
            settings.objective = config.learning.objective
        spec = config.mapping.outputs.get("score")
        settings.score_scale = spec.scale if spec and spec.scale is not None else 0
        with (
            timed_stage(state, f"{crm}.learn", len(opportunities), "Learning from outcomes"),
            using_labels(config.mapping.labels()),  # names learned in the mapping's labels
        ):
            result = train(
                accounts, opportunities, config.manual_icp, types, now, settings, config.icp
            )
        with stage("Checking earlier scores against outcomes"):
            result.tracking = track_predictions(state.scores(crm), opportunities)
        # optional: an OpenAI-compatible endpoint (ICP_LLM_BASE_URL) names and describes
        # the segments; without it, or when it fails, the deterministic names stand
        with stage("Naming segments"):
            result.segments = describe_segments(result.segments)
        proposed = criteria_yaml(result.criteria)
        outcome = TrainOutcome(result, {}, proposed, config)
        if not result.signal:
            outcome.notes.append(_no_signal(result))
            if not dry_run:  # what `icp report` shows until a version is trained after it
                save_last_train(state_dir, _payload(outcome) | {"criteria": result.criteria})
        elif dry_run:
            outcome.diff = _diff(config, proposed, "proposed (icp train --dry-run)")
            outcome.notes.append("dry run: nothing saved; the criteria in use are unchanged")
        else:
            number = store.next_number()
            version = Version(number, store.directory)
            _check(proposed, version, config)
            gate = result.gate or {}
            live = force_activate or not gate.get("worse")
            outcome.version, outcome.activated = version, live
            outcome.payload = _payload(outcome)
            saved = {"criteria": result.criteria, **outcome.payload}
            store.save(number, result.criteria, saved, header(result, version, now))
            if live:
                store.activate(version)
            else:
                outcome.diff = _diff(config, proposed, f"candidate {version.name} (not live)")
                outcome.notes.append(_candidate(version, gate, config))
            if live and config.criteria_pinned:
                outcome.notes.append(
                    f"saved and activated {version.name}, but icp.yaml pins "
                    "scoring: {source: manual}: sync keeps using the hand-written file"
                )
        outcome.payload = outcome.payload or _payload(outcome)
    return outcome


def _candidate(version: Version, gate: dict[str, Any], config: Config) -> str:
    lo, hi = gate.get("difference_ci") or [None, None]
    return (
        f"saved {version.name} as a candidate, not made live: on the same holdout it ranks "
        f"worse than the criteria in use ({config.criteria_label}): AUC "
        f"{_f(gate.get('auc_new'))} vs {_f(gate.get('auc_active'))}, difference "
        f"{_f(gate.get('difference'), 3)} (95% CI {_f(lo, 3)} to {_f(hi, 3)}; "
        f"{gate.get('test')}). To use it anyway: icp mappings activate {version.name} "
        "(or icp train --activate)"
    )


def _payload(outcome: TrainOutcome) -> dict[str, Any]:
    version = outcome.version
    payload = outcome.result.to_json(str(version.yaml_path) if version else None)
    payload.update(
        version=version.name if version else None,
        activated=outcome.activated,
        tracking=outcome.result.tracking,
    )
    return payload


def _check(text: str, version: Version, config: Config) -> None:
    """The learned YAML must load as `icp.yaml` does; else nothing is saved."""
    problems: list[ConfigProblem] = []
    document = load_yaml(text, f"{version.yaml_path} (not saved)")
    check_criteria(document, config.mapping, problems, config.enrichment)
    if problems:
        raise ConfigError(problems)


def _no_signal(result: TrainResult) -> str:
    holdout = result.holdout
    return (
        f"no real lift in the holdout (AUC {_f(holdout.get('auc'))}, 95% CI "
        f"{_ci(holdout.get('auc_ci'))}): criteria unchanged"
    )


def _diff(config: Config, proposed: str, label: str) -> str:
    active_file = config.files["icp"]
    path = Path(active_file)
    if path.is_file():
        current = path.read_text(encoding="utf-8-sig")
    else:  # the bundled icp.yaml
        from icp_engine import mappings

        current = mappings.default("icp.yaml").read_text(encoding="utf-8")
    lines = difflib.unified_diff(
        current.splitlines(keepends=True),
        proposed.splitlines(keepends=True),
        f"{active_file} (in use: {config.criteria_label})",
        label,
    )
    return "".join(lines)


def header(result: TrainResult, version: Version, now: datetime) -> str:
    """The comment block above a saved version's criteria."""
    holdout = result.holdout
    learned = result.criteria.get("learned") or {}
    challenger = result.challenger or {}
    better = "clearly better" if challenger.get("clearly_better") else "not clearly better"
    return "\n".join(
        [
            f"Learned ICP {version.name}, generated by icp train at {now:%Y-%m-%d %H:%M} UTC;",
            "edit freely, or pin mappings/icp.yaml with scoring: {source: manual}.",
            f"Outcomes: {learned.get('n_won', '-')} won, {learned.get('n_lost', '-')} lost "
            f"(look-back {learned.get('lookback_days', '-')} days)",
            *_written_lines(result),
            "Time-ordered backtest: the same learner fitted on "
            f"{_window(result.train_window)}, scored as sync scores it and judged on the "
            f"holdout {_window(holdout.get('window'))}: {holdout.get('n_won')} won, "
            f"{holdout.get('n_lost')} lost",
            f"Backtest on the holdout: AUC {_f(holdout.get('auc'))} (95% CI "
            f"{_ci(holdout.get('auc_ci'))}), Brier {_f(holdout.get('brier'), 3)}, ECE "
            f"{_f(holdout.get('ece'), 3)}; signal: {'yes' if result.signal else 'no'}",
            f"The model behind it: AUC {_f(result.holdout_model.get('auc'))} (95% CI "
            f"{_ci(result.holdout_model.get('auc_ci'))})",
            "Backtest tiers on the holdout: "
            + (
                ", ".join(
                    f"{t['tier']} {t['share']:.0%} of accounts, win rate "
                    + ("-" if t["win_rate"] is None else f"{t['win_rate']:.0%}")
                    for t in result.tiers
                )
                or "-"
            ),
            f"Challenger {challenger.get('model', '-')}: AUC {_f(challenger.get('auc'))} "
            f"(95% CI {_ci(challenger.get('auc_ci'))}), {better}",
            "(the challenger is reported, never deployed)",
        ]
    )


def _written_lines(result: TrainResult, subject: str = "This file") -> list[str]:
    """What the written criteria were fit on and what writing them as points cost."""
    written = result.written or {}
    flat = written.get("flattening") or {}
    if not written:
        return []
    kept = flat.get("lift_kept")
    return [
        f"{subject}: the learner refit on {written.get('fit_on') or 'every closed outcome'} "
        f"({_window(written.get('window'))}) once the backtest had judged it; as points it "
        "keeps "
        + (f"{kept:.0%}" if kept is not None else "-")
        + " of its model's lift on those outcomes"
    ]


def run_report(
    crm: str,
    mappings: Path | None,
    state_dir: Path,
    source: Path | None,
    out: Path,
    connector: Connector | None = None,
) -> tuple[Path, Version | None, Config]:
    """Score the current accounts with the criteria in use and write the HTML report.

    The report describes the active version, or the latest training when that found no
    signal (and saved no version): it then says so. `Version` is None in that case.
    """
    from icp_engine.scoring.report.build import render_report
    from icp_engine.sync.history import health

    config = load_config(crm, mappings, state_dir)
    store = VersionStore(state_dir)
    version = store.active() or store.previous(None)
    latest = last_train(state_dir, version)
    if version is None and latest is None:
        raise NoModelError(f"no trained model in {state_dir}: run icp train first")
    previous = store.previous(version) if version is not None else None
    connector = connector or connectors.create(crm, config.mapping, source, None)
    accounts, opportunities = read_all(connector)
    with stage("Scoring accounts", len(accounts), "accounts") as scoring:
        scored = score(config, WorkingSet(accounts, opportunities, {}, True)).reset_index()
        scoring.advance(len(scored))
    with stage("Writing the report"), using_labels(config.mapping.labels()):
        html = render_report(
            latest if latest is not None else version.load_model(),  # type: ignore[union-attr]
            scored[["account_id", "score", "tier", "segment"]],
            opportunities,
            config.icp,
            previous.load_model() if previous else None,
            datetime.now(UTC),
            sync_health=health(state_dir, crm),
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out, version, config


LAST_TRAIN = "last_train.json"
"""In the state directory: the result of the latest `icp train` that saved no version
(no signal), so that `icp report` can say what it found instead of refusing."""


def save_last_train(state_dir: Path, payload: dict[str, Any]) -> None:
    from icp_engine.scoring.learn import plain

    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LAST_TRAIN
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(plain(payload), default=str), encoding="utf-8")
    temporary.replace(path)


def last_train(state_dir: Path, version: Version | None) -> dict[str, Any] | None:
    """The no-signal training result, when it is newer than `version` (or there is none)."""
    path = state_dir / LAST_TRAIN
    if not path.is_file():
        return None
    newer = version is not None and version.json_path.is_file()
    if newer and version.json_path.stat().st_mtime >= path.stat().st_mtime:  # type: ignore[union-attr]
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _f(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def _ci(value: Any) -> str:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return numbers.NO_DATA
    return numbers.interval(value[0], value[1])


def _window(value: Any) -> str:
    if isinstance(value, dict):
        value = [value.get("start", value.get("from")), value.get("end", value.get("to"))]
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"{human_date(value[0])} to {human_date(value[1])}"
    return "-" if value is None else str(value)


def leaked_features(criteria: dict[str, Any]) -> list[tuple[str, str]]:
    """(field label, reason) for every field training left out as a leak."""
    from icp_engine.scoring.report.model_sections import dropped_features, is_leak

    return [(name, why) for name, why in dropped_features({"criteria": criteria}) if is_leak(why)]


def print_train(console: Console, outcome: TrainOutcome) -> None:
    """The compact human summary of `icp train`."""
    result, holdout = outcome.result, outcome.result.holdout
    say = functools.partial(console.print, highlight=False)
    backtest = "Backtest" if result.written else "Holdout"
    if result.sampled:  # large org: the learner fitted on a stratified sample
        sample = result.sampled
        say(
            f"Sampled: learned from {numbers.count(sample['used'])} of "
            f"{numbers.count(sample['of'])} closed outcomes (won and lost drawn at the same "
            "rate); every figure below is of the sample"
        )
    say(
        f"{backtest} ({_window(holdout.get('window'))}, "
        f"{numbers.count(holdout.get('n_won'))} won / {numbers.count(holdout.get('n_lost'))} "
        "lost), scored as sync scores it: AUC "
        f"{_f(holdout.get('auc'))} (95% CI {_ci(holdout.get('auc_ci'))}), "
        f"Brier {_f(holdout.get('brier'), 3)}, "
        f"ECE {_f(holdout.get('ece'), 3)} ({_calibration(holdout.get('ece'))})"
    )
    model, flat = result.holdout_model, result.flattening
    if model.get("auc") is not None and flat:
        kept = flat.get("lift_kept")
        say(
            f"The model behind it: AUC {_f(model.get('auc'))} (95% CI "
            f"{_ci(model.get('auc_ci'))}); the written score keeps "
            + (f"{kept:.0%}" if kept is not None else "-")
            + f" of its lift (clipped at 0: {flat.get('clipped_low', 0):.1%}, at 100: "
            f"{flat.get('clipped_high', 0):.1%}; {flat.get('distinct_written')} distinct "
            f"scores for {flat.get('distinct_model')} model levels; tiers alone AUC "
            f"{_f(flat.get('tier_auc'))})"
        )
    for line in _written_lines(result, "The criteria written"):
        say(line + ".")
    if result.signal:
        say("[bold green]Signal: real lift[/] - the learned criteria separate wins from losses.")
    else:
        say(f"[bold yellow]No signal[/]: {_no_signal(result)}.")
    challenger = result.challenger or {}
    if challenger.get("auc") is not None:
        better = challenger.get("clearly_better")
        note = challenger.get("note") or ("clearly better" if better else "not clearly better")
        say(
            f"Challenger {challenger.get('model', '')}: AUC {_f(challenger.get('auc'))} "
            f"(95% CI {_ci(challenger.get('auc_ci'))}): " + (f"[bold]{note}[/]" if better else note)
        )
    if result.signal:
        console.print(_criteria_table(result.criteria))
    if result.tiers:
        console.print(_tiers_table(result.tiers, result.objective, result.criteria))
    for label, items in (
        ("Segments", result.segments),
        ("Emerging segments", result.emerging),
        ("Anti-patterns", result.anti_patterns),
        ("Loss patterns", result.loss_patterns),
    ):
        top = numbers.listing([_pattern(p) for p in items])
        say(f"{label}: {top or 'none'}")
    leaks = [f"{name}: {why}" for name, why in leaked_features(result.criteria)]
    if not leaks:  # the criteria kept no record of them (no signal): the training result has
        leaks = [
            f"{field_label(d['field'])}: {d['reason']}"
            for d in result.dropped_features
            if "outcome" in d["reason"] or "separates" in d["reason"]
        ]
    if leaks:
        say("[bold]Left out as leaks[/] (they give the outcome away): " + "; ".join(leaks))
    if result.tracking:
        console.print(_tracking_table(result.tracking))
    if outcome.diff:
        console.print(outcome.diff, markup=False, highlight=False, end="")
    gate = result.gate
    if gate and outcome.version is not None:
        lo, hi = gate.get("difference_ci") or [None, None]
        say(
            f"Against the criteria in use on the same holdout: AUC {_f(gate.get('auc_new'))} "
            f"vs {_f(gate.get('auc_active'))} (difference {_f(gate.get('difference'), 3)}, "
            f"95% CI {_f(lo, 3)} to {_f(hi, 3)}): "
            + ("worse" if gate.get("worse") else "not worse")
        )
    if outcome.version is not None and outcome.activated:
        say(
            f"Saved [bold]{outcome.version.name}[/]: {outcome.version.yaml_path} - now the "
            "active criteria; the next sync rescores every account "
            "(icp mappings rollback to undo)."
        )
    for note in outcome.notes:
        say(note[0].upper() + note[1:] + ".")


def _calibration(ece: Any) -> str:
    if ece is None:
        return "calibration unknown"
    if ece <= 0.05:
        return "well calibrated: a score maps to a win probability"
    return f"calibration off by about {float(ece):.0%} on average"


def _criteria_table(criteria: dict[str, Any], limit: int = 10) -> Table:
    table = Table(title="Top learned criteria", title_justify="left")
    scale = criteria.get("scale") or {}
    as_points = scale.get("weights") == "points"
    for column in ("group", "criterion", "points"):
        table.add_column(column, justify="right" if column == "points" else "left")
    groups = criteria.get("criteria") or {}
    rows = [(g, str(c.get("name")), float(c.get("weight", 0))) for g in groups for c in groups[g]]
    total = sum(r[2] for r in rows) or 1.0
    for group, name, weight in sorted(rows, key=lambda r: -r[2])[:limit]:
        value = weight if as_points else (100 - float(scale.get("base") or 0)) * weight / total
        table.add_row(group.replace("_", " "), name, numbers.points(value, True))
    antis = criteria.get("anti_patterns") or []
    for anti in antis[:5]:
        effects = [numbers.points(-anti["penalty"], True)] if anti.get("penalty") else []
        effects += [f"at most tier {anti['cap_tier']}"] if anti.get("cap_tier") else []
        table.add_row("anti-pattern", str(anti.get("name")), ", ".join(effects))
    more = max(len(rows) - limit, 0) + max(len(antis) - 5, 0)
    if more:
        table.caption = f"... and {more} more in the YAML"
    return table


def _tiers_table(
    tiers: list[dict[str, Any]], objective: str, criteria: dict[str, Any] | None = None
) -> Table:
    refit = bool(((criteria or {}).get("learned") or {}).get("refit"))
    title = ("Backtest tiers on the holdout" if refit else "Tiers on the holdout") + (
        " (ranked by expected value)" if objective == "expected_value" else ""
    )
    table = Table(title=title, title_justify="left")
    written = (criteria or {}).get("tiers") or {}
    if refit and written:
        table.caption = "cut-offs of the backtest; the criteria written place theirs on every " + (
            "outcome: " + ", ".join(f"{t} {float(v):g}" for t, v in written.items())
        )
    for column in ("tier", "from score", "share", "closed", "win rate", "95% CI", "ACV", "cycle"):
        table.add_column(column, justify="left" if column == "tier" else "right")
    for t in tiers:
        rate, ci, acv, cycle = t["win_rate"], t["win_rate_ci"], t["acv"], t["cycle_days"]
        table.add_row(
            t["tier"],
            f"{t['threshold']:g}",
            f"{t['share']:.0%}",
            f"{t['closed']:,}",
            "-" if rate is None else f"{rate:.0%}",
            "-" if not ci else f"{ci[0]:.0%}-{ci[1]:.0%}",
            "-" if acv is None else f"{acv:,.0f}",
            "-" if cycle is None else f"{cycle:.0f} d",
        )
    return table


def _pattern(pattern: dict[str, Any]) -> str:
    rate = pattern.get("win_rate")
    figures = [numbers.count(pattern.get("support"), "account")]
    if rate is not None:
        figures.append(f"win rate {float(rate):.0%}")
    return f"{pattern.get('name')} ({', '.join(figures)})"


def _tracking_table(tracking: dict[str, Any]) -> Table:
    table = Table(title="Earlier scores vs outcomes closed since", title_justify="left")
    for column in ("version", "tier", "scored", "won since", "lost since", "win rate", "AUC"):
        table.add_column(column, justify="left" if column in ("version", "tier") else "right")
    for entry in tracking["versions"]:
        rows = [("all", entry), *entry["win_rate_by_tier"].items()]
        for tier, figures in rows:
            rate = figures["win_rate"]
            table.add_row(
                entry["version"] if tier == "all" else "",
                tier,
                f"{figures['scored']:,}",
                numbers.count(figures["closed_won"]),
                numbers.count(figures["closed_lost"]),
                "-" if rate is None else f"{rate:.0%}",
                _f(entry["auc"]) if tier == "all" else "",
            )
    return table
