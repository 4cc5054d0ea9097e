"""Job statuses and the one table of allowed transitions.

    queued → starting → running → completed | failed | cancelled | interrupted
    starting → queued   (a cluster executor submitted it: it waits in the cluster's own queue)
    failed | cancelled | interrupted → queued   (resume: the next attempt, from the last checkpoint)
    failed | cancelled | interrupted → completed   (settled late: the engine's record shows it finished)

Every status change in the store goes through :func:`check_transition`, so a refusal always carries the
same clear message whichever client asked.
"""

from __future__ import annotations

from engine.events import TextEnum
from rn50tui.jobs.core.errors import TransitionError


class Status(TextEnum):
    """A job's status; the value is what `--json` prints."""

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def active(self) -> bool:
        """True while a supervisor owns the job (it holds cards)."""
        return self in (Status.STARTING, Status.RUNNING)

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def resumable(self) -> bool:
        return self in RESUMABLE


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.INTERRUPTED})
RESUMABLE = frozenset({Status.FAILED, Status.CANCELLED, Status.INTERRUPTED})
ACTIVE = frozenset({Status.STARTING, Status.RUNNING})

# The only moves a job may make; anything else is refused by check_transition.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset({Status.STARTING, Status.CANCELLED, Status.FAILED}),
    # → queued: handed to a cluster's scheduler (Slurm), where it waits; the executor's `submitted` says
    # so, and this host's scheduler leaves it alone until the cluster runs it (→ starting → running).
    Status.STARTING: frozenset(
        {Status.QUEUED, Status.RUNNING, Status.FAILED, Status.CANCELLED, Status.INTERRUPTED}
    ),
    Status.RUNNING: frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.INTERRUPTED}),
    Status.COMPLETED: frozenset(),
    # → completed: the engine's own record shows the run finished after all (verdict.py); e.g. its
    # supervisor died during the last validation, or it was killed after writing `run_end completed`.
    Status.FAILED: frozenset({Status.QUEUED, Status.COMPLETED}),
    Status.CANCELLED: frozenset({Status.QUEUED, Status.COMPLETED}),
    Status.INTERRUPTED: frozenset({Status.QUEUED, Status.COMPLETED}),
}


def parse_status(value: str) -> Status:
    """The Status named `value`; TransitionError lists the valid names otherwise."""
    try:
        return Status(value)
    except ValueError:
        names = ", ".join(s.value for s in Status)
        raise TransitionError(f"unknown status {value!r}: use one of {names}") from None


def can_transition(old: Status, new: Status) -> bool:
    return new in TRANSITIONS[old]


def check_transition(job_id: int, old: Status, new: Status) -> None:
    """Raise TransitionError, saying why and what to do instead, unless old → new is allowed."""
    if can_transition(old, new):
        return
    raise TransitionError(refusal(job_id, old, new))


def check_resume(job_id: int, old: Status) -> None:
    """Raise TransitionError unless a job in `old` may be resumed (queued for its next attempt): only
    failed, cancelled and interrupted jobs; starting → queued is a cluster executor's move, not a resume."""
    if old not in RESUMABLE:
        raise TransitionError(refusal(job_id, old, Status.QUEUED))


def refusal(job_id: int, old: Status, new: Status) -> str:
    """The message for a move that TRANSITIONS does not allow."""
    if new is Status.QUEUED:  # a resume
        if old is Status.COMPLETED:
            return (
                f"job {job_id} is completed: there is nothing to resume; start a new job with "
                f"`rn50tui submit` (e.g. --preset ngc-infer to evaluate its checkpoint)"
            )
        if old.active:
            return (
                f"job {job_id} is {old}: it is still going; only failed, cancelled or interrupted jobs resume"
            )
        if old is Status.QUEUED:
            return f"job {job_id} is already queued"
    if new is Status.CANCELLED and old.terminal:
        return f"job {job_id} is already {old}: there is nothing to cancel"
    return f"job {job_id} is {old}: it cannot become {new}"
