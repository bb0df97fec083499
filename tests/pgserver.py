"""A throwaway PostgreSQL server for the tests: initdb into a temporary directory, pg_ctl
on a Unix socket in it (no TCP port), trust authentication, UTC, removed afterwards.

Uses Debian's `postgresql` package binaries (/usr/lib/postgresql/<version>/bin; `.ci/run`
installs the package when missing). PostgreSQL refuses to run as root, so under root the
server runs as the `postgres` user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SKIP_REASON = (
    "PostgreSQL binaries not found (apt-get install postgresql; .ci/run installs them): "
    "no /usr/lib/postgresql/*/bin/initdb"
)


def binaries() -> Path | None:
    """The newest installed PostgreSQL bin directory, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4])
    )
    return Path(found[-1]).parent if found else None


def _as_user(argv: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield its SQLAlchemy URL (database `icp`); stop and delete it."""
    bindir = binaries()
    if bindir is None:
        raise RuntimeError(SKIP_REASON)
    user = None
    root = Path(tempfile.mkdtemp(prefix="icp-pg-"))
    if os.geteuid() == 0:
        user = "postgres"
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data = root / "data"
    env = {**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    try:
        subprocess.run(
            _as_user(
                [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "icp", "-E", "UTF8"],
                user,
            ),
            check=True,
            capture_output=True,
            env=env,
        )
        options = f"-k {root} -c listen_addresses='' -c timezone=UTC -c fsync=off"
        subprocess.run(
            _as_user(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(root / "log"),
                    "-w",
                    "-o",
                    options,
                    "start",
                ],
                user,
            ),
            check=True,
            capture_output=True,
            env=env,
        )
        subprocess.run(
            [str(bindir / "createdb"), "-h", str(root), "-U", "icp", "icp"],
            check=True,
            capture_output=True,
            env=env,
        )
        yield f"postgresql+psycopg://icp@/icp?host={root}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_user(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], user
                ),
                capture_output=True,
                env=env,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)
