"""How numbers, durations, progress and ETAs read in the app: the one view of a job
(rn50tui/jobs/view.py, which the CLI renders too) with the app's glyphs and styles."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Optional

from rn50tui.jobs import view
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import Job
from rn50tui.jobs.executors import DEFAULT_EXECUTOR
from rn50tui.jobs.policy.stall import StallFacts, StallMark, flag

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
    """42s, 3m05s, 1h02m, 2d03h (the view's one format)."""
    return NONE if seconds is None else view.duration(seconds)


def clock_time(ts: Optional[float], now: float) -> str:
    """HH:MM:SS for today, MM-DD HH:MM before (local time)."""
    if ts is None:
        return NONE
    t, today = time.localtime(ts), time.localtime(now)
    same_day = (t.tm_year, t.tm_yday) == (today.tm_year, today.tm_yday)
    return time.strftime("%H:%M:%S" if same_day else "%m-%d %H:%M", t)


def run_time(job: Job, now: float) -> Optional[float]:
    """Training time over every attempt (the current one to now)."""
    return view.ran_seconds(job, now)


def ran(job: Job, now: float) -> str:
    """`1m02s`, `1m02s (3 attempts)`."""
    return view.view(job, now).ran or NONE


def batch_size(argv: Sequence[str]) -> Optional[int]:
    """The per-card batch an engine argv runs with, as the engine's parser reads it."""
    return view.batch_size(argv)


def eta_seconds(job: Job, now: float) -> Optional[float]:
    """Seconds left (rn50tui.jobs.view.eta_seconds; None while stalled)."""
    return view.eta_seconds(job, now)


def cards(job: Job) -> str:
    """cpu:0, mlu:0,1, or cuda×4 while not granted yet."""
    return view.cards(job)


def where(job: Job) -> str:
    """` · slurm 12 RUNNING node[1-2]` for a job that runs elsewhere; nothing for a local one."""
    return "" if job.executor == DEFAULT_EXECUTOR else f" · {view.where(job)}"


def epoch(job: Job) -> str:
    """2/3 · 17/30: epoch of epochs, iteration of iterations per epoch (— for an inference job)."""
    return view.epoch(job) or NONE


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
    """The stall mark of a job (rn50tui.jobs.policy.stall.flag), or None."""
    return flag(job, now)


def stall_label(mark: StallMark) -> str:
    """`⚠ stall 12m` / `⚠ hung 3m`: fits the status column."""
    kind = "stall" if mark.kind == "stalled" else "hung"
    s = int(mark.for_s)
    return f"⚠ {kind} " + (f"{s}s" if s < 60 else f"{s // 60}m" if s < 3600 else f"{s // 3600}h")
