"""What the app tells the user wherever they are: a job reached a final state, or stalled.

:class:`JobAlerts` compares each jobs poll with the previous one; the first poll only sets the baseline
(jobs that ended before the app opened are not news).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rn50tui.app import fmt
from rn50tui.jobs.states import Status
from rn50tui.jobs.store import Job

SEVERITY = {Status.COMPLETED: "information", Status.FAILED: "error", Status.CANCELLED: "warning",
            Status.INTERRUPTED: "warning"}  # fmt: skip


@dataclass(frozen=True)
class Alert:
    title: str
    message: str
    severity: str


class JobAlerts:
    """Remembers each job's status and stall mark between polls; reports what changed."""

    def __init__(self) -> None:
        self.seen: Optional[dict[int, tuple[Status, Optional[str]]]] = None

    def changes(self, jobs: list[Job], now: float) -> list[Alert]:
        current = {j.id: (j.status, (fmt.stall(j, now) or {}).get("kind")) for j in jobs}
        previous, self.seen = self.seen, current
        if previous is None:
            return []
        alerts = []
        for job in jobs:
            status, stalled = current[job.id]
            before = previous.get(job.id)
            if status.terminal and (before is None or before[0] != status) and status in SEVERITY:
                alerts.append(self._final(job))
            elif stalled and (before is None or before[1] != stalled):
                mark = fmt.stall(job, now) or {}
                alerts.append(Alert(f"job {job.id} {stalled}", f"{job.name}: no progress for "
                                    f"{fmt.duration(mark.get('for_s'))}", "warning"))  # fmt: skip
        return alerts

    @staticmethod
    def _final(job: Job) -> Alert:
        detail = f"best top-1 {job.best_top1:.2f}" if job.best_top1 is not None else ""
        if job.error and job.status is not Status.COMPLETED:
            detail = job.error.splitlines()[0]
        return Alert(f"job {job.id} {job.status.value}", f"{job.name}" + (f": {detail}" if detail else ""),
                     SEVERITY[job.status])  # fmt: skip
