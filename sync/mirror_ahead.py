"""The records mirror of a whole-org run, built by a second process while the run scores.

A streamed run (`sync.streamed`) ends by storing every account and opportunity it read
in the records mirror (`sync.state.mirror`): at a million accounts, 20 seconds of JSON
encoding and compression on one core, after the slices, while the other core idles. What
it stores depends only on the sorted files the pull left in the spill folder. So a second
Python process reads those files while the slices are scored and handed over, and writes
its result to a file in the spill folder: for an object the mirror holds nothing of yet
(a first backfill), the finished parts (`sync.state.parts.built_parts`); otherwise the
encoded rows, which the run merges into the parts it holds. The run stores either in its
own transaction: the state it leaves, and that a killed run leaves none of it, are the
same as when the run encodes the mirror itself.

The process is a plain `python -m` of this module, given its jobs pickled on stdin (not
`multiprocessing`: a fork would copy the run's threads and database connection, and a
spawn re-imports the CLI's `__main__`). It answers on stdout. An error it reports (a
value with no JSON form, a file it cannot read) is raised as the run's own. If it ends
without an answer (killed, out of memory), the run encodes the mirror itself. A run that
fails or is stopped stops it; one whose run died (killed) exits at its next part.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pyarrow as pa
from icp_engine.connectors.arrow_memory import prefer_jemalloc
from icp_engine.sync.spill import SortedFile, to_frame
from icp_engine.sync.state.mirror import encoded_pieces
from icp_engine.sync.state.parts import BuiltPart, built_parts, records_layout
from icp_engine.sync.state.store import StateStore

log = logging.getLogger(__name__)
PARTS_SCHEMA = pa.schema(
    [
        ("first_key", pa.string()),
        ("last_key", pa.string()),
        ("row_count", pa.int64()),
        ("keys", pa.binary()),
        ("data", pa.binary()),
    ]
)
"""One row per built part, in the file the process writes (an Arrow IPC stream)."""


@dataclass(frozen=True)
class MirrorJob:
    """One object's mirror to build: its rows sorted by record id, or how to sort them
    (a sort only the mirror needs is done by the process too), and where the result goes."""

    obj: str
    rows: SortedFile | Callable[[], SortedFile]
    id_column: str
    account_column: str | None
    batch_rows: int
    out: Path
    new_table: bool
    """The mirror holds nothing of `obj`: the process builds the parts themselves.
    Otherwise it encodes the rows (`encoded_pieces`), and the run merges them into the
    parts it holds (which only it can read)."""


@dataclass(frozen=True)
class _Done:
    layouts: list[dict[str, list[str]]]
    """Per job, the row layouts its parts use (`encoded_pieces`)."""
    seconds: float
    peak_bytes: int
    """The process's own peak resident memory (0: not known)."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class MirrorAhead:
    """The process building the mirror of `jobs`; `store` or `stop` it once."""

    def __init__(self, jobs: list[MirrorJob], log_file: Path) -> None:
        self.jobs = jobs
        self._log_file = log_file
        self._started = time.perf_counter()
        with log_file.open("wb") as errors:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
            )
        stdin = self._process.stdin
        assert stdin is not None
        try:
            pickle.dump((os.getpid(), jobs), stdin)
            stdin.close()
        except OSError:  # it ended already: `store` finds no answer
            pass

    @property
    def pid(self) -> int:
        return self._process.pid

    def store(self, state: StateStore, crm: str) -> bool:
        """Wait for the process, then store what it built for each job in `state`.
        False when it ended without an answer (nothing stored: encode the mirror here).

        Raises:
            Exception: the error the process reported, as it raised it.
        """
        answer = self._answer()
        if answer is None:
            log.warning(
                "the second process saving this run's copy of every record in the state "
                "stopped (%s) before it finished: saving it here instead, which takes "
                "longer%s",
                _ended(self._process.returncode),
                _tail(self._log_file),
            )
            return False
        if isinstance(answer, _Failed):
            raise answer.error
        log.debug(
            "records mirror built by a second process in %.1f s (peak %s MB), stored after %.1f s",
            answer.seconds,
            answer.peak_bytes // 2**20,
            time.perf_counter() - self._started,
        )
        for job, layouts in zip(self.jobs, answer.layouts, strict=True):
            if job.new_table:
                state.mirror.add_built(crm, job.obj, read_parts(job.out), layouts)
            else:
                state.mirror.merge_encoded(crm, job.obj, _batches(job.out), layouts)
        return True

    def stop(self) -> None:
        """End the process if it still runs (the run failed or was stopped)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def _answer(self) -> _Done | _Failed | None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            answer = pickle.load(stdout)
        except Exception:  # no answer, or a garbled one
            answer = None
        self._process.wait()
        return answer if isinstance(answer, _Done | _Failed) else None


def read_parts(path: Path) -> Iterator[BuiltPart]:
    """The parts a job's file holds, one at a time."""
    for batch in _batches(path):
        for row in batch.to_pylist():
            yield BuiltPart(**row)


