"""The `icp` command. Results go to stdout, logs to stderr; errors become exit codes.

Exit codes: 0 done; 1 finished but some records failed (kept, retried next run);
2 bad configuration or usage (nothing written); 3 cannot reach or authenticate to the
CRM; 4 another run holds the lock on the state directory.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
from icp_engine.connectors.arrow_memory import prefer_jemalloc
from icp_engine.sync import criteria_changes, numbers, progress
from icp_engine.sync.cli import preview, render
from icp_engine.sync.cli.mappings import mappings_group
from icp_engine.sync.cli.operate import (
    audiences_group,
    print_status_extra,
    runs_group,
    status_extra,
)
from icp_engine.sync.cli.options import (
    common,
    crm_options,
    emit,
    fail,
    guarded,
    read_options,
    say,
    state_option,
)
from icp_engine.sync.cli.score import score
from icp_engine.sync.config import CRMS, load_config, mappings_dir
from icp_engine.sync.logs import configure, log_format
from icp_engine.sync.operate import RunHooks, config_message, failure_text, train_done
from icp_engine.sync.runner import RunOptions, RunResult, execute, exit_code_for
from icp_engine.sync.state.meta import MetaKeys
from icp_engine.sync.state.store import StateStore, state_location
from icp_engine.sync.versions import VersionError, VersionStore
from icp_engine.sync.yamlfile import ConfigError

log = logging.getLogger("icp")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="icp-engine")
def main() -> None:
    """ICP Engine: score every account against your Ideal Customer Profile and write
    score, tier, segment, reasons and routing back to the CRM, only what changed."""
    configure()  # text logs until a command's own --log-format says otherwise


def _run(
    kind: str,
    dry_run: bool,
    detail: tuple[int, int | None],
    as_json: bool,
    crm: str,
    mappings_option: Path | None,
    state_dir: Path,
    source: Path | None,
    out: Path | None,
    allow_shrink: bool,
    scores_from: str | None = None,
    scores_table: str = "icp_scores",
) -> RunResult:
    prefer_jemalloc()
    hooks = RunHooks(crm, mappings_dir(mappings_option), state_dir, dry_run, kind)
    hooks.before()
    try:
        config = load_config(crm, mappings_dir(mappings_option), state_dir)
    except ConfigError as exc:
        hooks.failed(2, config_message(exc), command="icp mappings validate")
        raise
    for warning in config.warnings:
        log.warning("%s", warning)
    options = RunOptions(
        crm=crm,
        kind="backfill" if kind == "backfill" else "sync",
        state_dir=state_dir,
        dry_run=dry_run,
        source=source,
        out=out,
        allow_shrink=allow_shrink,
        scores_from=scores_from,
        scores_table=scores_table,
    )
    try:
        result = execute(config, options, progress.current())
    except Exception as exc:
        code = exit_code_for(exc)
        look = f"icp sync --crm {crm} --dry-run" if code == 2 else None
        hooks.failed(code, failure_text(exc), config.criteria_label, look)
        raise
    tier = config.mapping.outputs.get("tier")
    hooks.after(result, tier.field if tier else None)
    payload = result.summary()
    summary = None
    if dry_run:
        with StateStore(state_dir) as state:
            runs = state.runs(crm, limit=20)
        summary = preview.summarise(
            result.plan,
            result.scored,
            result.names,
            dict(config.mapping.outputs),
            [name for name, _ in config.icp.tier_order()],
            result.estimate,
            crm,
            runs,
        )
        payload["preview"] = summary.to_json()

    def human() -> None:
        console = render.console()
        if summary is not None:
            preview.render(console, summary)
            rows = len(result.plan.changes) + len(result.plan.skips)
            if rows:
                page = preview.Page(*detail, rows)
                console.print(render.plan_table(result.plan, result.names, page))
        render.run_summary(console, result)
        console.print(f"Criteria: {result.criteria}", highlight=False)

    emit(payload, as_json, render.headline(result), human)
    return result


EXAMPLES_SYNC = """\b
Examples:
  icp sync --crm csv --source ./export            # writes ./export/icp_updates.csv
  icp sync --crm csv --source ./export --dry-run  # the preview: counts, tier moves, detail
  icp sync --crm csv --source ./export -n --limit 20 --page 2
  icp sync --crm salesforce --log-format json     # from a scheduler: all JSON lines
