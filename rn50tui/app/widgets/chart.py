"""A line chart of one or more downsampled curves (textual-plotext), redrawn only when its data changes,
and at most every MIN_REDRAW_S while it changes (a running job's curves change every second)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Optional

from textual.reactive import reactive
from textual.timer import Timer
from textual_plotext import PlotextPlot

from rn50tui.app.series import Points

Curve = tuple[str, Points]  # (legend label, (xs, ys))
MARKED_POINTS = 60  # with mark_points, curves this short get a dot on every point
MIN_REDRAW_S = 2.0  # a plotext chart costs ~15 ms a draw: three live charts drawn every second were most
# of an idle detail screen's CPU; every two seconds still looks live for a job that runs for hours


class MetricChart(PlotextPlot):
    """One chart; `plot(curves)` replaces what it shows. Points arrive already downsampled."""

    DEFAULT_CSS = """
    MetricChart { height: 1fr; min-height: 8; }
    """

    title: reactive[str] = reactive("", init=False)
    """The chart's title."""
    xlabel: reactive[str] = reactive("", init=False)
    """What the x axis counts."""

    def __init__(self, title: str, xlabel: str = "", *, mark_points: bool = False, log_y: bool = False,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.set_reactive(MetricChart.title, title)
        self.set_reactive(MetricChart.xlabel, xlabel)
        self.mark_points = mark_points  # per-epoch charts: a few points that a line alone would hide
        self.log_y = log_y
        self.curves: tuple[Curve, ...] = ()
        self.point_count = 0
        self.draws = 0  # how many times the chart was drawn (tests count redraws)
        self.min_redraw_s = MIN_REDRAW_S
        self._empty_text: Optional[str] = None
        self._drawn_at: Optional[float] = None  # time.monotonic() of the last draw
        self._pending: Optional[Timer] = None  # a draw put off until MIN_REDRAW_S after the last

    def on_mount(self) -> None:
        super().on_mount()
        self._draw()

    def plot(
        self, curves: Sequence[Curve], empty_text: Optional[str] = None, *, at_once: bool = False
    ) -> None:
        """Show `curves`; nothing happens when they equal what is shown (idle costs nothing). Drawn at once
        when it showed no points and with `at_once` (a new window, a new size), else at most every
        min_redraw_s (the latest curves then)."""
        curves = tuple(curves)
        if curves == self.curves and empty_text == self._empty_text:
            return
        had_points = self.point_count > 0
        self.curves, self._empty_text = curves, empty_text
        self.point_count = sum(len(xs) for _, (xs, _) in curves)
        wait = 0.0 if self._drawn_at is None else self._drawn_at + self.min_redraw_s - time.monotonic()
        if at_once or not had_points or wait <= 0:
            self._draw()
        elif self._pending is None:  # the latest curves are drawn then
            self._pending = self.set_timer(wait, self._draw)

    def watch_title(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self._pending is not None:
            self._pending.stop()
            self._pending = None
        self._drawn_at = time.monotonic()
        self.draws += 1
        empty_text = self._empty_text
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        title = self.title
        if not self.point_count:
            title += f"  ({empty_text or 'no data yet'})"
        plt.title(title)
        if self.xlabel:
            plt.xlabel(self.xlabel)
        for label, (xs, ys) in self.curves:
            if xs:
                kwargs = {"label": label} if label and len(self.curves) > 1 else {}
                plt.plot(list(xs), list(ys), marker="braille", **kwargs)
                if self.mark_points and len(xs) <= MARKED_POINTS:
                    plt.scatter(list(xs), list(ys), marker="●")
        if self.log_y and self.point_count and all(y > 0 for _, (_, ys) in self.curves for y in ys):
            plt.yscale("log")
        self.refresh()
