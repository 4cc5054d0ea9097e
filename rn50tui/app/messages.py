"""The requests a screen (or the command palette) sends up to the app, and what the app tells a screen.

Screens post these and never call the app: the app decides how a request is carried out (a confirm
dialog, a worker, a new screen), as harlequin's components do. They bubble from a screen to the app.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.message import Message
from textual.worker import Worker


class JobRequest(Message):
    """A request about one job."""

    def __init__(self, job_id: int, what: str = "") -> None:
        super().__init__()
        self.job_id = job_id
        self.what = what  # how the sender names it, e.g. "(demo, running)", for a confirm question


class CancelJob(JobRequest):
    """Stop a job (a running one checkpoints first); the app asks for confirmation."""


class ResumeJob(JobRequest):
    """Queue the next attempt of a stopped job."""


class ExportJob(JobRequest):
    """Export a completed training job's best checkpoint (ONNX, checked) as a job of its own."""


class DeleteJob(JobRequest):
    """Remove a finished job from the store; the app asks for confirmation."""


class OpenJob(JobRequest):
    """Show one job's detail screen, on the given tab."""

    def __init__(self, job_id: int, tab: str = "charts") -> None:
        super().__init__(job_id)
        self.tab = tab


class CompareJobs(Message):
    def __init__(self, job_ids: Sequence[int]) -> None:
        super().__init__()
        self.job_ids = list(job_ids)


class NewJob(Message):
    """Open the new-job form."""


class ShowDevices(Message):
    """Open the devices screen."""


class WorkerFailed(Message):
    """A screen's worker raised: the app shows it (a refusal as a toast, anything else in full)."""

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker


class StoreChanged(Message, bubble=False):
    """Sent by the app to the screen on top: the store changed (opened, a request done); poll now."""


class JobSubmitted(Message, bubble=False):
    """Sent by the app to the screen on top: a job was just queued from the form."""

    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id


class JobAlert(Message):
    """Sent to the app by its job watch: a job ended or stalled; the app shows a toast on any screen."""

    def __init__(self, title: str, message: str, severity: str) -> None:
        super().__init__()
        self.title, self.message, self.severity = title, message, severity
