"""`rn50tui logs JOB [-f]`: a job's stdout, stderr or supervisor log."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Optional

from rn50tui.commands.common import CliError, manager
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.workspace import LOG_STREAMS, LogTail, last_lines


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `logs` on the CLI's subparsers."""
    lg = sub.add_parser("logs", parents=[common], help="print a job's output (-f to follow)",
                        description="Print the engine's stdout of a job (or its stderr, or the supervisor's log).")  # fmt: skip
    lg.add_argument("job", type=int, help="job id")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    lg.add_argument("-n", "--lines", type=int, default=None, metavar="N", help="start with the last N lines")
    lg.add_argument("--stream", choices=LOG_STREAMS, default="stdout",
                    help="which log (default stdout)")  # fmt: skip
    lg.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    jm = manager(args)
    path = jm.log_path(args.job, args.stream)
    if not path.exists():
        job = jm.get_job(args.job)
        note = _not_started(jm, job)
        if note is not None and not (args.follow and job.status is Status.QUEUED):
            raise CliError(note)
        print(note or f"job {job.id} is {job.status.value}: no {args.stream} output yet", file=sys.stderr)
    tail = LogTail(path)
    first = tail.read(partial=True)
    _write(first if args.lines is None else last_lines(first, args.lines))
    while args.follow:
        _write(tail.read())
        job = jm.get_job(args.job)
        if job.status.terminal:
            _write(tail.read(partial=True))  # what was written while the job ended
            note = None if path.exists() else _not_started(jm, job)
            if note is not None:  # e.g. cancelled while it waited in the queue
                raise CliError(note)
            break
        time.sleep(0.5)
    return 0


def _not_started(jm: Any, job: Any) -> Optional[str]:
    """What to say about a job that has no engine output because it never started; None if it did."""
    if job.status is Status.QUEUED:
        return f"job {job.id} has not started: it is queued; {jm.wait_reason(job.id)}"
    if job.status.terminal and job.engine_pid is None:
        why = f": {job.error.splitlines()[0]}" if job.error else ""
        return f"job {job.id} never started: it is {job.status.value}{why}"
    return None


def _write(data: bytes) -> None:
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
