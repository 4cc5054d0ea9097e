"""The jobs table: rows keyed by job id and updated cell by cell, sortable and filterable.

It holds a window of the jobs (the screen reads pages of them from the store, filtered and sorted there:
`windowed`); a table on its own sorts and filters the rows it holds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from rich.text import Text
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

from rn50tui.app import fmt
from rn50tui.app.widgets.fast_table import Cell, FastTable
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import Job
from rn50tui.jobs.executors import DEFAULT_EXECUTOR


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # fixed: the layout does not jump as values grow and shrink
    right: bool = False


COLUMNS = (
    Column("mark", " ", 1),
    Column("id", "id", 4, right=True),
    Column("name", "name", 16),
    Column("kind", "kind", 5),
    Column("status", "status", 11),
    Column("cards", "cards", 9),
    Column("epoch", "epoch · it", 15),
    Column("progress", "progress", 15),
    Column("loss", "loss", 7, right=True),
    Column("top1", "top-1", 6, right=True),
    Column("ips", "img/s", 7, right=True),
    Column("eta", "ETA", 7, right=True),
    Column("started", "started", 11),
    Column("duration", "duration", 18, right=True),
)
SORTABLE = tuple(c.key for c in COLUMNS if c.key != "mark")


def _num_key(value: Optional[float]) -> tuple[bool, float]:
    return (value is None, value or 0.0)  # unknown values sort last


def job_cells(job: Job, now: float, marked: bool) -> dict[str, Cell]:
    """Every cell of one job's row, rendered with the clock's `now`."""
    eta = fmt.eta_seconds(job, now)
    ran = fmt.run_time(job, now)
    started = job.first_started_at or job.started_at
    return {
        "mark": Cell("●" if marked else " ", not marked, style="bold yellow"),
        "id": Cell(str(job.id), job.id, justify="right"),
        "name": Cell(job.name, job.name.lower()),
        "kind": Cell(job.kind, job.kind),
        "status": _status_cell(job, now),
        "cards": Cell(fmt.cards(job), fmt.cards(job)),
        "epoch": Cell(fmt.epoch(job), _num_key(job.progress)),
        "progress": Cell(fmt.progress_bar(job.progress), _num_key(job.progress), style="green"),
        "loss": Cell(fmt.num(job.loss, ".4f"), _num_key(job.loss), justify="right"),
        "top1": Cell(fmt.num(job.top1, ".2f"), _num_key(job.top1), justify="right"),
        "ips": Cell(fmt.ips(job.ips), _num_key(job.ips), justify="right"),
        "eta": Cell(fmt.duration(eta), _num_key(eta), justify="right"),
        "started": Cell(fmt.clock_time(started, now), _num_key(started)),  # its first attempt's start
        "duration": Cell(fmt.ran(job, now), _num_key(ran), justify="right"),  # over every attempt
    }


def _status_cell(job: Job, now: float) -> Cell:
    """The status; a running job's stall mark (time since its last progress) in bold red; a queued job
    held back by a card busy outside rn50tui marked in yellow; one in a cluster's queue says so."""
    mark = fmt.stall(job, now)
    if mark is None and job.status is Status.QUEUED and job.wait_reason:
        if job.executor != DEFAULT_EXECUTOR:  # in a cluster's queue, as expected: the header says why
            return Cell(f"queued ({job.executor})", job.status.value, style=fmt.STATUS_STYLES[job.status])
        return Cell("queued ⚠", job.status.value, style="bold yellow")  # the detail header says why
    if mark is None:
        return Cell(job.status.value, job.status.value, style=fmt.STATUS_STYLES[job.status])
    return Cell(fmt.stall_label(mark), job.status.value, style="bold red")


def matches(job: Job, query: str) -> bool:
    """Every word of the filter appears in the job's id, name, kind, status, device or preset."""
    hay = (
        f"#{job.id} {job.id} {job.name} {job.kind} {job.status.value} {job.device} {job.preset or ''}".lower()
    )
    return all(word in hay for word in query.lower().split())


