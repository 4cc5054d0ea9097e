"""``python -m engine.data.prepare SRC DEST [-j N] [--resize N] [--raport-file FILE]``: a prepare as a job.

What `rn50tui data prepare` does, for a supervisor (rn50tui's `submit --kind prepare`): the same
`prepare()`, plus its progress as STATUS `work` records (engine/events.py) in `--raport-file`, which the
supervisor follows as it follows a training run's report; a `run_end` record says how it ended. SIGTERM
(a cancel) stops it as Ctrl-C does: the pool is terminated, the finished classes are kept, and the same
command run again (a resume) continues. The progress bar is drawn only on a terminal.

Exit status: 0 prepared, 1 bad input or a failure (one line on stderr), 75 stopped on a signal.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from engine.events import EXIT_ERROR, EXIT_OK, EXIT_STOPPED, EventWriter, RunEnd

REPORT_EVERY_S = 1.0  # the shortest gap between two `work` records (the last one is always written)


class Stopped(BaseException):
    """A signal asked the prepare to stop (SIGTERM from a cancel, SIGINT, SIGHUP); like KeyboardInterrupt,
    no `except Exception` on the way (a pool's result) takes it for an error."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signal = signal.Signals(signum).name


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.data.prepare", description=__doc__.splitlines()[0])
    p.add_argument("src", metavar="SRC", type=Path, help="folder holding the archives or the extracted tree")
    p.add_argument("dest", metavar="DEST", type=Path, help="empty folder (or an unfinished prepare) to write")
    p.add_argument(
        "-j", "--jobs", type=int, default=os.cpu_count() or 1, metavar="N", help="worker processes"
    )
    p.add_argument("--resize", type=int, default=None, metavar="N", help="shorter side at most N pixels")
    p.add_argument("--raport-file", default=None, metavar="FILE", help="write the progress records here")
    return p


class WorkReport:
    """The `work` records of one attempt: at most one a second, with its rate and time left."""

    def __init__(self, events: EventWriter) -> None:
        self.events = events
        self.started = time.monotonic()
        self.first: Optional[tuple[int, int]] = None  # (bytes, images) when this attempt began
        self.last_at = 0.0
        self.last: Optional[tuple[int, int, int]] = None

    def __call__(self, done: int, total: int, images: int, final: bool = False) -> None:
        self.last = (done, total, images)
        now = time.monotonic()
        if self.first is None:
            self.first, self.started = (done, images), now
        if not final and now - self.last_at < REPORT_EVERY_S and done < total:
            return
        self.last_at = now
        seconds = max(now - self.started, 1e-9)
        rate = (done - self.first[0]) / seconds  # this attempt's bytes/s: earlier attempts' are not timed
        ips = (images - self.first[1]) / seconds
        eta = (total - done) / rate if rate > 0 and done < total else None
        self.events.status("work", done=done, total=total, images=images, ips=round(ips, 1),
                           eta_s=None if eta is None else round(eta, 1))  # fmt: skip

    def finish(self) -> None:
        if self.last is not None:
            _, total, images = self.last
            self(total, total, images, final=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    a = build_parser().parse_args(argv)
    events = EventWriter(a.raport_file)
    report = WorkReport(events)

    def on_signal(signum: int, _frame: Any) -> None:
        raise Stopped(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        code = _run(a, report, events)
    finally:
        events.close()
    return code


def _run(a: argparse.Namespace, report: WorkReport, events: EventWriter) -> int:
    from engine.data.prepare.errors import PrepareError
    from engine.data.prepare.run import prepare

    try:
        if a.jobs < 1 or (a.resize is not None and a.resize < 1):
            raise PrepareError("-j and --resize must be at least 1")
        manifest = prepare(a.src, a.dest, a.jobs, a.resize, say=lambda s: print(s, flush=True),
                           bar=sys.stderr.isatty(), on_progress=report)  # fmt: skip
    except Stopped as stop:
        _quiet_signals()
        events.status("stopping", signal=stop.signal, epoch=0, iteration=0)
        events.status("run_end", status=RunEnd.STOPPED.value)
        print(
            f"stopped by {stop.signal}; run it again to continue (finished classes are kept)", file=sys.stderr
        )
        return EXIT_STOPPED
    except PrepareError as exc:
        _quiet_signals()
        message = str(exc).splitlines()[0]
        events.status("error", message=message)
        events.status("run_end", status=RunEnd.FAILED.value)
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR
    _quiet_signals()
    report.finish()
    events.status("run_end", status=RunEnd.COMPLETED.value)
    counts = manifest["counts"]
    print(f"wrote {a.dest}: {len(manifest['classes'])} classes, {counts['train']:,} train and "
          f"{counts['val']:,} val images; train with: python -m engine.train {a.dest}")  # fmt: skip
    return EXIT_OK


def _quiet_signals() -> None:
    """A second signal while the last records are written must not cut them short."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
