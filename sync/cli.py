"""The `icp` command. Results go to stdout, logs to stderr; errors become exit codes.

Exit codes: 0 done; 1 finished but some records failed (kept, retried next run);
2 bad configuration or usage (nothing written); 3 cannot reach or authenticate to the
CRM; 4 another run holds the lock on the state directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

import mappings as bundled
from connectors.errors import ConnectorError
from sync import render
from sync.config import CRMS, load_config, locate, mappings_dir, validate_all
from sync.lock import LockedError
from sync.logs import configure
from sync.progress import progress_for
from sync.runner import RunOptions, RunResult, execute, exit_code_for
from sync.state import StateStore
from sync.yamlfile import ConfigError

log = logging.getLogger("icp")
F = TypeVar("F", bound=Callable[..., Any])


def _state_default() -> Path:
    return Path(os.environ.get("ICP_STATE_DIR", ".icp"))


def common(func: F) -> F:
    """Options every command shares (defined once, as pip-tools does)."""
    options = [
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="Log format on stderr (json for schedulers).",
        ),
        click.option("-v", "--verbose", count=True, help="More log detail (-v debug)."),
        click.option("-q", "--quiet", count=True, help="Only warnings and errors in the log."),
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="Print one JSON summary object on stdout instead of tables.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def crm_options(func: F) -> F:
    options = [
        click.option(
            "--crm",
            type=click.Choice(CRMS),
            default="csv",
            show_default=True,
            help="Which CRM to read and write.",
        ),
        click.option(
            "--mappings",
            "mappings_option",
            type=click.Path(path_type=Path),
            help="Directory of edited mapping files [default: ./mappings if present, "
            "else the bundled files].",
        ),
        click.option(
            "--state",
            "state_dir",
            type=click.Path(path_type=Path),
            default=_state_default,
            show_default="./.icp or $ICP_STATE_DIR",
            help="State directory (watermarks, last-written values, failures).",
        ),
        click.option(
            "--source",
            type=click.Path(path_type=Path),
            help="CSV only: folder with Account.csv and Opportunity.csv.",
        ),
        click.option(
            "--out",
            type=click.Path(path_type=Path),
            help="CSV only: update file [default: SOURCE/icp_updates.csv].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _setup(log_format: str, verbose: int, quiet: int) -> None:
    configure(log_format, verbose - quiet)


def _fail(code: int, message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def guarded(func: F) -> F:
    """Turn the engine's errors into messages and exit codes: no traceback for a mistake."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"error: {len(exc.problems)} problem(s) in the mapping files:", err=True)
            for problem in exc.problems:
                click.echo(f"  {problem}", err=True)
            click.echo("Nothing was written.", err=True)
            sys.exit(2)
        except LockedError as exc:
            _fail(4, f"{exc}. Skipped: another run is in progress; try again when it ends.")
        except ConnectorError as exc:
            _fail(exit_code_for(exc), str(exc))
        except OSError as exc:  # a path the user gave that cannot be read or written
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(2, f"{where}{exc.strerror or exc}")

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="icp-engine")
def main() -> None:
    """ICP Engine: score every account against your Ideal Customer Profile and write
    score, tier, segment, reasons and routing back to the CRM, only what changed."""


def _run(
    kind: str,
    dry_run: bool,
    show_all: bool,
    as_json: bool,
    crm: str,
    mappings_option: Path | None,
    state_dir: Path,
    source: Path | None,
    out: Path | None,
) -> RunResult:
    config = load_config(crm, mappings_dir(mappings_option))
    for warning in config.warnings:
        log.warning("%s", warning)
    options = RunOptions(
        crm=crm,
        kind="backfill" if kind == "backfill" else "sync",
        state_dir=state_dir,
        dry_run=dry_run,
        source=source,
        out=out,
    )
    with progress_for(sys.stderr) as progress:
        result = execute(config, options, progress)
    if as_json:
        click.echo(json.dumps(result.summary(), default=str))
    else:
        console = render.console()
        if dry_run:
            console.print(render.plan_table(result.plan, result.names, None if show_all else 50))
        render.run_summary(console, result)
    return result


EXAMPLES_SYNC = """\b
Examples:
  icp sync --crm csv --source ./export            # writes ./export/icp_updates.csv
  icp sync --crm csv --source ./export --dry-run  # show the per-field diff only
  icp sync --crm salesforce --log-format json     # from a scheduler
"""


def _run_command(kind: str, help_text: str, epilog: str) -> None:
    """Register `icp sync` or `icp backfill`: the same options, a different pull."""

    @main.command(kind, help=help_text, epilog=epilog)
    @crm_options
    @click.option("-n", "--dry-run", is_flag=True, help="Show what would change; write nothing.")
    @click.option("--all", "show_all", is_flag=True, help="With --dry-run: list every field.")
    @common
    @guarded
    def command(
        dry_run: bool,
        show_all: bool,
        log_format: str,
        verbose: int,
        quiet: int,
        as_json: bool,
        **crm: Any,
    ) -> None:
        _setup(log_format, verbose, quiet)
        result = _run(kind, dry_run, show_all, as_json, **crm)
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