"""


def _run_command(kind: str, help_text: str, epilog: str) -> None:
    """Register `icp sync` or `icp backfill`: the same options, a different pull."""

    @main.command(kind, help=help_text, epilog=epilog)
    @crm_options
    @click.option(
        "-n",
        "--dry-run",
        is_flag=True,
        help="Preview: counts per field, tier moves, segment and route changes, edits left "
        "alone, cost; then the detail. Writes nothing.",
    )
    @click.option(
        "--limit",
        type=click.IntRange(min=1),
        default=render.DIFF_ROWS,
        show_default=True,
        help="With --dry-run: detail rows a page.",
    )
    @click.option(
        "--page", type=click.IntRange(min=1), default=1, help="With --dry-run: which page."
    )
    @click.option("--all", "show_all", is_flag=True, help="With --dry-run: every detail row.")
    @click.option(
        "--scores-from",
        metavar="URL",
        help="Take the scores from this database (a view of `icp score --sql`); only diff "
        "and write.",
    )
    @click.option(
        "--scores-table", default="icp_scores", show_default=True, help="With --scores-from."
    )
    @common
    @guarded
    def command(
        dry_run: bool,
        limit: int,
        page: int,
        show_all: bool,
        as_json: bool,
        **crm: Any,
    ) -> None:
        detail = (page, None if show_all else limit)
        result = _run(kind, dry_run, detail, as_json, **crm)
        sys.exit(result.exit_code)


_run_command(
    "sync",
    "Pull what changed since the last run, rescore, and write back only what changed.",
    EXAMPLES_SYNC,
)
_run_command(
    "backfill",
    "Pull everything, score every account, write every difference (resumable).",
    "\b\nExamples:\n  icp backfill --crm csv --source ./export",
)


EXAMPLES_TRAIN = """\b
Examples:
  icp train --crm csv --source ./export            # learn, save v000N, live unless worse
  icp train --crm csv --source ./export --unit deal  # repeat buyers: one outcome per deal
  icp train --crm csv --source ./export --dry-run  # propose only: the criteria changes
  icp train --crm csv --source ./export -n --yaml-diff  # ... and the full YAML diff
  icp train --crm salesforce --json --min-won 30 --min-lost 30
