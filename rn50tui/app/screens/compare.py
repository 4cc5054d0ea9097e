"""Two or more jobs' training loss and validation top-1 (and EMA top-1, for --use-ema jobs) overlaid, by epoch,
and each job's time to a chosen top-1 (`+` / `-` move the target by 5%; first, the highest all reached)."""

from __future__ import annotations

from typing import Any, Optional

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Header, Static
from textual.worker import Worker, get_current_worker

from rn50tui import time_to_accuracy
from rn50tui.app.jobdata import ChartData, JobHistory
from rn50tui.app.screens.base import PollingScreen
from rn50tui.app.services import Services
from rn50tui.app.widgets.chart import MetricChart
from rn50tui.app.widgets.footer import KeysFooter
from rn50tui.jobs.core.errors import JobNotFound


class CompareScreen(PollingScreen):
    """Overlaid curves of the chosen jobs, refreshed every second while any of them runs."""

    POLL_S = 1.0
    HELP_TITLE = "compare"
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back"),
        Binding("plus,equals_sign", "target(1)", "Target +5%"),
        Binding("minus", "target(-1)", "Target -5%"),
    ]

    class Loaded(Message):
        def __init__(
            self, labels: dict[int, str], views: dict[int, ChartData], times: dict[int, list[dict[str, Any]]]
        ) -> None:
            super().__init__()
            self.labels, self.views, self.times = labels, views, times

    def __init__(self, services: Services, job_ids: list[int], **kwargs: Any) -> None:
        super().__init__(services, **kwargs)
        self.job_ids = job_ids
        self.histories = {jid: JobHistory(jid) for jid in job_ids}
        self.target: Optional[float] = None  # the top-1 timed; None: the highest every job reached
        self._last: Optional[CompareScreen.Loaded] = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"comparing jobs {', '.join(map(str, self.job_ids))}", id="compare-title")
        yield MetricChart("training loss (smoothed)", "epoch", id="compare-loss")
        yield MetricChart("validation top-1 (%)", "epoch", mark_points=True, id="compare-top1")
        yield Static("", id="compare-time")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.sub_title = "compare"

    def start_poll(self) -> Worker:
        return self._load(max(20, self.query_one("#compare-loss").size.width - 10))

    @work(thread=True, exclusive=True, group="compare-poll", exit_on_error=False)
    def _load(self, buckets: int) -> None:
        client = self.client
        labels, views, times = {}, {}, {}
        for jid, history in self.histories.items():
            try:
                job = client.get_job(jid)
            except JobNotFound:
                continue
            history.update(client, job, samples=False)
            labels[jid] = f"{jid} {job.name}"
            views[jid] = history.view(buckets, None)
            times[jid] = time_to_accuracy.history_of(job.time_to_best)
        if not get_current_worker().is_cancelled:
            self.post_message(self.Loaded(labels, views, times))

    def on_compare_screen_loaded(self, msg: Loaded) -> None:
        loss = [(msg.labels[j], v.charts["loss_by_epoch"]) for j, v in msg.views.items()]
        top1 = [(msg.labels[j], v.charts["top1"]) for j, v in msg.views.items()]
        top1 += [
            (f"{msg.labels[j]} EMA", v.charts["ema_top1"])
            for j, v in msg.views.items()
            if v.charts["ema_top1"][0]
        ]
        self.query_one("#compare-loss", MetricChart).plot(loss)
        self.query_one("#compare-top1", MetricChart).plot(top1, empty_text="after the first epoch")
        self.query_one("#compare-title", Static).update(
            "comparing " + " · ".join(map(escape, msg.labels.values()))
        )
        self._last = msg
        self._show_times()

    def action_target(self, step: int) -> None:
        if self._last is None:
            return
        start = self.target or time_to_accuracy.common_target(list(self._last.times.values())) or 0.0
        self.target = min(100.0, max(time_to_accuracy.STEP, start + step * time_to_accuracy.STEP))
        self._show_times()

    def _show_times(self) -> None:
        msg = self._last
        if msg is None:
            return
        target = self.target or time_to_accuracy.common_target(list(msg.times.values()))
        runs = [(msg.labels[j], msg.times.get(j, [])) for j in msg.labels]
        text = (time_to_accuracy.compare_line(runs, target) if target is not None
                else "time to a top-1: after every job has a best validation (+ / - choose the target)")  # fmt: skip
        self.query_one("#compare-time", Static).update(escape(text))
