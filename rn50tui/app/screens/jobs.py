"""The home screen: every job, live, with the keys to start, stop, resume, remove, open and compare."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Optional

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.worker import Worker, get_current_worker

from rn50tui.app.messages import (
    CancelJob,
    CompareJobs,
    DeleteJob,
    JobSubmitted,
    NewJob,
    OpenJob,
    ResumeJob,
    ShowDevices,
)
from rn50tui.app.screens.base import PollingScreen
from rn50tui.app.widgets.jobs_table import JobsTable
from rn50tui.jobs.states import Status
from rn50tui.jobs.store import Job


class JobsScreen(PollingScreen):
    """The jobs table, a filter line and a one-line summary, read from the store a few times a second."""

    POLL_S = 0.5
    HELP_TITLE = "jobs"
    BINDINGS = [
        Binding("n", "new_job", "New"),
        Binding("o", "open", "Open"),
        Binding("l", "logs", "Logs"),
        Binding("c", "cancel", "Cancel"),
        Binding("r", "resume", "Resume"),
        Binding("d", "delete", "Delete"),
        Binding("space", "mark", "Mark"),
        Binding("C", "compare", "Compare"),
        Binding("D", "devices", "Devices"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    class Loaded(Message):
        """A jobs poll finished (posted from its worker thread)."""

        def __init__(self, jobs: list[Job], now: float) -> None:
            super().__init__()
            self.jobs, self.now = jobs, now

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._select_after_load: Optional[int] = None  # a job just submitted: the cursor goes to it

    @property
    def table(self) -> JobsTable:
        return self.query_one(JobsTable)

    def compose(self) -> ComposeResult:
        yield Header()
        yield JobsTable(id="jobs")
        yield Input(placeholder="filter: words in id, name, kind, status, device (Enter keeps, Esc clears)",
                    id="filter")  # fmt: skip
        yield Static("opening the job store…", id="summary")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter").display = False
        self.table.focus()

    def start_poll(self) -> Worker:
        return self._load_jobs()

    @work(thread=True, exclusive=True, group="jobs-poll", exit_on_error=False)
    def _load_jobs(self) -> None:
        jobs = self.client.list_jobs()
        if not get_current_worker().is_cancelled:
            self.post_message(self.Loaded(jobs, self.services.clock.now()))

    def on_jobs_screen_loaded(self, msg: Loaded) -> None:
        """A poll read the jobs: update rows in place and the summary."""
        self.table.show(msg.jobs, msg.now)
        self._summarise(msg.jobs)
        if self._select_after_load in self.table.jobs:
            self.table.select_job(self._select_after_load)
            self._select_after_load = None

    def on_job_submitted(self, msg: JobSubmitted) -> None:
        self._select_after_load = msg.job_id
        self.poll()

    def _summarise(self, jobs: Sequence[Job]) -> None:
        counts = Counter(j.status for j in jobs)
        parts = [f"{counts[s]} {s.value}" for s in Status if counts[s]] or [
            "no jobs yet: press n for a new one"
        ]
        table = self.table
        extra = [f"sort: {table.sort_column} {'↓' if table.sort_reverse else '↑'}"]
        if table.query:
            extra.append(f"filter: {table.query!r} ({table.row_count} shown)")
        if table.marked:
            extra.append(f"marked: {', '.join(map(str, sorted(table.marked)))}")
        self.query_one("#summary", Static).update(" · ".join(parts) + "   " + "  ".join(extra))

    # -- actions on the job under the cursor

    def _selected(self) -> Optional[int]:
        jid = self.table.cursor_job_id
        if jid is None:
            self.notify("no job selected", severity="warning")
        return jid

    def _what(self, job_id: int) -> str:
        job = self.table.jobs.get(job_id)
        return f"({job.name}, {job.status.value})" if job else ""

    def action_new_job(self) -> None:
        self.post_message(NewJob())

    def action_devices(self) -> None:
        self.post_message(ShowDevices())

    def action_open(self) -> None:
        if (jid := self._selected()) is not None:
            self.post_message(OpenJob(jid))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.post_message(OpenJob(int(event.row_key.value)))

    def action_logs(self) -> None:
        if (jid := self._selected()) is not None:
            self.post_message(OpenJob(jid, "log"))

    def action_cancel(self) -> None:
        if (jid := self._selected()) is not None:
            self.post_message(CancelJob(jid, self._what(jid)))

    def action_resume(self) -> None:
        if (jid := self._selected()) is not None:
            self.post_message(ResumeJob(jid))

    def action_delete(self) -> None:
        if (jid := self._selected()) is not None:
            self.post_message(DeleteJob(jid, self._what(jid)))

    def action_mark(self) -> None:
        self.table.toggle_mark()
        self._summarise(list(self.table.jobs.values()))

    def action_compare(self) -> None:
        marked = sorted(self.table.marked)
        if len(marked) < 2:
            self.notify("mark two or more jobs with space, then press C", severity="warning")
            return
        self.post_message(CompareJobs(marked))

    # -- filter

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.table.query = event.value
            self._summarise(list(self.table.jobs.values()))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = bool(event.value)
            self.table.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.table.focus()
