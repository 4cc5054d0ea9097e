"""The Textual app: a thin shell that opens the job store in a worker, hands every screen its services
(client, clock, capacity) and carries out the requests screens post (new, open, cancel, resume, export,
delete, compare, devices) — harlequin's shape: components send messages, the app acts. It also watches the
active jobs and shows a toast, on whatever screen is open, when one ends or stalls.

    from rn50tui.app.app import run_app
    run_app("jobs.db")        # what `rn50tui` with no command does

It holds no state a second window could miss: every screen reads the store itself, every request goes
to the job manager, and quitting leaves every job running (supervisors are detached).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
import traceback
from typing import Any, Callable, ClassVar, Optional

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from rn50tui.app import messages
from rn50tui.app.alerts import JobAlerts
from rn50tui.app.clock import Clock, SystemClock
from rn50tui.app.commands import job_commands_provider
from rn50tui.app.data import AppJobManager
from rn50tui.app.screens.compare import CompareScreen
from rn50tui.app.screens.detail import JobDetailScreen
from rn50tui.app.screens.devices import DevicesScreen
from rn50tui.app.screens.dialogs import ConfirmScreen, ErrorScreen, HelpScreen
from rn50tui.app.screens.jobs import JobsScreen
from rn50tui.app.screens.new_job import NewJobScreen
from rn50tui.app.services import FALLBACK_CAPACITY, Services
from rn50tui.jobs.core.errors import JobNotFound, JobsError
from rn50tui.jobs.core.schema import full_disk_hint
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.userconfig import UserConfigError, load_notify

RECONCILE_EVERY_S = 5.0  # a supervisor that died while we watch is noticed this quickly
ALERTS_EVERY_S = 1.0  # a job that ends or stalls is told this quickly, whatever the screen


class Rn50App(App[int]):
    """rn50tui: launch, watch, stop, resume and compare training jobs."""

    CSS_PATH = "app.tcss"
    TITLE = "rn50tui"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(
        self, db_path: str | os.PathLike[str], *, clock: Optional[Clock] = None,
        capacity: Optional[dict[str, int]] = None, poll_scale: float = 1.0,
        sampler_factory: Optional[Callable[[], Any]] = None, bell: Optional[bool] = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.db_path = db_path
        self.services = Services(clock or SystemClock(), poll_scale, dict(capacity or FALLBACK_CAPACITY))
        self.COMMANDS = App.COMMANDS | {job_commands_provider(self.services)}
        self._capacity_given = capacity
        self._sampler_factory = sampler_factory
        self.alerts = JobAlerts()
        self.bell_on_alert = bell  # None: the config file's [notify] bell
        self._alerts_worker: Optional[Worker] = None
        # once open, what was made so far (modules, widgets: most of the heap) is left out of the garbage
        # collector's full passes, which paused the app 40-70 ms every few seconds while keys were answered
        self.freeze_heap = False

    def on_mount(self) -> None:
        self.sub_title = str(self.db_path)
        self.push_screen(JobsScreen(self.services))
        self._open()
        self.set_interval(self.services.scaled(RECONCILE_EVERY_S), self._reconcile)
        self.set_interval(self.services.scaled(ALERTS_EVERY_S), self._watch_jobs)

    # -- the store

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def _open(self) -> None:
        client = AppJobManager(
            self.db_path, capacity=self._capacity_given, sampler_factory=self._sampler_factory
        )
        client.reconcile()  # every client reconciles on start: dead supervisors → interrupted
        if self.bell_on_alert is None:
            try:
                self.bell_on_alert = load_notify().bell
            except UserConfigError as exc:
                self.call_from_thread(self.notify, str(exc), title="config", severity="warning")
                self.bell_on_alert = False
        self.call_from_thread(self._opened, client)
        capacity = client.capacity()  # host detection may run cnmon: after the app is usable
        self.call_from_thread(setattr, self.services, "capacity", capacity)

    def _opened(self, client: AppJobManager) -> None:
        self.services.client = client
        self.sub_title = str(client.db_path)
        self._store_changed()
        self._watch_jobs()  # the alerts' baseline: what ended before the app opened is not news
        if self.freeze_heap:
            self.call_after_refresh(gc.freeze)

    @work(thread=True, exclusive=True, group="reconcile", exit_on_error=False)
    def _reconcile(self) -> None:
        """Notice a supervisor that died while we watch (its job becomes interrupted, its cards free)."""
        if self.services.client is not None and self.services.client.reconcile().changed:
            self.call_from_thread(self._store_changed)

    def _watch_jobs(self) -> None:
        """Start a watch of the active jobs unless one is still reading."""
        if self.services.client is None or (
            self._alerts_worker is not None and self._alerts_worker.is_running
        ):
            return
        self._alerts_worker = self._read_alerts()

    @work(thread=True, group="alerts", exit_on_error=False)
    def _read_alerts(self) -> None:
        """The active jobs (few, however big the store), and once each those that left them since."""
        client = self.services.client
        assert client is not None
        try:
            active = client.job_summaries(recent=0)
            ended = []
            for job_id in self.alerts.gone(active):
                with contextlib.suppress(JobNotFound):  # deleted meanwhile: nothing to tell
                    ended.append(client.get_job(job_id))
        except sqlite3.OperationalError:  # the store busy past its timeout: the next watch reads again
            return
        for alert in self.alerts.changes(active, ended, self.services.clock.now()):
            self.post_message(messages.JobAlert(alert.title, alert.message, alert.severity))

    def on_job_alert(self, msg: messages.JobAlert) -> None:
        self.notify(msg.message, title=msg.title, severity=msg.severity, timeout=10)  # type: ignore[arg-type]
        if self.bell_on_alert:
            self.bell()

    def _store_changed(self) -> None:
        if self.screen_stack:  # not while the app is closing
            self.screen.post_message(messages.StoreChanged())

    # -- requests from screens and the command palette

    def on_new_job(self, _msg: messages.NewJob) -> None:
        def submitted(job_id: Optional[int]) -> None:
            if job_id is not None:
                self.notify(f"job {job_id} queued", title="submitted")
                self.screen.post_message(messages.JobSubmitted(job_id))

        self.push_screen(NewJobScreen(self.services), submitted)

    def on_cancel_job(self, msg: messages.CancelJob) -> None:
        what = " ".join(filter(None, (f"job {msg.job_id}", msg.what)))
        self._confirm(f"Cancel {what}?\nA running job checkpoints, then stops; resume continues it.",
                      lambda: self._request("cancel", msg.job_id))  # fmt: skip

    def on_resume_job(self, msg: messages.ResumeJob) -> None:
        self._request("resume", msg.job_id)

    def on_export_job(self, msg: messages.ExportJob) -> None:
        self._request("export", msg.job_id)

    def on_delete_job(self, msg: messages.DeleteJob) -> None:
        self._confirm(f"Delete job {msg.job_id} and its metrics from the store?\nIts files stay on disk.",
                      lambda: self._request("delete", msg.job_id))  # fmt: skip

    def _confirm(self, question: str, then: Callable[[], object]) -> None:
        self.push_screen(ConfirmScreen(question), lambda yes: then() if yes else None)

    @work(thread=True, group="requests", exit_on_error=False)
    def _request(self, kind: str, job_id: int) -> None:
        """cancel / resume / export / delete in a worker: they take the store's write lock and may wait."""
        client = self.services.client
        if client is None:
            raise JobsError("the job store is still opening; try again in a moment")
        if kind == "cancel":
            job = client.cancel(job_id)
            # cancelled at once (a queued job): the job alert says so, one toast for one cancel
            said = None if job.status is Status.CANCELLED else f"job {job_id}: stopping…"
        elif kind == "export":  # a job of its own; refused (a toast) unless the job completed training
            job = client.submit_export(job_id)
            said = f"job {job.id} exports job {job_id} ({job.status.value}); see its Checkpoints tab"
        elif kind == "resume":
            job = client.resume(job_id)
            said = f"job {job_id}: attempt {job.attempt} {job.status.value}"
            if job.status is Status.COMPLETED:  # its engine had finished the run: nothing was started
                said = f"job {job_id}: completed (its engine had already finished the run)"
        else:
            client.delete(job_id)
            said = f"job {job_id} deleted"
        if said:
            self.call_from_thread(self.notify, said)
        self.call_from_thread(self._store_changed)

    # -- views

    def on_open_job(self, msg: messages.OpenJob) -> None:
        self.push_screen(JobDetailScreen(self.services, msg.job_id, msg.tab))

    def on_show_devices(self, _msg: messages.ShowDevices) -> None:
        self.push_screen(DevicesScreen(self.services))

    def on_compare_jobs(self, msg: messages.CompareJobs) -> None:
        self.push_screen(CompareScreen(self.services, msg.job_ids))

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
            self._show_failure(event.worker)

    def on_worker_failed(self, msg: messages.WorkerFailed) -> None:
        self._show_failure(msg.worker)

    def _show_failure(self, worker: Worker) -> None:
        """The one place a worker's failure is shown: a refusal as a toast, anything else in full."""
        error = worker.error
        if worker.group == "open":  # nothing works without the store: say why, in full
            self.push_screen(ErrorScreen(f"cannot open the job store {self.db_path}", str(error)))
            return
        if isinstance(error, JobsError):
            self.notify(str(error).splitlines()[0], title="refused", severity="error", timeout=8)
            return
        if isinstance(error, sqlite3.OperationalError):  # the store cannot be written now (a full disk)
            why = f"cannot write the job store {self.db_path}: {error}{full_disk_hint(self.db_path)}"
            self.notify(why, title="not done", severity="error", timeout=15)
            return
        detail = (
            "".join(traceback.format_exception(error)) if isinstance(error, BaseException) else repr(error)
        )
        self.push_screen(ErrorScreen(f"{worker.name or 'a background task'} failed", detail))


def run_app(db_path: str | os.PathLike[str]) -> int:
    """Open the app on the job store at `db_path` (created when missing); the exit status."""
    app = Rn50App(db_path)
    app.freeze_heap = True  # the app's own process (not a test's)
    app.run()
    return int(app.return_code or 0)
