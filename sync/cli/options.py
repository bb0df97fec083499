"""What every `icp` command shares: options defined once, and the error boundary."""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import psycopg
from icp_engine.connectors.errors import ConnectorError
from icp_engine.sync.config import CRMS
from icp_engine.sync.logs import configure, guard_streams, log_format
from icp_engine.sync.progress import progress_for
from icp_engine.sync.runner import exit_code_for
from icp_engine.sync.state.lock import LockedError
from icp_engine.sync.state.postgres import redact_text, state_url
from icp_engine.sync.state.records import StateError
from icp_engine.sync.yamlfile import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("icp")


def state_default() -> Path:
    return Path(os.environ.get("ICP_STATE_DIR", ".icp"))


def common(func: F) -> F:
    """Options every command shares (defined once, as pip-tools does).

    The logging options are consumed here (logs are configured and the progress reporter
    opened before the command runs); the command receives `as_json`.
    """

    @functools.wraps(func)
    def configured(*args: Any, log_format: str, verbose: int, quiet: int, **kwargs: Any) -> Any:
        guard_streams()  # every line printed, --json included, is redacted
        configure(log_format, verbose - quiet)
        with progress_for(sys.stderr):
            return func(*args, **kwargs)

    command: Any = configured
    options = [
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="Log format on stderr. json: every line one JSON object (progress and the "
            "summary included), for schedulers.",
        ),
        click.option(
            "-v",
            "--verbose",
            count=True,
            help="More detail on stderr: -v stages with timings, pages read, API calls, batch "
            "outcomes; -vv also every HTTP request.",
        ),
        click.option(
            "-q",
            "--quiet",
            count=True,
            help="For scripts: no progress, only warnings and errors on stderr.",
        ),
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="Print one JSON summary object on stdout instead of tables.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


state_option = click.option(
    "--state",
    "state_dir",
    type=click.Path(path_type=Path),
    default=state_default,
    show_default="./.icp or $ICP_STATE_DIR",
    help="State directory (watermarks, last-written values, failures).",
)
mappings_option = click.option(
    "--mappings",
    "mappings_option",
    type=click.Path(path_type=Path),
    help="Directory of edited mapping files [default: ./mappings if present, else the "
    "bundled files].",
)


def read_options(func: F) -> F:
    """Options of the commands that read a CRM (`train`, `report`; and `sync`, `backfill`)."""
    options = [
        click.option(
            "--crm",
            type=click.Choice(CRMS),
            default="csv",
            show_default=True,
            help="Which CRM to read (and write, for sync and backfill).",
        ),
        mappings_option,
        state_option,
        click.option(
            "--source",
            type=click.Path(path_type=Path),
            help="CSV only: folder with Account.csv and Opportunity.csv.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def crm_options(func: F) -> F:
    """Options of the commands that run against a CRM (`sync`, `backfill`)."""
    out = click.option(
        "--out",
        type=click.Path(path_type=Path),
        help="CSV only: update file [default: SOURCE/icp_updates.csv].",
    )
    shrink = click.option(
        "--allow-shrink",
        is_flag=True,
        help="CSV only: accept an export that lacks half or more of the records the state "
        "knows (they are deleted from state). Without it such a run exits 2.",
    )
    return read_options(out(shrink(func)))


def say(level: str, message: str) -> None:
    """A warning or error for stderr: `error: ...` for people, a JSON line in JSON logs."""
    if log_format() == "json":
        log.log(logging.ERROR if level == "error" else logging.WARNING, "%s", message)
    else:
        click.echo(f"{level}: {message}", err=True)


def fail(code: int, message: str) -> None:
    say("error", message)
    sys.exit(code)


def emit(payload: dict[str, Any], as_json: bool, headline: str, human: Callable[[], None]) -> None:
    """A command's result: `--json` prints `payload` on stdout; with `--log-format json`
    it is one `"event": "summary"` line on stderr (so `>> log 2>&1` stays all JSON);
    otherwise `human()` prints it for people."""
    if as_json:
        click.echo(json.dumps(payload, default=str))
    elif log_format() == "json":
        log.info("%s", headline, extra={"event": "summary", "data": {"summary": payload}})
    else:
        human()


def guarded(func: F) -> F:
    """Turn the engine's errors into messages and exit codes: no traceback for a mistake."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            if log_format() == "json":
                for problem in exc.problems:
                    log.error("%s", problem)
                log.error(
                    "%d problem(s) in the mapping files; nothing was written", len(exc.problems)
                )
                sys.exit(2)
            click.echo(f"error: {len(exc.problems)} problem(s) in the mapping files:", err=True)
            for problem in exc.problems:
                click.echo(f"  {problem}", err=True)
            click.echo("Nothing was written.", err=True)
            sys.exit(2)
        except LockedError as exc:
            fail(4, f"{exc}. Skipped: another run is in progress; try again when it ends.")
        except StateError as exc:
            fail(2, f"{exc}.")
        except sqlite3.Error as exc:  # what the checks on open could not foresee
            fail(
                2,
                f"the state database failed: {exc}. Nothing more was recorded; see `icp "
                "state reset --help` if it persists.",
            )
        except psycopg.Error as exc:  # the PostgreSQL state's server failed mid-command
            text = redact_text(" ".join(str(exc).split()), state_url() or "")
            fail(
                2,
                f"the PostgreSQL state failed: {text}. What was recorded before stays; run "
                "again when the server is back (a killed or failed run is just run again).",
            )
        except ConnectorError as exc:
            fail(exit_code_for(exc), str(exc))
        except OSError as exc:  # a path the user gave that cannot be read or written
            where = f"{exc.filename}: " if exc.filename else ""
            fail(2, f"{where}{exc.strerror or exc}")

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]
