"""The home screen: every job, live, with the keys to start, stop, resume, remove, open and compare."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from rn50tui.app.widgets.jobs_table import JobsTable
from rn50tui.jobs.states import Status
from rn50tui.jobs.store import Job

if TYPE_CHECKING:
    from rn50tui.app.app import Rn50App


class JobsScreen(Screen):
    """The jobs table, a filter line and a one-line summary; the app feeds it every jobs poll."""

    HELP_TITLE = "jobs"
    BINDINGS = [
        Binding("n", "app.new_job", "New"),
        Binding("o", "open", "Open"),
        Binding("l", "logs", "Logs"),
        Binding("c", "cancel", "Cancel"),
        Binding("r", "resume", "Resume"),
        Binding("d", "delete", "Delete"),
        Binding("space", "mark", "Mark"),
        Binding("C", "compare", "Compare"),
        Binding("D", "app.devices", "Devices"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    @property
    def rn50(self) -> Rn50App:
        return cast("Rn50App", self.app)

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

    def on_screen_resume(self) -> None:
        self.jobs_loaded(self.rn50.jobs, self.rn50.clock.now())

    def jobs_loaded(self, jobs: Sequence[Job], now: float) -> None:
        """The app's poll read `jobs`: update rows in place and the summary."""
        self.table.show(jobs, now)
        self._summarise(jobs)

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

    def _selected(self) -> int | None:
        jid = self.table.cursor_job_id
        if jid is None:
            self.notify("no job selected", severity="warning")
        return jid

    def action_open(self) -> None:
        if (jid := self._selected()) is not None:
            self.rn50.action_open_job(jid)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.rn50.action_open_job(int(event.row_key.value))

    def action_logs(self) -> None:
        if (jid := self._selected()) is not None:
            self.rn50.action_open_job(jid, "log")

    def action_cancel(self) -> None:
        if (jid := self._selected()) is not None:
            self.rn50.action_cancel_job(jid)

    def action_resume(self) -> None:
        if (jid := self._selected()) is not None:
            self.rn50.action_resume_job(jid)

    def action_delete(self) -> None:
        if (jid := self._selected()) is not None:
            self.rn50.action_delete_job(jid)

    def action_mark(self) -> None:
        self.table.toggle_mark()
        self._summarise(list(self.table.jobs.values()))

    def action_compare(self) -> None:
        marked = sorted(self.table.marked)
        if len(marked) < 2:
            self.notify("mark two or more jobs with space, then press C", severity="warning")
            return
        self.rn50.action_compare(*marked)

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
