"""The job manager's exceptions: one class per kind of refusal, each with a message a user can act on."""

from __future__ import annotations

from typing import Optional


class JobsError(Exception):
    """Base class of every error the job manager raises on purpose."""


class StoreError(JobsError):
    """The job store cannot be opened or used (missing file, newer schema, corrupt database)."""


class ReadInterrupted(StoreError):
    """A read stopped by `JobStore.interrupt()` from another thread (its answer was no longer wanted)."""


class StoreMissing(StoreError):
    """A read-only command was pointed at a job store that does not exist yet."""


class JobNotFound(JobsError):
    """No job has that id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job {job_id} (see `rn50tui jobs list`)")
        self.job_id = job_id


class TransitionError(JobsError):
    """A request that the job's current status does not allow (resume a completed job, rm a running one)."""


class SubmitError(JobsError):
    """A submission refused before anything was queued (bad preset, flags, dataset or card count).

    `field` names the submit request's field it is about (preset, cards, device, data, checkpoint,
    engine_flags, executor), so a form can mark that input; None when no single field explains it.
    """

    def __init__(self, message: str, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.field = field


class LaunchError(JobsError):
    """A supervisor or an engine could not be started."""
