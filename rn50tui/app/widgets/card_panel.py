"""One card of a job: utilisation, memory, temperature and power over time, with the latest values."""

from __future__ import annotations

from typing import Any, Optional

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Label, Sparkline

from rn50tui.app import fmt
from rn50tui.app.jobdata import CARD_METRICS, CardView
from rn50tui.app.widgets.text import set_text
from rn50tui.cards import metric_text

LABELS = {"util_percent": "util", "mem_used_mib": "memory", "temp_c": "temp", "power_w": "power"}


def value_text(metric: str, view: CardView) -> str:
    return metric_text(metric, view.latest.get(metric), view.mem_total_mib, view.power_cap_w)


class CardPanel(Vertical):
    """A bordered panel per card; `show(view)` updates its sparklines and numbers."""

    DEFAULT_CSS = """
    CardPanel { height: auto; border: round $primary 50%; padding: 0 1; margin: 0 0 1 0; }
    CardPanel .card-row { height: 1; }
    CardPanel .card-label { width: 8; color: $text-muted; }
    CardPanel Sparkline { width: 1fr; margin: 0 1; }
    CardPanel .card-value { width: 22; text-align: right; }
    """

    view: reactive[Optional[CardView]] = reactive(None, init=False)
    """The latest data of this card."""

    def __init__(self, view: CardView, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = _title(view)
        self._first = view

    def compose(self) -> ComposeResult:
        for metric in CARD_METRICS:
            with Horizontal(classes="card-row", id=f"row-{metric}"):
                yield Label(LABELS[metric], classes="card-label")
                yield Sparkline([], id=f"spark-{metric}")
                yield Label(fmt.NONE, id=f"value-{metric}", classes="card-value")

    def on_mount(self) -> None:
        self.view = self._first

    def watch_view(self, view: Optional[CardView]) -> None:
        if view is None:
            return
        self.border_title = _title(view)
        for metric in CARD_METRICS:
            spark = view.sparks.get(metric) or []
            self.query_one(f"#row-{metric}").display = bool(spark)  # what the card does not report
            self.query_one(f"#spark-{metric}", Sparkline).data = spark
            set_text(self.query_one(f"#value-{metric}", Label), value_text(metric, view))


def _title(view: CardView) -> str:
    """`mlu 0 · MLU370-X8`, with the node first for a multi-node job: `node1 · mlu 0 · MLU370-X8`."""
    head = f"{view.node} · " if view.node else ""
    return f"{head}{view.device} {view.card} · {view.name or 'unknown card'}"