class JobsTable(FastTable):
    """Every job, one row each; `show` updates rows in place and keeps the cursor on its job."""

    DEFAULT_CSS = """
    JobsTable { height: 1fr; }
    """

    sort_column: reactive[str] = reactive("id", init=False)
    """The column rows are ordered by."""
    sort_reverse: reactive[bool] = reactive(False, init=False)
    """Descending order when True."""
    query: reactive[str] = reactive("", init=False)
    """The filter: only jobs matching every word are shown."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.jobs: dict[int, Job] = {}
        self.marked: set[int] = set()
        self._cells: dict[int, dict[str, Cell]] = {}
        # the store sorts and filters (show() brings its answer): the rows held are not re-ordered or
        # filtered first, which would draw a screen of rows that the answer replaces a moment later
        self.windowed = False
        self._made_from: dict[int, tuple[Job, bool]] = {}  # (job, marked) each row's cells were made from
        self._active: set[int] = set()  # queued, starting or running: redrawn on every poll
        self._now = 0.0

    def on_mount(self) -> None:
        for col in COLUMNS:
            self.add_column(
                Text(col.label, justify="right" if col.right else "left"), key=col.key, width=col.width
            )

    # -- data

    def show(self, jobs: Sequence[Job], now: float, query: Optional[str] = None) -> None:
        """Bring the table in line with `jobs` (a whole window, the store's answer to `query` when given):
        add, update or remove only what changed."""
        if query is not None:  # the store filtered: the old rows are not filtered first
            self.set_reactive(JobsTable.query, query)
        self.jobs = {j.id: j for j in jobs}
        self.marked &= set(self.jobs)
        self._active = {j.id for j in jobs if not j.status.terminal}
        self._now = now
        self._sync()

    def merge(self, changed: Sequence[Job], removed: Iterable[int], now: float) -> None:
        """One poll's news: changed jobs updated (or added), removed ones dropped and the active ones'
        clock-driven cells redrawn; no other row is looked at, however many the table holds."""
        self._now = now
        touched = set(removed)
        for jid in touched:
            self.jobs.pop(jid, None)
        self.marked -= touched
        self._active -= touched
        for job in changed:
            self.jobs[job.id] = job
            touched.add(job.id)
            if job.status.terminal:
                self._active.discard(job.id)
            else:
                self._active.add(job.id)
        self._sync(touched | self._active)

    @property
    def active_ids(self) -> frozenset[int]:
        """The queued, starting and running jobs the table holds."""
        return frozenset(self._active)

    def add_page(self, jobs: Sequence[Job]) -> None:
        """More jobs of the window (the next page, as the cursor or the view nears its end). The view keeps
        showing the rows it showed (a page that comes above pushes them down: the view follows them, not
        the cursor, which stays on its job wherever the wheel left it)."""
        top = self._job_at(self.visible_rows[0])
        new = [j for j in jobs if j.id not in self.jobs]
        for job in new:
            self.jobs[job.id] = job
            if not job.status.terminal:
                self._active.add(job.id)
        self._sync({j.id for j in new})
        # all in this frame, one redraw: the scrollable height with the new rows (cheap, fixed sizes), not
        # left to the next idle (a second redraw), and the view on the rows it showed, not a jump first
        self._update_dimensions(())
        if top is not None and top in self._cells:
            self.scroll_to(y=self.get_row_index(str(top)), animate=False, immediate=True)
        self._cursor_into_view()  # what the cursor's kept place asks for after the frame: now, in it

    def _cursor_into_view(self) -> None:
        """DataTable's scroll of the cursor row into view, at once rather than after the next refresh."""
        if not self.row_count:
            return
        spacing = self._get_fixed_offset()
        _, y, width, height = self._get_row_region(self.cursor_row)
        region = Region(int(self.scroll_x) + spacing.left, y, width - spacing.left, height)
        self.scroll_to_region(region, animate=False, spacing=spacing, force=True, immediate=True)

    def _job_at(self, row: int) -> Optional[int]:
        if not 0 <= row < self.row_count:
            return None
        key = self.coordinate_to_cell_key(Coordinate(row, 0)).row_key
        return int(key.value) if key.value is not None else None

    REBUILD_AT = 24  # rows coming and going at which the table is rebuilt at once rather than row by row

    def _sync(self, only: Optional[set[int]] = None) -> None:
        """Rows for `only` these ids (every job when None) in line with self.jobs and the filter."""
        current = self.cursor_job_id
        if only is None:
            wanted = {jid for jid, job in self.jobs.items() if matches(job, self.query)}
            if len(wanted ^ self._cells.keys()) >= self.REBUILD_AT:
                self._rebuild(wanted, current)  # a new filter or window: one rebuild, not n removals
                return
            ids: Iterable[int] = list(self._cells.keys() - wanted) + list(self.jobs)
            resort = self.sort_column != "id" or self.sort_reverse
        else:
            ids = sorted(only)
            resort = False
        dirty: dict[int, dict[str, Cell]] = {}
        for jid in ids:
            job = self.jobs.get(jid)
            if job is None or not matches(job, self.query):
                if jid in self._cells:
                    self.remove_row(str(jid))
                    del self._cells[jid]
                    self._made_from.pop(jid, None)
                continue
            old = self._cells.get(jid)
            cells, drawn = self._cells_for(jid, job)
            if drawn:
                continue
            if old is None:
                self.add_row(*(cells[c.key] for c in COLUMNS), key=str(jid))
                resort = True
            else:
                changed = {k: c for k, c in cells.items() if c != old[k] or c.style != old[k].style}
                if changed:
                    dirty[jid] = changed
                    resort |= self.sort_column in changed
            self._cells[jid] = cells
        self._write_cells(dirty)
        if resort:
            self._sort(current)

    def _cells_for(self, jid: int, job: Job) -> tuple[dict[str, Cell], bool]:
        """A job's cells, and whether they are those its row shows already: a finished job's row, unchanged
        since it was drawn, is not formatted again (a new window or page holds mostly such rows)."""
        marked = jid in self.marked
        old = self._cells.get(jid)
        if old is not None and job.status.terminal and self._made_from.get(jid) == (job, marked):
            return old, True
        self._made_from[jid] = (job, marked)
        return job_cells(job, self._now, marked), False

    def _rebuild(self, wanted: set[int], keep: Optional[int]) -> None:
        """Clear the table and add the `wanted` jobs' rows already in order (one sort in Python)."""
        rows = [(jid, self._cells_for(jid, self.jobs[jid])[0]) for jid in sorted(wanted)]
        self._made_from = {jid: self._made_from[jid] for jid in wanted}
        column = self.sort_column
        rows.sort(key=lambda row: row[1][column].sort_key, reverse=self.sort_reverse)
        self.clear()
        self._cells = dict(rows)
        for jid, cells in rows:
            self.add_row(*(cells[c.key] for c in COLUMNS), key=str(jid))
        if keep is not None and keep in self._cells:
            self.move_cursor(row=self.get_row_index(str(keep)), animate=False)

    def _sort(self, keep: Optional[int]) -> None:
        self.sort(self.sort_column, key=lambda cell: cell.sort_key, reverse=self.sort_reverse)
        if keep is not None and keep in self._cells:
            self.move_cursor(row=self.get_row_index(str(keep)), animate=False)

    @property
    def cursor_job_id(self) -> Optional[int]:
        """The job under the cursor, if any."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - an empty or shrinking table has no cursor row
            return None
        return int(key.value) if key.value is not None else None

    def select_job(self, job_id: int) -> None:
        if job_id in self._cells:
            self.move_cursor(row=self.get_row_index(str(job_id)), animate=False)

    def toggle_mark(self) -> None:
        jid = self.cursor_job_id
        if jid is not None:
            self.marked ^= {jid}
            self._sync({jid})

    # -- moving: the screen reads the window's next page when the cursor nears (or stays at) its far end

    class Moved(Message):
        """The cursor was moved by a key (posted even when it could not move: at the window's edge), or the
        view scrolled (the mouse wheel pages the window as the keys do)."""

    def action_cursor_up(self) -> None:
        super().action_cursor_up()
        self.post_message(self.Moved())

    def action_cursor_down(self) -> None:
        super().action_cursor_down()
        self.post_message(self.Moved())

    def action_page_up(self) -> None:
        super().action_page_up()
        self.post_message(self.Moved())

    def action_page_down(self) -> None:
        super().action_page_down()
        self.post_message(self.Moved())

    def action_scroll_top(self) -> None:
        super().action_scroll_top()
        self.post_message(self.Moved())

    def action_scroll_bottom(self) -> None:
        super().action_scroll_bottom()
        self.post_message(self.Moved())

    def on_mouse_scroll_up(self, _event: Any) -> None:
        """The wheel pages the window as the keys do (the screen looks at the rows the view shows); also at
        the view's edge, where it cannot scroll. Not the table's own scrolling (a kept cursor, a rebuild):
        that would read page after page."""
        self.post_message(self.Moved())

    def on_mouse_scroll_down(self, _event: Any) -> None:
        self.post_message(self.Moved())

    @property
    def visible_rows(self) -> tuple[int, int]:
        """The first and one past the last row index the view shows (rows are one line each)."""
        top = int(round(self.scroll_y))
        return top, top + max(1, self.scrollable_content_region.height - self.header_height)

    # -- sorting and filtering

    def watch_sort_column(self) -> None:
        if not self.windowed:
            self._sort(self.cursor_job_id)

    def watch_sort_reverse(self) -> None:
        if not self.windowed:
            self._sort(self.cursor_job_id)

    def watch_query(self) -> None:
        if not self.windowed:
            self._sync()

    def action_cycle_sort(self) -> None:
        self.sort_column = SORTABLE[(SORTABLE.index(self.sort_column) + 1) % len(SORTABLE)]

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SORTABLE:
            if key == self.sort_column:
                self.sort_reverse = not self.sort_reverse
            else:
                self.sort_column = key
