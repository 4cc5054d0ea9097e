"""How numbers, durations, progress and ETAs read in the app; pure functions of a job and a time."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Optional

from rn50tui.jobs.executors import DEFAULT_EXECUTOR, describe
from rn50tui.jobs.stall import StallFacts, StallMark, flag
from rn50tui.jobs.states import Status
from rn50tui.jobs.store import Job

NONE = "—"  # a value the store does not have (yet)

STATUS_STYLES = {
    Status.QUEUED: "yellow",
    Status.STARTING: "cyan",
    Status.RUNNING: "bold green",
    Status.COMPLETED: "blue",
    Status.FAILED: "bold red",
    Status.CANCELLED: "magenta",
    Status.INTERRUPTED: "red",
}


def num(value: Optional[float], spec: str = ".4f") -> str:
    return NONE if value is None else format(value, spec)


def duration(seconds: Optional[float]) -> str:
    """42s, 3m05s, 1h02m, 2d03h."""
    if seconds is None:
        return NONE
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def clock_time(ts: Optional[float], now: float) -> str:
    """HH:MM:SS for today, MM-DD HH:MM before (local time)."""
    if ts is None:
        return NONE
    t, today = time.localtime(ts), time.localtime(now)
    same_day = (t.tm_year, t.tm_yday) == (today.tm_year, today.tm_yday)
    return time.strftime("%H:%M:%S" if same_day else "%m-%d %H:%M", t)


def run_time(job: Job, now: float) -> Optional[float]:
    """How long the current attempt has run (to its end, once finished)."""
    if job.started_at is None:
        return None
    end = job.finished_at if job.status.terminal and job.finished_at else now
    return max(0.0, end - job.started_at)


def batch_size(argv: Sequence[str]) -> Optional[int]:
    """The per-card batch (-b / --batch-size) of an engine argv; the last one wins, as in argparse."""
    found = None
    for i, token in enumerate(argv):
        flag, eq, value = token.partition("=")
        if flag in ("-b", "--batch-size"):
            raw = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
            found = int(raw) if raw.isdigit() else found
    return found


def eta_seconds(job: Job, now: float) -> Optional[float]:
    """Seconds left: the supervisor's estimate (iterations, validation passes and checkpoints timed on this
    job: rn50tui/jobs/eta.py), else remaining images / images per second, else the elapsed-time rate."""
    if job.status is not Status.RUNNING or not job.epochs or not job.iters_per_epoch or not job.epoch:
        return None
    if job.stalled_at:
        return None  # no progress: no honest ETA
    if job.eta_end:
        return max(0.0, job.eta_end - now)
    total = job.epochs * job.iters_per_epoch
    done = (job.epoch - 1) * job.iters_per_epoch + (job.iteration or 0)
    remaining = max(0, total - done)
    batch = batch_size(job.argv)
    if job.ips and batch:
        return remaining * batch * max(1, job.world_size or job.cards_requested) / job.ips
    elapsed, progress = run_time(job, now), job.progress
    if elapsed and progress:
        return elapsed * (1 - progress) / progress
    return None


def cards(job: Job) -> str:
    """cpu:0, mlu:0,1, or cuda×4 while not granted yet."""
    if job.cards_granted:
        return f"{job.device}:{','.join(map(str, job.cards_granted))}"
    return f"{job.device}×{job.cards_requested}"


def where(job: Job) -> str:
    """` · slurm 12 RUNNING node[1-2]` for a job that runs elsewhere; nothing for a local one."""
    return "" if job.executor == DEFAULT_EXECUTOR else f" · {describe(job)}"


def epoch(job: Job) -> str:
    """2/3 · 17/30: epoch of epochs, iteration of iterations per epoch."""
    if not job.epoch or not job.epochs:
        return NONE
    text = f"{job.epoch}/{job.epochs}"
    if job.iters_per_epoch and job.status.active:
        text += f" · {job.iteration or 0}/{job.iters_per_epoch}"
    return text


def progress_bar(fraction: Optional[float], width: int = 10) -> str:
    """██████░░░░  62%."""
    if fraction is None:
        return NONE
    filled = round(fraction * width)
    return f"{'█' * filled}{'░' * (width - filled)} {100 * fraction:3.0f}%"


def ips(value: Optional[float]) -> str:
    if value is None:
        return NONE
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def mib(value: Optional[float]) -> str:
    if value is None:
        return NONE
    return f"{value / 1024:.1f} GiB" if value >= 1024 else f"{value:.0f} MiB"


def stall(job: StallFacts, now: float) -> Optional[StallMark]:
    """The stall mark of a job (rn50tui.jobs.stall.flag), or None."""
    return flag(job, now)


def stall_label(mark: StallMark) -> str:
    """`⚠ stall 12m` / `⚠ hung 3m`: fits the status column."""
    kind = "stall" if mark.kind == "stalled" else "hung"
    s = int(mark.for_s)
    return f"⚠ {kind} " + (f"{s}s" if s < 60 else f"{s // 60}m" if s < 3600 else f"{s // 3600}h")
