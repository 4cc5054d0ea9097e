"""What the app tells the user wherever they are: a job reached a final state, or stalled.

:class:`JobAlerts` compares each watch of the active jobs (queued, starting, running) with the previous
one: a job that left them is read once to learn how it ended; a job newly marked stalled is news. The
first watch only sets the baseline (jobs that ended before the app opened are not news).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

from rn50tui.app import fmt
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import Job, JobSummary

SEVERITY = {Status.COMPLETED: "information", Status.FAILED: "error", Status.CANCELLED: "warning",
            Status.INTERRUPTED: "warning"}  # fmt: skip

AnyJob = Union[Job, JobSummary]


@dataclass(frozen=True)
class Alert:
    title: str
    message: str
    severity: str


class JobAlerts:
    """Remembers each active job's status and stall kind between watches; reports what changed."""

    def __init__(self) -> None:
        self.seen: Optional[dict[int, tuple[Status, Optional[str]]]] = None

    def gone(self, active: Sequence[AnyJob]) -> list[int]:
        """The jobs active at the last watch that are not now: read them to learn how they ended."""
        if self.seen is None:
            return []
        now_active = {j.id for j in active}
        return sorted(i for i in self.seen if i not in now_active)

    def changes(self, active: Sequence[AnyJob], ended: Sequence[AnyJob], now: float) -> list[Alert]:
        """The alerts of this watch: `active` as read now, `ended` the jobs of gone() read again."""
        current = {j.id: (j.status, _stall_kind(j, now)) for j in active}
        previous, self.seen = self.seen, current
        if previous is None:
            return []
        alerts = [self._final(j) for j in ended if j.status in SEVERITY]
        for job in active:
            stalled = current[job.id][1]
            before = previous.get(job.id)
            if stalled and (before is None or before[1] != stalled):
                mark = fmt.stall(job, now)
                alerts.append(Alert(f"job {job.id} {stalled}", f"{job.name}: no progress for "
                                    f"{fmt.duration(mark.for_s if mark else None)}", "warning"))  # fmt: skip
        return alerts

    @staticmethod
    def _final(job: AnyJob) -> Alert:
        detail = f"best top-1 {job.best_top1:.2f}" if job.best_top1 is not None else ""
        if job.error and job.status is not Status.COMPLETED:
            detail = job.error.splitlines()[0]
        return Alert(f"job {job.id} {job.status.value}", f"{job.name}" + (f": {detail}" if detail else ""),
                     SEVERITY[job.status])  # fmt: skip


def _stall_kind(job: AnyJob, now: float) -> Optional[str]:
    mark = fmt.stall(job, now)
    return None if mark is None else mark.kind
