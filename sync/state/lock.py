"""The lock that lets one run at a time work on a state directory (or write an output file).

`fcntl.flock` on `directory/lock`: the OS releases it when its holder dies, even by
SIGKILL, so there is never a stale lock to clean up. The holder writes its pid, command
and start time into the file, so a refused run can say who holds it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path


class LockedError(Exception):
    """Another run holds the lock on this state directory; str() says who, since when, where."""

    def __init__(
        self,
        directory: Path | str,
        pid: int | None,
        command: str | None,
        since: str | None,
        what: str | None = None,
    ):
        self.directory, self.pid, self.command, self.since = directory, pid, command, since
        who = f"pid {pid} ({command or 'unknown command'})" if pid else "a process still starting"
        what = what or f"state directory {directory}"
        super().__init__(f"{what} is locked by {who} since {since or '?'}")


class DirectoryLock:
    """An exclusive, non-blocking lock on one directory.

    Args:
        directory: the directory to lock.
        name: the lock file's name inside it.
    """

    def __init__(self, directory: Path, name: str = "lock", what: str | None = None) -> None:
        self.directory = directory
        self.path = directory / name
        self.what = what
        """What the lock guards, for the refusal message (default: the state directory)."""
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock (a no-op if held already).

        Raises:
            LockedError: another process (or another `DirectoryLock` here) holds it.
        """
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            text = os.pread(fd, 65536, 0).decode(errors="replace")
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            try:
                info = json.loads(text)
            except ValueError:
                info = None
            info = info if isinstance(info, dict) else {}  # empty: the holder is just starting
            raise LockedError(
                self.directory, info.get("pid"), info.get("command"), info.get("since"), self.what
            ) from None
        except BaseException:
            os.close(fd)
            raise
        since = datetime.now(UTC).isoformat(timespec="microseconds")
        holder = {"pid": os.getpid(), "command": " ".join(sys.argv), "since": since}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd

    @property
    def held(self) -> bool:
        """Whether this lock object holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Release the lock if held."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)  # while still holding it, so no new holder's details are lost
            os.close(fd)  # closing the only descriptor releases the flock
