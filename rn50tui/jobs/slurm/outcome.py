"""How a Slurm job's state, and what its engine reported, become a job status."""

from __future__ import annotations

from typing import Optional

from rn50tui.jobs.core.states import Status

PENDING_STATES = frozenset(
    {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
)
RUNNING_STATES = frozenset(
    {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING"}
)
INTERRUPTED_STATES = frozenset({"TIMEOUT", "PREEMPTED", "DEADLINE"})
FAILED_STATES = frozenset({"FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "SPECIAL_EXIT", "REVOKED"})
FINAL_STATES = INTERRUPTED_STATES | FAILED_STATES | {"COMPLETED", "CANCELLED"}


def final_status(
    slurm_state: str, run_end: Optional[str], cancel_requested: bool, stop_reason: Optional[str]
) -> tuple[Status, Optional[str]]:
    """The status of a finished Slurm job and why (None for a plain completion).

    `run_end` is the engine's own verdict from raport.json; `stop_reason` what the stop file says
    ("cancel": rn50tui cancel, "signal": Slurm's time-limit signal or scancel reached the batch script).
    """
    if run_end == "completed" and slurm_state in ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT"):
        return Status.COMPLETED, None  # the engine finished its schedule; what came after does not matter
    if cancel_requested:
        return Status.CANCELLED, "cancelled (Slurm job ended " + slurm_state + ")"
    if slurm_state == "COMPLETED":
        return Status.COMPLETED, None
    if slurm_state == "CANCELLED":
        return Status.CANCELLED, "cancelled outside rn50tui (scancel); resume continues it"
    if slurm_state in INTERRUPTED_STATES:
        what = "its time limit" if slurm_state in ("TIMEOUT", "DEADLINE") else "preemption"
        return Status.INTERRUPTED, f"Slurm ended it ({slurm_state}: {what}); resume continues it"
    if run_end == "stopped" and stop_reason == "signal":
        return (
            Status.INTERRUPTED,
            "stopped with a checkpoint before its Slurm time limit; resume continues it",
        )
    if run_end == "stopped":
        return (
            Status.INTERRUPTED,
            "the engine was stopped by a signal from outside rn50tui; resume continues it",
        )
    return Status.FAILED, f"Slurm job {slurm_state.lower() or 'vanished'}"
