"""The home screen: the jobs (active ones and a window of the rest, more on scroll), live, with the keys to start, stop, resume, remove, open and compare."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Header, Input, Static
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
from rn50tui.app.widgets.footer import KeysFooter
from rn50tui.app.widgets.jobs_table import JobsTable
from rn50tui.app.widgets.text import set_text
from rn50tui.jobs.core.errors import ReadInterrupted
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import SEARCH_MIN, Job


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
        # the screen's, not the table's: the footer then shows the same keys whether the table or the
        # filter box has focus, and is not rebuilt as focus moves (KeysFooter)
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    class Loaded(Message):
        """A jobs poll finished (posted from its worker thread): a whole window (`full`), or what changed
        since the last poll's token."""

        def __init__(self, jobs: list[Job], now: float, *, token: int, window: tuple[str, str, bool],
                     full: bool, removed: Sequence[int] = (), total: Optional[int] = None,
                     counts: Optional[dict[str, int]] = None) -> None:  # fmt: skip
            super().__init__()
            self.jobs, self.now, self.token, self.window, self.full = jobs, now, token, window, full
            self.removed, self.total, self.counts = removed, total, counts

    class More(Message):
        """The window's next page (read ahead of the cursor)."""

        def __init__(self, jobs: list[Job], window: tuple[str, str, bool], offset: int) -> None:
            super().__init__()
            self.jobs, self.window, self.offset = jobs, window, offset

        def update(self, changed: Sequence[Job], removed: Sequence[int]) -> None:
            """A poll's news for a page held ahead: its jobs as they are now, not as they were read."""
            now = {j.id: j for j in changed}
            gone = set(removed)
            self.jobs = [now.get(j.id, j) for j in self.jobs if j.id not in gone]

    PAGE = 100  # jobs per page of the window: active jobs and the newest PAGE at first, more on scroll
    NEAR_END = 20  # rows from the window's far end at which the next page is read

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._select_after_load: Optional[int] = None  # a job just submitted: the cursor goes to it
        self._token: Optional[int] = None  # the store's change counter at the last poll; None: read anew
        self._loaded = self.PAGE  # how deep into the (filtered, sorted) jobs the window reaches
        self._total = 0  # how many jobs match the filter, in the store
        self._counts: dict[str, int] = {}  # jobs per status, in the store
        self._more: Optional[Worker] = None
        self._ahead: Optional[JobsScreen.More] = None  # the next page, read before it is wanted
        self._wanted = False  # the cursor reached the window's end before the next page was read
        self._ahead_timer: Optional[Timer] = None
        self._shown: Optional[tuple[str, str, bool]] = None  # the window (filter, sort) the table shows
        self._unshown: Optional[JobsScreen.Loaded] = None  # a whole window's answer posted, not yet handled
        self._query = ""  # the filter as typed (the table shows the store's answer to it when it comes)
        self._repoll = False  # the window changed while a poll was reading: read it again when that ends
        self._short_filter: Optional[Timer] = None  # a filter of short words, read when no key follows
        self._interrupt: Optional[Callable[[], None]] = None  # stops the poll's store read, while it reads

    @property
    def table(self) -> JobsTable:
        return self.query_one(JobsTable)

    def compose(self) -> ComposeResult:
        yield Header()
        yield JobsTable(id="jobs")
        yield Input(placeholder="filter: words in id, name, kind, status, device (Enter keeps, Esc clears)",
                    id="filter")  # fmt: skip
        yield Static("opening the job store…", id="summary")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#filter").display = False
        self.table.windowed = True
        self.table.focus()
        self.watch(self.table, "sort_column", self._window_changed, init=False)
        self.watch(self.table, "sort_reverse", self._window_changed, init=False)

    def _window(self) -> tuple[str, str, bool]:
        t = self.table
        return self._query, t.sort_column, t.sort_reverse

    def _window_changed(self) -> None:
        """Filter or sort changed: the table shows the store's page for it when it comes. One read at a
        time: a read under way is interrupted (its answer is no longer wanted; a scan of every job for a
        filter's first letters would hold the next filter's answer up), and the latest window is read
        after it — keys typed faster than the store answers start no pile of reads."""
        self._token, self._loaded, self._ahead, self._wanted = None, self.PAGE, None, False
        if self._ahead_timer is not None:  # the old window's next page: not read
            self._ahead_timer.stop()
            self._ahead_timer = None
        if self._more is not None:  # a page of the old window: the new window's pages start afresh
            self._more.cancel()
            self._more = None
        if self.services.client is None:
            return
        if self._worker is not None and self._worker.is_running:
            self._repoll = True
            if (interrupt := self._interrupt) is not None:
                interrupt()
        else:
            self._worker = self.start_poll()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self._worker and event.worker.is_finished and self._repoll:
            self._repoll = False
            self._worker = self.start_poll()

    def poll(self) -> None:
        unshown = self._unshown
        if unshown is not None and unshown.window == self._window():
            return  # this window's answer is read and on its way to the screen: not read a second time
        super().poll()

    def start_poll(self) -> Worker:
        table = self.table
        held = {jid: table.jobs[jid].status for jid in table.active_ids}  # a few: the active jobs
        return self._load_jobs(self._token, self._window(), self._loaded, held)

    @work(thread=True, exclusive=True, group="jobs-poll", exit_on_error=False)
    def _load_jobs(self, token: Optional[int], window: tuple[str, str, bool], depth: int,
                   held: dict[int, Status]) -> None:  # fmt: skip
        client, now = self.client, self.services.clock.now()
        self._interrupt = client.read_interrupter()
        try:
            # token None: the whole window (active jobs and the first pages), filtered and sorted by the store
            if token is None:
                new_token = client.change_token()  # before the read: a change meanwhile is read next time
                query, sort, reverse = window
                jobs, total = client.job_window(query=query, sort=sort, reverse=reverse, limit=depth)
                msg = self.Loaded(jobs, now, token=new_token, window=window, full=True, total=total,
                                  counts=client.status_counts())  # fmt: skip
            else:  # only what changed since the last poll (two index reads when nothing did)
                new_token, changed, removed = client.changed_since(token)
                counts = total = None
                # the summary's figures, only when a job came, went or changed status (not on every
                # progress write of a running job)
                if removed or any(held.get(j.id) is not j.status for j in changed):
                    counts, total = client.status_counts(), client.count_matching(window[0])
                msg = self.Loaded(changed, now, token=new_token, window=window, full=False, removed=removed,
                                  total=total, counts=counts)  # fmt: skip
        except ReadInterrupted:
            return  # a newer window's read follows (_repoll)
        finally:
            self._interrupt = None
        if not get_current_worker().is_cancelled:
            if msg.full:
                self._unshown = msg
            self.post_message(msg)

    def on_jobs_screen_loaded(self, msg: Loaded) -> None:
        """A poll read the jobs: update rows in place and the summary."""
        if msg is self._unshown:
            self._unshown = None
        if msg.window != self._window() or (not msg.full and self._token is None):
            return  # read for an earlier filter or sort: the poll for this one follows
        table = self.table
        if msg.full:
            table.show(msg.jobs, msg.now, query=msg.window[0])
            self._shown = msg.window
            self._total = msg.total or 0
        else:  # changed jobs are updated in place (an older one that now matches joins the window)
            if msg.total is not None:
                self._total = msg.total
            table.merge(msg.jobs, msg.removed, msg.now)
            if self._ahead is not None:
                self._ahead.update(msg.jobs, msg.removed)
        self._token = msg.token
        if msg.counts is not None:
            self._counts = msg.counts
        self._summarise()
        if self._select_after_load in table.jobs:
            table.select_job(self._select_after_load)
            self._select_after_load = None
        if msg.full:
            self._read_ahead()

    # -- the window's next page

    def on_jobs_table_moved(self, _msg: JobsTable.Moved) -> None:
        """The cursor moved or the view scrolled (keys, mouse wheel): near the window's far end, the next page."""
        if self._near_end():
            self._take_page()

    def _near_end(self) -> bool:
        """Whether the cursor or the view is within NEAR_END rows of the window's far end."""
        table = self.table
        row = table.cursor_row
        top, bottom = table.visible_rows
        if table.sort_column == "id" and not table.sort_reverse:  # newest last: older pages come above
            return min(row, top) < self.NEAR_END
        return max(row, bottom) >= table.row_count - self.NEAR_END

    def _take_page(self) -> None:
        """The window's next page into the table: the one read ahead when it is here (no wait on the
        store), else the one on its way or read now; then the page after it is read ahead."""
        ahead = self._ahead
        if ahead is None or ahead.window != self._window() or ahead.offset != self._loaded:
            self._wanted = True
            self.load_more()
            return
        self._ahead, self._wanted = None, False
        self._loaded += self.PAGE
        self.table.add_page(ahead.jobs)
        self._summarise()
        self._read_ahead()

    READ_AHEAD_S = 0.25  # the next page is read this long after a page lands: not while the screen redraws

    def _read_ahead(self) -> None:
        if self._ahead_timer is not None:
            self._ahead_timer.stop()
        self._ahead_timer = self.set_timer(self.READ_AHEAD_S, self.load_more)

    def load_more(self) -> None:
        """Read the window's next page, unless every matching job is held, it is read already or a page
        is on its way."""
        if self.services.client is None or len(self.table.jobs) >= self._total or self._ahead is not None:
            return
        if self._window() != self._shown:  # the filter or sort changed: its first page is not in yet
            return
        if self._more is not None and not self._more.is_finished:  # pending counts: wheel turns come fast
            return
        self._more = self._load_page(self._window(), self._loaded)

    @work(thread=True, exclusive=True, group="jobs-page", exit_on_error=False)
    def _load_page(self, window: tuple[str, str, bool], offset: int) -> None:
        query, sort, reverse = window
        jobs, _ = self.client.job_window(query=query, sort=sort, reverse=reverse, offset=offset,
                                          limit=self.PAGE, active=False)  # fmt: skip
        if not get_current_worker().is_cancelled:
            self.post_message(self.More(jobs, window, offset))

    def on_jobs_screen_more(self, msg: More) -> None:
        if msg.window != self._window() or msg.offset != self._loaded:
            return  # an earlier window's page, or one read twice: a page is never skipped
        self._ahead = msg  # held until the cursor nears the end (at once if it got there first)
        if self._wanted:
            self._take_page()

    def on_job_submitted(self, msg: JobSubmitted) -> None:
        self._select_after_load = msg.job_id
        self.poll()

    def _summarise(self) -> None:
        counts = self._counts
        parts = [f"{counts[s.value]} {s.value}" for s in Status if counts.get(s.value)] or [
            "no jobs yet: press n for a new one"
        ]
        table = self.table
        extra = [f"sort: {table.sort_column} {'↓' if table.sort_reverse else '↑'}"]
        held = len(table.jobs)
        if table.query:
            extra.append(f"filter: {table.query!r} ({table.row_count} shown of {self._total})")
        elif held < self._total:
            extra.append(f"{held} of {self._total} loaded (scroll for more)")
        if table.marked:
            extra.append(f"marked: {', '.join(map(str, sorted(table.marked)))}")
        text = " · ".join(parts) + "   " + "  ".join(extra)
        set_text(self.query_one("#summary", Static), text)  # not on every poll: only when it changed

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
        self._summarise()

    def action_sort(self) -> None:
        self.table.action_cycle_sort()

    def action_reverse_sort(self) -> None:
        self.table.action_reverse_sort()

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

    SHORT_FILTER_S = 0.15  # a filter of only short words waits this long for the next key

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._query = event.value  # the table shows the store's answer (held rows are not filtered first)
            if self._short_filter is not None:
                self._short_filter.stop()
                self._short_filter = None
            words = event.value.split()
            if words and all(len(w) < SEARCH_MIN for w in words):
                # words the search index cannot look up (the first keys of any word) mean a scan of every
                # job: wait for the next key, so typing "old12" reads the index, not "o" by a scan first
                self._short_filter = self.set_timer(self.SHORT_FILTER_S, self._window_changed)
            else:
                self._window_changed()
            self._summarise()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = bool(event.value)
            self.table.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.table.focus()
