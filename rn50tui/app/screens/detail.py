"""One job: live charts with a time window, per-card panels, the log followed live, config, checkpoints."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from typing import Any, Optional

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import (
    DataTable,
    Header,
    Label,
    Log,
    ProgressBar,
    Select,
    Static,
    TabbedContent,
    TabPane,
)
from textual.worker import Worker, get_current_worker

from rn50tui.app import fmt
from rn50tui.app.data import CheckpointFile, config_rows
from rn50tui.app.jobdata import ChartData, JobHistory
from rn50tui.app.messages import CancelJob, ExportJob, ResumeJob
from rn50tui.app.screens.base import PollingScreen
from rn50tui.app.series import WINDOWS, Points
from rn50tui.app.services import Services
from rn50tui.app.widgets.card_panel import CardPanel
from rn50tui.app.widgets.chart import MetricChart
from rn50tui.app.widgets.footer import KeysFooter
from rn50tui.app.widgets.text import set_text
from rn50tui.jobs.core.errors import JobNotFound
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import Job
from rn50tui.jobs.core.workspace import LOG_STREAMS, LogTail
from rn50tui.jobs.kinds import KINDS as WORK_KINDS
from rn50tui.jobs.view import work as work_text

TABS = ("charts", "cards", "log", "config", "checkpoints")
CHECKPOINT_EVERY = 8  # polls between workspace listings (a directory scan, not a store read)
LOG_MAX_LINES = 5000


@dataclass(frozen=True)
class PollRequest:
    """What the UI wants from one poll (read on the UI thread, handed to the worker)."""

    buckets: int
    span_s: Optional[float]
    spark_width: int
    force_view: bool
    checkpoints: bool
    config: bool


def summary_text(job: Job, now: float, loss_kind: Optional[str] = None, starts: Optional[str] = None) -> str:
    """The two header lines of the detail screen; `loss_kind` says which loss the job's is; `starts`: a
    queued job's start estimate (rn50tui/jobs/view.py: start_estimates)."""
    eta = fmt.eta_seconds(job, now)
    first = (f"[b]job {job.id}[/b] {_escape(job.name)} · {job.kind} · [{fmt.STATUS_STYLES[job.status]}]{job.status.value}"
             f"[/] · attempt {job.attempt} · {fmt.cards(job)}{fmt.where(job)}")  # fmt: skip
    if job.kind in WORK_KINDS:  # a prepare or an export: no epochs, no loss (rn50tui/jobs/kinds.py)
        second = f"{work_text(job, eta) or job.kind} · ran {fmt.ran(job, now)}"
        if job.kind == "prepare" and job.ips is not None:
            second += f" · {fmt.ips(job.ips)} images/s"
    else:
        second = ""
    loss = fmt.num(job.loss) + (f" ({loss_kind})" if loss_kind and job.loss is not None else "")
    epoch = f"epoch {fmt.epoch(job)} · " if job.kind != "infer" else ""  # an evaluation has no schedule
    second = second or (f"{epoch}loss {loss} · top-1 {fmt.num(job.top1, '.2f')}"
              f" (best {fmt.num(job.best_top1, '.2f')}) · top-5 {fmt.num(job.top5, '.2f')} · "
              f"{fmt.ips(job.ips)} img/s · lr {fmt.num(job.lr, '.5f')} · ran {fmt.ran(job, now)}"
              f" · ETA {fmt.duration(eta)}")  # fmt: skip
    mark = fmt.stall(job, now)
    if mark is not None:
        what = "no training progress" if mark.kind == "stalled" else "its supervisor's heartbeat is stale"
        first += f" · [b red]⚠ {mark.kind}: {what} for {fmt.duration(mark.for_s)}[/]"
    if job.status is Status.QUEUED and job.wait_reason:
        said = job.wait_reason.startswith(("waits for", "reserves"))  # already a sentence
        second += f"\n[yellow]{'' if said else 'waits: '}{_escape(job.wait_reason)}[/yellow]"
    if job.status is Status.QUEUED and starts:
        second += f"\n{_escape(starts)}"
    if job.error:
        second += f"\n[red]{_escape(job.error.splitlines()[0])}[/red]"
    elif (
        job.note and job.kind not in WORK_KINDS
    ):  # a prepare's note is its progress, shown above  # the engine's warning or input-bound verdict while it runs, or how a run ended
        note = _escape(job.note)
        act = job.note.startswith(("warning:", "input-bound:"))  # something to act on: in yellow
        second += f"\n[yellow]{note}[/yellow]" if act else f"\n{note}"
    return f"{first}\n{second}"


