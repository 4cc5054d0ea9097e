"""The command palette's job commands: "resume job 12", "open job 3", "new job", "devices", …

Built from the app's last jobs poll (no store read here), offering only what each job's status allows.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Callable, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from rn50tui.jobs.store import Job

if TYPE_CHECKING:
    from rn50tui.app.app import Rn50App

Command = tuple[str, Callable[[], object], str]  # (text, what it does, help)


def job_commands(app: Rn50App, job: Job) -> Iterator[Command]:
    """What can be done to one job now."""
    label = f"job {job.id} ({job.name}, {job.status.value})"
    yield f"open job {job.id}", partial(app.action_open_job, job.id), f"charts, cards, log of {label}"
    yield f"logs of job {job.id}", partial(app.action_open_job, job.id, "log"), f"follow the log of {label}"
    if job.status.active or job.status.value == "queued":
        yield f"cancel job {job.id}", partial(app.action_cancel_job, job.id), f"stop {label} (it checkpoints)"
    if job.status.resumable:
        yield f"resume job {job.id}", partial(app.action_resume_job, job.id), f"next attempt of {label}"
    if not job.status.active:
        yield f"delete job {job.id}", partial(app.action_delete_job, job.id), f"remove {label} (files stay)"


def app_commands(app: Rn50App) -> Iterator[Command]:
    yield "new job", app.action_new_job, "open the new-job form"
    yield "devices", app.action_devices, "every card on the host, live, and who holds it"
    yield "help", app.action_help, "the keys of this screen"


class JobCommands(Provider):
    """Job actions for the command palette."""

    @property
    def rn50(self) -> Rn50App:
        return cast("Rn50App", self.app)

    def commands(self) -> Iterator[Command]:
        yield from app_commands(self.rn50)
        for job in reversed(self.rn50.jobs):  # newest first
            yield from job_commands(self.rn50, job)

    async def discover(self) -> Hits:
        for text, run, help_text in self.commands():
            if not text.startswith(("logs", "delete")):
                yield DiscoveryHit(text, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, run, help_text in self.commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), run, text=text, help=help_text)