@main.command()
@click.option(
    "--state",
    "state_dir",
    type=click.Path(path_type=Path),
    default=_state_default,
    show_default="./.icp or $ICP_STATE_DIR",
    help="State directory.",
)
@click.option("--crm", type=click.Choice(CRMS), help="Only this CRM.")
@click.option("--limit", default=20, show_default=True, help="How many recent runs to show.")
@common
@guarded
def status(
    state_dir: Path,
    crm: str | None,
    limit: int,
    log_format: str,
    verbose: int,
    quiet: int,
    as_json: bool,
) -> None:
    """Past runs, watermarks and the records still failing."""
    _setup(log_format, verbose, quiet)
    if not (state_dir / StateStore.FILE_NAME).exists():
        _fail(2, f"no state in {state_dir}: nothing has run there yet (see --state)")
    with StateStore(state_dir) as state:
        runs, marks, failures = state.runs(crm, limit), state.watermarks(crm), state.failures(crm)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "runs": [vars(r) for r in runs],
                    "watermarks": [
                        {"crm": c, "object": o, "value": w.value} for (c, o), w in marks.items()
                    ],
                    "failures": [vars(f) for f in failures],
                },
                default=str,
            )
        )
        return
    console = render.console()
    for table in render.status_tables(runs, marks, failures):
        console.print(table)


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
def demo(
    directory: Path, accounts: int, log_format: str, verbose: int, quiet: int, as_json: bool
) -> None:
    """Run the whole loop offline on a generated sample CRM (Salesforce Data Export layout)."""
    from sync.demo import run_demo

    _setup(log_format, verbose, quiet)
    run_demo(directory, accounts, as_json)


@main.group("mappings")
def mappings_group() -> None:
    """Create, check and compare the mapping files."""


@mappings_group.command("init")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("mappings"))
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def mappings_init(directory: Path, force: bool) -> None:
    """Write editable copies of the default mapping files into DIRECTORY."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in bundled.FILES:
        target = directory / name
        if target.exists() and not force:
            click.echo(f"kept    {target} (exists; --force to replace)")
            continue
        with bundled.default(name).open("rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        click.echo(f"wrote   {target}")


@mappings_group.command("validate")
@click.option(
    "--mappings",
    "mappings_option",
    type=click.Path(path_type=Path),
    help="Directory of mapping files [default: ./mappings, else bundled].",
)
@click.option("--crm", type=click.Choice(CRMS), help="Check only this CRM's mapping with icp.yaml.")
@click.option("--live", is_flag=True, help="Also check the fields against the CRM itself.")
@common
@guarded
def mappings_validate(
    mappings_option: Path | None,
    crm: str | None,
    live: bool,
    log_format: str,
    verbose: int,
    quiet: int,
    as_json: bool,
) -> None:
    """Check every mapping file; report all problems at once (exit 2 if any)."""
    _setup(log_format, verbose, quiet)
    directory = mappings_dir(mappings_option)
    if live and crm in (None, "csv"):
        _fail(2, "--live checks a CRM's own fields: add --crm salesforce or --crm hubspot")
    if live:
        _fail(2, f"--live needs the {crm} connector, which this version does not include yet")
    if crm:
        try:
            warnings = load_config(crm, directory).warnings
            errors: list[Any] = []
        except ConfigError as exc:
            errors, warnings = exc.problems, []
    else:
        errors, warnings = validate_all(directory)
    names = [f"{c}.yaml" for c in ([crm] if crm else CRMS)] + ["icp.yaml"]
    checked = [locate(directory, name)[1] for name in names]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "checked": checked,
                    "errors": [str(e) for e in errors],
                    "warnings": [str(w) for w in warnings],
                }
            )
        )
    else:
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        for error in errors:
            click.echo(f"error: {error}", err=True)
        click.echo(f"checked {', '.join(checked)}: {len(errors)} errors, {len(warnings)} warnings")
    sys.exit(2 if errors else 0)


@mappings_group.command("diff")
@click.option(
    "--mappings",
    "mappings_option",
    type=click.Path(path_type=Path),
    help="Directory of edited mapping files [default: ./mappings].",
)
def mappings_diff(mappings_option: Path | None) -> None:
    """Show how the edited mapping files differ from the bundled defaults."""
    import difflib

    directory = mappings_dir(mappings_option)
    if directory is None:
        click.echo("no ./mappings directory: the bundled files are in use (icp mappings init)")
        return
    for name in bundled.FILES:
        path = directory / name
        if not path.is_file():
            continue
        ours = bundled.default(name).read_text(encoding="utf-8").splitlines(keepends=True)
        theirs = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
        click.echo(
            "".join(difflib.unified_diff(ours, theirs, f"bundled/{name}", str(path))), nl=False
        )


@mappings_group.command("apply")
@click.option("--crm", type=click.Choice(CRMS), default="csv", show_default=True)
@click.option("--mappings", "mappings_option", type=click.Path(path_type=Path))
@guarded
def mappings_apply(crm: str, mappings_option: Path | None) -> None:
    """Create the output fields in the CRM where its API allows; else say what to create."""
    config = load_config(crm, mappings_dir(mappings_option))
    if crm != "csv":
        _fail(2, f"the {crm} connector is not part of this version yet")
    click.echo("CSV exports need no fields created here. In Salesforce, create on Account:")
    for key, spec in config.mapping.outputs.items():
        size = f", length {spec.length}" if spec.length else ""
        scale = f"(18, {spec.scale})" if spec.type == "number" else ""
        click.echo(f"  {spec.field:<20} {spec.type}{scale}{size}   <- {key}")


if __name__ == "__main__":  # pragma: no cover
    main()
