"""Times as people read them: local date-times and short durations (the store keeps epoch seconds)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Optional

from rn50tui.jobs import view


def duration(seconds: Optional[float]) -> str:
    """`45s`, `12m05s`, `3h07m`, `2d04h` (rn50tui.jobs.view's one format), `-` for none."""
    return "-" if seconds is None else view.duration(seconds)


def short_duration(seconds: Optional[float]) -> str:
    """One unit, for narrow columns: `45s`, `12m`, `3h`, `2d`."""
    return "-" if seconds is None else view.short_duration(seconds)


def local_time(ts: Optional[float], now: Optional[float] = None) -> str:
    """`2026-11-27 17:40:12 CET (3m12s ago)` in this machine's time zone."""
    if ts is None:
        return "-"
    now = time.time() if now is None else now
    stamp = datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    ago = now - ts
    return f"{stamp} ({duration(ago)} ago)" if ago >= 0 else f"{stamp} (in {duration(-ago)})"


def status_since(job: Any, now: float) -> float:
    """When a job (a Job or JobSummary) entered its status: queued → queued_at, starting/running →
    started_at, finished → finished_at (updated_at for rows that lack it)."""
    status = job.status.value
    when = (
        job.queued_at
        if status == "queued"
        else job.started_at
        if status in ("starting", "running")
        else job.finished_at
    )
    return when or job.updated_at or now
