"""The command palette's job commands: "resume job 12", "open job 3", "new job", "devices", …

Each command posts the same request a key would (rn50tui.app.messages); the jobs are read once, in a
thread, when the palette opens, and only what each job's status allows is offered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import partial
from typing import Any, Callable

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.message import Message

from rn50tui.app.messages import CancelJob, DeleteJob, ExportJob, NewJob, OpenJob, ResumeJob, ShowDevices
from rn50tui.app.services import Services
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobSummary

Command = tuple[str, Message, str]  # (text, the request it posts, help)
PALETTE_JOBS = 200  # the active jobs and this many of the newest are offered


def job_commands(job: JobSummary) -> Iterator[Command]:
    """What can be done to one job now."""
    what = f"({job.name}, {job.status.value})"
    label = f"job {job.id} {what}"
    yield f"open job {job.id}", OpenJob(job.id), f"charts, cards, log of {label}"
    yield f"logs of job {job.id}", OpenJob(job.id, "log"), f"follow the log of {label}"
    if job.status.active or job.status is Status.QUEUED:
        yield f"cancel job {job.id}", CancelJob(job.id, what), f"stop {label} (it checkpoints)"
    if job.status.resumable:
        yield f"resume job {job.id}", ResumeJob(job.id), f"next attempt of {label}"
    if job.kind == "train" and job.status is Status.COMPLETED:
        yield f"export job {job.id}", ExportJob(job.id, what), f"{label}'s best checkpoint as ONNX, checked"
    if not job.status.active:
        yield f"delete job {job.id}", DeleteJob(job.id, what), f"remove {label} (files stay)"


def app_commands() -> Iterator[Command]:
    yield "new job", NewJob(), "open the new-job form"
    yield "devices", ShowDevices(), "every card on the host, live, and who holds it"


def job_commands_provider(services: Services) -> Callable[[], type[Provider]]:
    """The palette's provider class, bound to the app's services (Textual builds providers itself)."""

    class JobCommands(Provider):
        """Job actions for the command palette."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.jobs: list[JobSummary] = []

        async def startup(self) -> None:
            client = services.client
            if client is not None:
                self.jobs = await asyncio.to_thread(client.job_summaries, recent=PALETTE_JOBS)

        def commands(self) -> Iterator[tuple[str, Callable[[], object], str]]:
            found = [*app_commands(), *(c for job in reversed(self.jobs) for c in job_commands(job))]
            for text, message, help_text in found:
                yield text, partial(self.app.post_message, message), help_text
            yield "help", partial(self.app.run_action, "help"), "the keys of this screen"

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

    return lambda: JobCommands