def loss_curves(charts: dict[str, Points]) -> list[tuple[str, Points]]:
    """The loss chart's curves, each legend naming what it is and its latest value (the list shows the
    smoothed one while an epoch runs, the epoch mean after)."""
    names = (("loss_epoch", "epoch mean"), ("loss_smooth", "smoothed"), ("loss", "raw -p window"))
    return [(f"{label} {fmt.num(charts[key][1][-1])}" if charts[key][1] else label, charts[key])
            for key, label in names]  # fmt: skip


def _escape(text: str) -> str:
    return escape(text)  # names, paths and errors may hold [brackets]


INPUT_BOUND = "input-bound:"  # the engine's note when the cards waited for data (engine/progress.py)


class JobDetailScreen(PollingScreen):
    """Everything about one job, refreshed every second while it is on top."""

    HELP_TITLE = "job detail"
    POLL_S = 1.0  # the supervisor stores a job's progress once a second: a faster poll finds nothing new
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back"),
        Binding("w", "cycle_window", "Window"),
        Binding("c", "cancel", "Cancel"),
        Binding("r", "resume", "Resume"),
        Binding("e", "export", "Export"),
        Binding("1", "tab('charts')", "Charts"),
        Binding("2", "tab('cards')", "Cards"),
        Binding("3", "tab('log')", "Log"),
        Binding("4", "tab('config')", "Config"),
        Binding("5", "tab('checkpoints')", "Checkpoints"),
        Binding("f", "cycle_stream", "Log stream", show=False),
    ]

    window_index: reactive[int] = reactive(0, init=False)
    """Which of series.WINDOWS the time charts show."""
    stream: reactive[str] = reactive("stdout", init=False)
    """Which log of the job the log tab follows."""

    class Loaded(Message):
        """One poll's results, from the worker thread."""

        def __init__(self, job: Job, view: Optional[ChartData], log_text: str, log_tail: Optional[LogTail],
                     checkpoints: Optional[list[CheckpointFile]], config: Optional[list[tuple[str, str]]],
                     starts: Optional[str] = None, forced: bool = False) -> None:  # fmt: skip
            super().__init__()
            self.job, self.view, self.log_text, self.log_tail = job, view, log_text, log_tail
            self.checkpoints, self.config, self.starts = checkpoints, config, starts
            self.forced = forced  # the view was asked for (a new window or size): charts drawn at once

    def __init__(self, services: Services, job_id: int, tab: str = "charts", **kwargs: Any) -> None:
        super().__init__(services, **kwargs)
        self.job_id = job_id
        self.initial_tab = tab
        self.job: Optional[Job] = None
        self.history = JobHistory(job_id)
        self.log_tail: Optional[LogTail] = None
        self._polls = 0
        self._view_params: tuple[Any, ...] = ()
        self._config_done = False
        self._checkpoints: Optional[list[CheckpointFile]] = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"job {self.job_id}: loading…", id="job-summary")
        yield ProgressBar(total=100, show_eta=False, id="job-progress")
        with TabbedContent(initial=self.initial_tab, id="tabs"):
            with TabPane("Charts", id="charts"):
                yield Label("", id="window-label")
                with Grid(id="chart-grid"):
                    yield MetricChart("training loss", "minutes", id="chart-loss")
                    yield MetricChart(
                        "validation top-1 / top-5 (%)", "epoch", mark_points=True, id="chart-acc"
                    )
                    yield MetricChart("images/s", "minutes", id="chart-ips")
                    yield MetricChart("learning rate", "minutes", id="chart-lr")
            with TabPane("Cards", id="cards"):
                yield Static("", id="cards-note")  # the input-bound verdict: the cards wait for data
                yield Static("no device samples yet", id="cards-empty")
                yield VerticalScroll(id="card-list")
            with TabPane("Log", id="log"):
                yield Select(
                    [(s, s) for s in LOG_STREAMS], value="stdout", allow_blank=False, id="log-stream"
                )
                yield Log(max_lines=LOG_MAX_LINES, id="log-view")
            with TabPane("Config", id="config"):
                yield Static("", id="argv")
                yield DataTable(id="config-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Checkpoints", id="checkpoints"):
                yield DataTable(id="ckpt-table", cursor_type="row", zebra_stripes=True)
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#config-table", DataTable).add_columns("setting", "value")
        self.query_one("#ckpt-table", DataTable).add_columns("file", "size", "written", "")
        self._show_window()

    # -- polling

    def _request(self) -> PollRequest:
        width = max(20, self.query_one("#chart-loss").size.width - 10)  # minus the y-axis labels
        spark = max(10, self.query_one("#card-list").size.width - 36)
        params = (width, self.window_index, spark)
        force = params != self._view_params
        self._view_params = params
        return PollRequest(width, WINDOWS[self.window_index].seconds, spark, force,
                           (self._polls - 1) % CHECKPOINT_EVERY == 0, not self._config_done)  # fmt: skip

    def start_poll(self) -> Worker:
        self._polls += 1
        return self._poll(self._request(), self.log_tail)

    @work(thread=True, exclusive=True, group="detail-poll", exit_on_error=False)
    def _poll(self, req: PollRequest, log_tail: Optional[LogTail]) -> None:
        client = self.client
        job = client.get_job(self.job_id)
        changed = self.history.update(client, job)
        view = (
            self.history.view(req.buckets, req.span_s, req.spark_width) if changed or req.force_view else None
        )
        text = log_tail.read_text() if log_tail is not None else ""
        ckpts = client.checkpoints(job) if req.checkpoints else None
        config = config_rows(job.argv) if req.config else None
        starts = None
        if job.status is Status.QUEUED:
            estimate = client.start_estimates().get(job.id)
            starts = estimate.text if estimate is not None else None
        if not get_current_worker().is_cancelled:
            self.post_message(self.Loaded(job, view, text, log_tail, ckpts, config, starts, req.force_view))

    def on_job_detail_screen_loaded(self, msg: Loaded) -> None:
        first = self.job is None
        self.job = msg.job
        now = self.services.clock.now()
        set_text(
            self.query_one("#job-summary", Static),
            summary_text(msg.job, now, self.history.loss_kind, msg.starts),
        )
        self.query_one("#job-progress", ProgressBar).update(progress=100 * (msg.job.progress or 0.0))
        self.sub_title = f"job {msg.job.id} · {msg.job.name} · {msg.job.status.value}"
        if msg.view is not None:
            self._show_view(msg.view, at_once=msg.forced)
        if msg.log_text and msg.log_tail is self.log_tail:
            self.query_one("#log-view", Log).write(msg.log_text)
        if msg.checkpoints is not None:
            self._show_checkpoints(msg.checkpoints)
        if msg.config is not None:
            self._show_config(msg.job, msg.config)
        if first:
            self._follow()

    def _follow(self) -> None:
        """Follow the chosen log of the job from its last lines (no I/O here: the poll reads it)."""
        self.query_one("#log-view", Log).clear()
        self.log_tail = LogTail(self.job.files.log(self.stream), start=None) if self.job else None
        self.poll()

    def _show_view(self, view: ChartData, at_once: bool = False) -> None:
        c = view.charts
        self.query_one("#chart-loss", MetricChart).plot(loss_curves(c), at_once=at_once)
        acc = [("top-1", c["top1"]), ("top-5", c["top5"])] + (
            [("EMA top-1", c["ema_top1"])] if c["ema_top1"][0] else []
        )
        self.query_one("#chart-acc", MetricChart).plot(
            acc, empty_text="after the first epoch", at_once=at_once
        )
        self.query_one("#chart-ips", MetricChart).plot([("img/s", c["ips"])], at_once=at_once)
        self.query_one("#chart-lr", MetricChart).plot([("lr", c["lr"])], at_once=at_once)
        self._show_cards(view)

    def _show_cards(self, view: ChartData) -> None:
        note = self.job.note if self.job is not None and (self.job.note or "").startswith(INPUT_BOUND) else ""
        card_note = self.query_one("#cards-note", Static)
        card_note.display = bool(note)
        set_text(card_note, f"[yellow]{_escape(note)}[/yellow]" if note else "")
        self.query_one("#cards-empty").display = not view.cards
        box = self.query_one("#card-list", VerticalScroll)
        for card in view.cards:
            node = "".join(c if c.isalnum() else "_" for c in card.node or "")
            panel_id = f"card-{node + '-' if node else ''}{card.device}-{card.card}"
            found = box.query(f"#{panel_id}")
            if found:
                found.first(CardPanel).view = card
            else:
                box.mount(CardPanel(card, id=panel_id))

    def _show_checkpoints(self, files: list[CheckpointFile]) -> None:
        if files == self._checkpoints:
            return  # unchanged: keep the table (and its cursor) as it is
        self._checkpoints = files
        table = self.query_one("#ckpt-table", DataTable)
        table.clear()
        for f in files:
            tags = " ".join(t for t, on in (("latest", f.latest), ("best", f.best)) if on) or f.note
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(f.mtime))
            table.add_row(f.name, fmt.mib(f.size / 2**20), when, tags, key=f.name)

    def _show_config(self, job: Job, rows: list[tuple[str, str]]) -> None:
        self._config_done = True
        self.query_one("#argv", Static).update(
            f"[b]engine flags[/b] {_escape(shlex.join(job.argv))}\n[b]workspace[/b] {_escape(job.workspace)}"
        )
        table = self.query_one("#config-table", DataTable)
        table.clear()
        for name, value in rows:
            table.add_row(name, value, key=name)

    # -- window, tabs, log stream

    def watch_window_index(self) -> None:
        self._show_window()
        self.poll()

    def _show_window(self) -> None:
        set_text(
            self.query_one("#window-label", Label),
            f"time window: [b]{WINDOWS[self.window_index].label}[/b]  (w: change)",
        )

    def action_cycle_window(self) -> None:
        self.window_index = (self.window_index + 1) % len(WINDOWS)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_cycle_stream(self) -> None:
        self.stream = LOG_STREAMS[(LOG_STREAMS.index(self.stream) + 1) % len(LOG_STREAMS)]

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "log-stream" and isinstance(event.value, str):
            self.stream = event.value

    def watch_stream(self, stream: str) -> None:
        self.query_one("#log-stream", Select).value = stream
        self._follow()

    # -- requests

    def _what(self) -> str:
        return f"({self.job.name}, {self.job.status.value})" if self.job else ""

    def action_cancel(self) -> None:
        self.post_message(CancelJob(self.job_id, self._what()))

    def action_resume(self) -> None:
        self.post_message(ResumeJob(self.job_id))

    def action_export(self) -> None:
        """Export this (completed training) job's best checkpoint; the job manager refuses any other."""
        self.post_message(ExportJob(self.job_id, self._what()))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if isinstance(event.worker.error, JobNotFound):
            event.prevent_default()  # not a failure to report (PollingScreen's handler runs after this one)
            self.notify(f"job {self.job_id} is gone (deleted elsewhere)", severity="warning")
            self.dismiss()