"""


@main.command(epilog=EXAMPLES_TRAIN)
@read_options
@click.option(
    "-n",
    "--dry-run",
    is_flag=True,
    help="Propose only: the criteria changes as a table; save nothing.",
)
@click.option(
    "--yaml-diff", is_flag=True, help="Also print the full YAML diff against the criteria in use."
)
@click.option(
    "--lookback-days", type=click.IntRange(min=1), help="Closed deals this far back [730]."
)
@click.option("--min-won", type=click.IntRange(min=1), help="Won accounts needed [50].")
@click.option("--min-lost", type=click.IntRange(min=1), help="Lost accounts needed [50].")
@click.option("--min-support", type=click.IntRange(min=1), help="Accounts per segment [30].")
@click.option(
    "--unit",
    type=click.Choice(["account", "deal"]),
    help="One outcome per account (won if any deal won) or per closed deal, for accounts "
    "that buy again and again [account].",
)
@click.option(
    "--activate",
    "force_activate",
    is_flag=True,
    help="Make the new version live even when it ranks the holdout worse than the one in use.",
)
@common
@guarded
def train(
    crm: str,
    mappings_option: Path | None,
    state_dir: Path,
    source: Path | None,
    dry_run: bool,
    yaml_diff: bool,
    lookback_days: int | None,
    min_won: int | None,
    min_lost: int | None,
    min_support: int | None,
    unit: str | None,
    force_activate: bool,
    as_json: bool,
) -> None:
    """Learn the ICP from won and lost deals; save it as a criteria version, live when it
    is not worse than the one in use on the same recent outcomes."""
    from icp_engine.scoring.learn.train import NotEnoughOutcomes, TrainSettings
    from icp_engine.sync.train import print_train, run_train

    prefer_jemalloc()

    chosen = {
        "lookback_days": lookback_days,
        "min_won": min_won,
        "min_lost": min_lost,
        "min_support": min_support,
        "unit": unit,
    }
    settings = TrainSettings()
    for name, value in chosen.items():
        if value is not None:
            setattr(settings, name, value)
    try:
        outcome = run_train(
            crm,
            mappings_dir(mappings_option),
            state_dir,
            source,
            dry_run,
            settings,
            force_activate=force_activate,
        )
    except NotEnoughOutcomes as exc:
        fail(2, f"{exc}. Nothing was saved.")
    except VersionError as exc:
        fail(2, str(exc))
    if not dry_run:
        train_done(crm, mappings_dir(mappings_option), state_dir, outcome)
    for warning in [*outcome.config.warnings, *outcome.result.warnings]:
        say("warning", str(warning))

    def human() -> None:
        console = render.console()
        notes, outcome.notes = outcome.notes, []
        diff, outcome.diff = outcome.diff, ""
        print_train(console, outcome)
        if outcome.result.signal:
            title = (
                "Proposed changes to the criteria in use"
                if dry_run
                else "Changes from the criteria in use until now"
            )
            criteria_changes.render(
                console,
                outcome.config.icp,
                outcome.result.criteria,
                f"{title} ({outcome.config.criteria_label})",
            )
            if diff and yaml_diff:
                console.print(diff, markup=False, highlight=False, end="")
            elif diff:
                console.print("The full YAML diff: add --yaml-diff.", highlight=False)
        for note in notes:
            console.print(note[0].upper() + note[1:] + ".", highlight=False)

    holdout = outcome.result.holdout
    headline = (
        f"train: holdout AUC {numbers.decimal(holdout.get('auc'))}, signal "
        f"{'yes' if outcome.result.signal else 'no'}, "
        + (f"saved {outcome.version.name}" if outcome.version else "nothing saved")
    )
    emit(outcome.payload, as_json, headline, human)


@main.command()
@read_options
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("icp_report.html"),
    show_default=True,
    help="The HTML file to write.",
)
@common
@guarded
def report(
    crm: str,
    mappings_option: Path | None,
    state_dir: Path,
    source: Path | None,
    out: Path,
    as_json: bool,
) -> None:
    """Write one self-contained HTML report of the active model and the current accounts."""
    from icp_engine.sync.train import NoModelError, run_report

    try:
        path, version, config = run_report(
            crm, mappings_dir(mappings_option), state_dir, source, out
        )
    except (NoModelError, VersionError) as exc:
        fail(2, str(exc))
    model = version.name if version is not None else "latest training (no signal)"
    message = f"wrote {path} (model {model}; scored with {config.criteria_label})"
    emit(
        {
            "report": str(path),
            "model": version.name if version is not None else None,
            "criteria": config.criteria_label,
        },
        as_json,
        message,
        lambda: click.echo(message),
    )


@main.command()
@state_option
@click.option("--crm", type=click.Choice(CRMS), help="Only this CRM.")
@click.option("--limit", default=20, show_default=True, help="How many recent runs to show.")
@common
@guarded
def status(
    state_dir: Path,
    crm: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Past runs, watermarks, changes handed over and not yet seen in the CRM, and the
    records still failing."""
    if not StateStore.exists(state_dir):
        where = state_location(state_dir)
        fail(2, f"no state in {where}: nothing has run there yet (see --state, ICP_STATE_URL)")
    with StateStore(state_dir, create=False) as state:
        runs, failures = state.runs(crm, limit), state.failures(crm)
        marks = state.watermark_values(crm)
        pending = state.pending_summary(crm)
        extra = status_extra(state_dir, state.runs(crm, 10_000))
        criteria = {
            name: label
            for name in ([crm] if crm else CRMS)
            if (label := state.get_meta(MetaKeys(name).criteria_label))
        }
    payload = {
        "criteria": criteria,
        "runs": [vars(r) for r in runs],
        "watermarks": [{"crm": c, "object": o, "value": at} for (c, o), at in marks.items()],
        "failures": [vars(f) for f in failures],
        "pending": pending,
        **extra,
    }
    if as_json or log_format() == "json":
        headline = f"status: {numbers.count(len(runs), 'run')}, " + numbers.count(
            len(failures), "record still failing", "records still failing"
        )
        emit(json.loads(json.dumps(payload, default=str)), as_json, headline, lambda: None)
        return
    console = render.console()
    if not runs:
        console.print("No runs yet in this state directory.", highlight=False)
    for table in render.status_tables(runs, marks, failures):
        console.print(table)
    console.print(render.pending_table(pending))
    print_status_extra(console, extra)
    for name, label in criteria.items():
        console.print(f"Criteria used by the last {name} run: {label}", highlight=False)
    store = VersionStore(state_dir)
    if store.versions():
        listed = ", ".join(v.name for v in store.versions())
        active = store.pointer() or "none (the hand-written criteria are in use)"
        console.print(f"Learned versions: {listed}; active: {active}", highlight=False)


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=Path("icp-demo"),
    show_default=True,
    help="Where to put the sample CRM, its state and the output.",
)
@click.option("--accounts", default=2000, show_default=True, help="Sample accounts to generate.")
@common
@guarded
def demo(directory: Path, accounts: int, as_json: bool) -> None:
    """Run the whole loop offline on a generated sample CRM (Salesforce Data Export layout)."""
    from icp_engine.sync.cli.demo import run_demo

    run_demo(directory, accounts, as_json)


@main.group("state")
def state_group() -> None:
    """Look after the state directory."""


@state_group.command("reset", epilog="\b\nExamples:\n  icp state reset --state .icp --yes")
@state_option
@click.option("--yes", is_flag=True, help="Do it without asking.")
@common
@guarded
def state_reset(state_dir: Path, yes: bool, as_json: bool) -> None:
    """Set a damaged state aside and start a new one; the next run rebuilds it from the CRM.

    Says what is lost: the values the engine last wrote (behind `if_unchanged`: until the
    engine writes a field again, a value in the CRM counts as a person's), changes handed
    over in update files and not yet seen in the CRM, failed records, run history. The
    old file is kept beside it as state.sqlite.damaged-<time>.
    """
    from icp_engine.sync.state.reset import reset_state

    report = reset_state(state_dir, yes)
    if as_json:
        click.echo(json.dumps(report, default=str))
        return
    for line in report["lines"]:
        click.echo(line)


main.add_command(mappings_group)
main.add_command(score)
main.add_command(runs_group)
main.add_command(audiences_group)
