"""How an attempt ended: one rule, used by the live supervisor and by reconcile after a supervisor died.

The evidence, strongest first: the engine's own record (raport.json's `run_end`, `error`, `stopping`),
the checkpoint it last reported (one taken at the end of the last epoch holds the finished schedule:
validation and the save come before `run_end`), and only then its exit status, which is None when nobody
saw the engine exit (its supervisor was dead). A run the engine recorded as finished is `completed`
whatever killed it afterwards.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Optional

from engine.events import EXIT_OK, EXIT_STOPPED, RunEnd
from rn50tui.jobs.core.states import Status


@dataclass(frozen=True)
class Evidence:
    """What is known of one attempt when no process of it is left."""

    exit_code: Optional[int]  # the engine's exit status; None when nobody saw it exit
    run_end: Optional[RunEnd] = None  # this attempt's run_end record (a plain word compares equal)
    error: Optional[str] = None  # this attempt's error record
    stopping_signal: Optional[str] = None
    checkpoint_epoch: Optional[int] = None  # the last checkpoint the engine reported (any attempt)
    checkpoint_iteration: Optional[int] = None
    epochs: Optional[int] = None  # the schedule's length


def schedule_finished(checkpoint_epoch: Optional[int], checkpoint_iteration: Optional[int],
                      epochs: Optional[int]) -> bool:  # fmt: skip
    """True if a checkpoint at (epoch, iteration) holds every epoch of an `epochs`-long schedule."""
    return (
        bool(epochs)
        and checkpoint_epoch is not None
        and checkpoint_epoch >= epochs
        and not checkpoint_iteration
    )


def finished(e: Evidence) -> bool:
    """The engine's record, or its checkpoint, says the run is done."""
    return e.run_end == RunEnd.COMPLETED or schedule_finished(
        e.checkpoint_epoch, e.checkpoint_iteration, e.epochs
    )


def verdict(e: Evidence, *, cancelled: bool = False, killed: bool = False, supervisor_signal: Optional[str] = None,
            lost: Optional[str] = None) -> tuple[Status, Optional[str]]:  # fmt: skip
    """The attempt's final status and its one-line reason (None when completed).

    `cancelled`: a user asked to cancel; `killed`: SIGKILLed after the grace period; `supervisor_signal`:
    the signal that made the supervisor stop the engine; `lost`: why reconcile decides instead.
    """
    if finished(e) or (e.exit_code == EXIT_OK and e.run_end is None):
        return Status.COMPLETED, None
    if cancelled:  # an error while stopping (its checkpoint could not be written) must still be seen
        reason = "cancelled" + (" (killed after the grace period)" if killed else "")
        failed = f"; the engine failed while stopping: {e.error}" if e.error else ""
        return Status.CANCELLED, reason + failed
    if supervisor_signal is not None:
        return Status.INTERRUPTED, f"the supervisor received {supervisor_signal}; the engine was stopped"
    if e.exit_code is None:  # the supervisor died: only the engine's record speaks
        if e.run_end == RunEnd.FAILED:
            return Status.FAILED, e.error or "the engine failed"
        return Status.INTERRUPTED, lost or "its supervisor is gone; the job was not restarted"
    if e.exit_code == EXIT_STOPPED or e.run_end == RunEnd.STOPPED:
        sig = e.stopping_signal or "a signal"
        return (
            Status.INTERRUPTED,
            f"the engine was stopped by {sig} from outside rn50tui; resume continues it",
        )
    if e.error:
        return Status.FAILED, e.error
    if e.exit_code < 0:
        return Status.FAILED, f"the engine was killed by {_signal_name(-e.exit_code)}"
    return Status.FAILED, f"the engine exited with {e.exit_code}"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