def _batches(path: Path) -> Iterator[pa.Table]:
    with pa.OSFile(str(path), "rb") as source, pa.ipc.open_stream(source) as reader:
        for batch in reader:
            yield pa.Table.from_batches([batch])


def build(job: MirrorJob, run_pid: int | None = None) -> dict[str, list[str]]:
    """Build `job`'s parts, or encode its rows, into `job.out`; the row layouts they use.
    Stops (exits) at a part when `run_pid` is given and is no longer this process's
    parent."""
    rows = job.rows if isinstance(job.rows, SortedFile) else job.rows()
    layouts: dict[str, list[str]] = {}
    frames = (to_frame(table) for table in rows.batches(job.batch_rows))
    pieces = encoded_pieces(frames, job.id_column, job.account_column, layouts)
    layout = records_layout(job.obj)
    results: Iterator[pa.RecordBatch]
    if job.new_table:
        schema = PARTS_SCHEMA
        results = (
            pa.RecordBatch.from_pylist([vars(part)], PARTS_SCHEMA)
            for part in built_parts(layout, pieces)
        )
    else:
        schema = layout.schema
        results = (batch for piece in pieces for batch in piece.cast(layout.schema).to_batches())
    compressed = pa.ipc.IpcWriteOptions(compression="lz4")
    with (
        pa.OSFile(str(job.out), "wb") as sink,
        pa.ipc.new_stream(sink, schema, options=compressed) as out,
    ):
        for batch in results:
            if run_pid is not None and os.getppid() != run_pid:
                os._exit(3)  # the run is gone: nobody will store this
            out.write_batch(batch)
    return layouts


def _ended(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return f" (it said: {text[-500:]})" if text else ""


def _peak_bytes() -> int:
    """This process's peak resident memory (`VmHWM`; 0 where there is no /proc). Not
    `ru_maxrss`: it survives the exec, so it starts at the run's size when started."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # kB
    return 0


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    prefer_jemalloc()  # as the run does (`connectors.arrow_memory`)
    run_pid, jobs = pickle.load(stdin)
    started = time.perf_counter()
    answer: _Done | _Failed
    try:
        layouts = [build(job, run_pid) for job in jobs]
        answer = _Done(layouts, time.perf_counter() - started, _peak_bytes())
    except Exception as exc:  # reported to the run, which raises it
        answer = _Failed(exc)
    try:
        data = pickle.dumps(answer)
    except Exception:  # an error that does not pickle: its type and text
        error = answer.error if isinstance(answer, _Failed) else None
        data = pickle.dumps(_Failed(RuntimeError(f"{type(error).__name__}: {error}")))
    stdout.write(data)
    stdout.flush()


if __name__ == "__main__":  # the answer's classes must pickle by this module's own name
    from icp_engine.sync import mirror_ahead

    mirror_ahead._serve(sys.stdin.buffer, sys.stdout.buffer)
