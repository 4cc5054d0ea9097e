"""A line chart of one or more downsampled curves (textual-plotext), redrawn only when its data changes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from textual.reactive import reactive
from textual_plotext import PlotextPlot

from rn50tui.app.series import Points

Curve = tuple[str, Points]  # (legend label, (xs, ys))
MARKED_POINTS = 60  # with mark_points, curves this short get a dot on every point


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

    def on_mount(self) -> None:
        super().on_mount()
        self._draw()

    def plot(self, curves: Sequence[Curve], empty_text: Optional[str] = None) -> None:
        """Show `curves`; nothing happens when they equal what is shown (idle costs nothing)."""
        curves = tuple(curves)
        if curves == self.curves:
            return
        self.curves = curves
        self.point_count = sum(len(xs) for _, (xs, _) in curves)
        self._draw(empty_text)

    def watch_title(self) -> None:
        self._draw()

    def _draw(self, empty_text: Optional[str] = None) -> None:
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
