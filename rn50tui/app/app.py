"""The Textual app: a thin shell that opens the job store in a worker, polls the jobs a few times a
second, and routes requests (new, cancel, resume, delete) and views (detail, devices, compare, help).

    from rn50tui.app.app import run_app
    run_app("jobs.db")        # what `rn50tui` with no command does

It holds no state a second window could miss: every view is read from the store, every request goes to
the job manager, and quitting leaves every job running (supervisors are detached).
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Any, Callable, ClassVar, Optional

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState, get_current_worker

from rn50tui.app.clock import Clock, SystemClock
from rn50tui.app.commands import JobCommands
from rn50tui.app.data import Client
from rn50tui.app.screens.compare import CompareScreen
from rn50tui.app.screens.detail import JobDetailScreen
from rn50tui.app.screens.devices import DevicesScreen
from rn50tui.app.screens.dialogs import ConfirmScreen, ErrorScreen, HelpScreen
from rn50tui.app.screens.jobs import JobsScreen
from rn50tui.app.screens.new_job import NewJobScreen
from rn50tui.jobs.errors import JobsError
from rn50tui.jobs.states import Status
from rn50tui.jobs.store import Job

RECONCILE_EVERY_S = 5.0  # a supervisor that died while we watch is noticed this quickly
FALLBACK_CAPACITY = {"mlu": 0, "cuda": 0, "cpu": 1}  # until the host's cards are detected


class Rn50App(App[int]):
    """rn50tui: launch, watch, stop, resume and compare training jobs."""

    CSS_PATH = "app.tcss"
    TITLE = "rn50tui"
    COMMANDS = App.COMMANDS | {JobCommands}
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
    ]

    class JobsLoaded(Message):
        """A jobs poll finished (posted from its worker thread)."""

        def __init__(self, jobs: list[Job], now: float) -> None:
            super().__init__()
            self.jobs, self.now = jobs, now

    def __init__(
        self, db_path: str | os.PathLike[str], *, clock: Optional[Clock] = None,
        capacity: Optional[dict[str, int]] = None, poll_scale: float = 1.0,
        sampler_factory: Optional[Callable[[], Any]] = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.db_path = db_path
        self.clock: Clock = clock or SystemClock()
        self.poll_scale = poll_scale
        self.client: Optional[Client] = None
        self.jobs: list[Job] = []
        self.capacity: dict[str, int] = dict(capacity or FALLBACK_CAPACITY)
        self._capacity_given = capacity
        self._sampler_factory = sampler_factory
        self._poll_worker: Optional[Worker] = None
        self._last_reconcile = 0.0

    def scaled(self, seconds: float) -> float:
        return seconds * self.poll_scale

    def on_mount(self) -> None:
        self.sub_title = str(self.db_path)
        self.push_screen(JobsScreen())
        self._open()
        self.set_interval(self.scaled(0.5), self.poll_jobs)

    # -- the store

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def _open(self) -> None:
        client = Client(self.db_path, capacity=self._capacity_given, sampler_factory=self._sampler_factory)
        client.reconcile()  # every client reconciles on start: dead supervisors → interrupted
        self._last_reconcile = time.monotonic()
        self.call_from_thread(self._opened, client)
        capacity = client.capacity()  # host detection may run cnmon: after the app is usable
        self.call_from_thread(setattr, self, "capacity", capacity)

    def _opened(self, client: Client) -> None:
        self.client = client
        self.sub_title = str(client.db_path)
        self.poll_jobs()

    def poll_jobs(self) -> None:
        """Read every job in a worker (unless the previous read is still going)."""
        if self.client is None or (self._poll_worker is not None and self._poll_worker.is_running):
            return
        self._poll_worker = self._load_jobs()

    @work(thread=True, exclusive=True, group="jobs-poll", exit_on_error=False)
    def _load_jobs(self) -> None:
        assert self.client is not None
        if time.monotonic() - self._last_reconcile > RECONCILE_EVERY_S:
            self._last_reconcile = time.monotonic()
            self.client.reconcile()
        jobs = self.client.jobs()
        if not get_current_worker().is_cancelled:
            self.post_message(self.JobsLoaded(jobs, self.clock.now()))

    def on_rn50app_jobs_loaded(self, msg: JobsLoaded) -> None:
        self.jobs = msg.jobs
        if not self.screen_stack:  # a poll that finished while the app was closing
            return
        screen = self.screen
        if isinstance(screen, JobsScreen):  # hidden screens catch up when they come back
            screen.jobs_loaded(msg.jobs, msg.now)

    def find_job(self, job_id: int) -> Optional[Job]:
        return next((j for j in self.jobs if j.id == job_id), None)

    # -- requests

    def action_new_job(self) -> None:
        def submitted(job_id: Optional[int]) -> None:
            if job_id is not None:
                self.notify(f"job {job_id} queued", title="submitted")
                self.poll_jobs()
                if isinstance(self.screen, JobsScreen):
                    self.call_after_refresh(self._select, job_id)

        self.push_screen(NewJobScreen(), submitted)

    def _select(self, job_id: int) -> None:
        if isinstance(self.screen, JobsScreen):
            self.screen.table.select_job(job_id)

    def action_cancel_job(self, job_id: int) -> None:
        job = self.find_job(job_id)
        what = f"job {job_id}" + (f" ({job.name}, {job.status.value})" if job else "")
        self._confirm(f"Cancel {what}?\nA running job checkpoints, then stops; resume continues it.",
                      lambda: self._request("cancel", job_id))  # fmt: skip

    def action_resume_job(self, job_id: int) -> None:
        self._request("resume", job_id)

    def action_delete_job(self, job_id: int) -> None:
        self._confirm(f"Delete job {job_id} and its metrics from the store?\nIts files stay on disk.",
                      lambda: self._request("delete", job_id))  # fmt: skip

    def _confirm(self, question: str, then: Callable[[], object]) -> None:
        self.push_screen(ConfirmScreen(question), lambda yes: then() if yes else None)

    @work(thread=True, group="requests", exit_on_error=False)
    def _request(self, kind: str, job_id: int) -> None:
        """cancel / resume / delete in a worker: they take the store's write lock and may wait."""
        assert self.client is not None
        if kind == "cancel":
            job = self.client.cancel(job_id)
            said = f"job {job_id}: " + ("cancelled" if job.status is Status.CANCELLED else "stopping…")
        elif kind == "resume":
            job = self.client.resume(job_id)
            said = f"job {job_id}: attempt {job.attempt} {job.status.value}"
            if job.status is Status.COMPLETED:  # its engine had finished the run: nothing was started
                said = f"job {job_id}: completed (its engine had already finished the run)"
        else:
            self.client.delete(job_id)
            said = f"job {job_id} deleted"
        self.call_from_thread(self.notify, said)
        self.call_from_thread(self.poll_jobs)

    # -- views

    def action_open_job(self, job_id: int, tab: str = "charts") -> None:
        self.push_screen(JobDetailScreen(job_id, tab))

    def action_devices(self) -> None:
        self.push_screen(DevicesScreen())

    def action_compare(self, *job_ids: int) -> None:
        self.push_screen(CompareScreen(list(job_ids)))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        title = getattr(self.screen, "HELP_TITLE", type(self.screen).__name__)
        self.push_screen(HelpScreen(title, self._keys(self.screen)))

    def _keys(self, screen: Screen) -> list[tuple[str, str]]:
        """The keys the footer shows, plus the hidden ones our own classes declare."""
        keys = []
        for active in screen.active_bindings.values():
            binding = active.binding
            own = binding in type(active.node).__dict__.get("BINDINGS", ())
            if binding.description and (binding.show or own):
                keys.append((self.get_key_display(binding), binding.description))
        keys.append(("ctrl+p", "command palette: type e.g. “resume job 12”"))
        return list(dict.fromkeys(keys))

    # -- failures

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.worker_failed(event.worker, self.screen)

    def worker_failed(self, worker: Worker, screen: Screen) -> None:
        """The one place a worker's failure is shown: a refusal as a toast, anything else in full."""
        error = worker.error
        if worker.group == "open":  # nothing works without the store: say why, in full
            self.push_screen(ErrorScreen(f"cannot open the job store {self.db_path}", str(error)))
            return
        if isinstance(error, JobsError):
            self.notify(str(error).splitlines()[0], title="refused", severity="error", timeout=8)
            return
        detail = (
            "".join(traceback.format_exception(error)) if isinstance(error, BaseException) else repr(error)
        )
        self.push_screen(ErrorScreen(f"{worker.name or 'a background task'} failed", detail))


def run_app(db_path: str | os.PathLike[str]) -> int:
    """Open the app on the job store at `db_path` (created when missing); the exit status."""
    app = Rn50App(db_path)
    app.run()
    return int(app.return_code or 0)
