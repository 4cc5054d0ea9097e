"""Every card on the host (MLU, CUDA, CPU) with live stats and the job holding it; where Slurm is
installed, the cluster's partitions and nodes from sinfo below them (`rn50tui devices --cluster`)."""

from __future__ import annotations

import time
from typing import Any, Optional

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Header, Static
from textual.worker import Worker, get_current_worker

from rn50tui.app.data import ClusterView
from rn50tui.app.screens.base import PollingScreen
from rn50tui.app.services import Services
from rn50tui.app.widgets.footer import KeysFooter
from rn50tui.cards import card_row
from rn50tui.commands.devices import absence_lines

COLUMNS = ("kind", "card", "name", "util", "memory", "temp", "power", "held by")
CLUSTER_COLUMNS = ("partition", "node", "state", "cards used", "cards free", "gres", "cpus a/i/o/t")
CLUSTER_POLL_S = 15.0  # sinfo asks slurmctld: clusters ask users not to poll it often


def card_cells(card: Any, holder: Optional[str]) -> tuple[Text, ...]:
    """One card's row (values a device does not report read as —)."""
    row = card_row(card)
    held = Text(holder or "free", style="bold green" if holder else "dim")
    return (Text(row.kind), Text(row.card, justify="right"), Text(row.name), Text(row.util, justify="right"),
            Text(row.memory, justify="right"), Text(row.temp, justify="right"), Text(row.power, justify="right"),
            held)  # fmt: skip


class DevicesScreen(PollingScreen):
    """A table of cards, sampled every two seconds in a worker; rows keyed by (kind, index)."""

    POLL_S = 2.0
    HELP_TITLE = "devices"
    BINDINGS = [Binding("escape,backspace", "app.pop_screen", "Back")]

    class Loaded(Message):
        def __init__(self, rows: dict[str, tuple[Text, ...]], notes: list[str]) -> None:
            super().__init__()
            self.rows, self.notes = rows, notes

    class ClusterLoaded(Message):
        def __init__(self, view: ClusterView) -> None:
            super().__init__()
            self.view = view

    def __init__(self, services: Services, **kwargs: Any) -> None:
        super().__init__(services, **kwargs)
        self.sampler: Any = None
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._cluster_at = -float("inf")  # when sinfo was last asked (time.monotonic)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("sampling the host's cards…", id="devices-title")
        yield DataTable(id="devices", cursor_type="row", zebra_stripes=True)
        yield Static("", id="devices-notes")
        yield Static("", id="cluster-title")
        yield DataTable(id="cluster", cursor_type="row", zebra_stripes=True)
        yield KeysFooter()

    def on_mount(self) -> None:
        self.sub_title = "devices"
        table = self.query_one("#devices", DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        cluster = self.query_one("#cluster", DataTable)
        for column in CLUSTER_COLUMNS:
            cluster.add_column(column, key=column)
        cluster.display = self.query_one("#cluster-title").display = False  # until sinfo answers

    def start_poll(self) -> Worker:
        if time.monotonic() - self._cluster_at >= self.services.scaled(CLUSTER_POLL_S):
            self._cluster_at = time.monotonic()
            self._ask_cluster()
        return self._sample()

    @work(thread=True, exclusive=True, group="devices-poll", exit_on_error=False)
    def _sample(self) -> None:
        client = self.client
        if self.sampler is None:
            self.sampler = client.host_sampler()  # kept open: NVML stays initialised, CPU baseline carries
        report = self.sampler.sample()
        holders = client.holders()
        rows = {f"{c.kind}:{c.index}": card_cells(c, holders.get(c.key)) for c in report.all_cards()}
        if not get_current_worker().is_cancelled:
            self.post_message(self.Loaded(rows, absence_lines(report)))

    @work(thread=True, exclusive=True, group="cluster-poll", exit_on_error=False)
    def _ask_cluster(self) -> None:
        """sinfo in its own worker: a slow controller never holds the cards' sampling back."""
        view = self.client.cluster()
        if view is not None and not get_current_worker().is_cancelled:
            self.post_message(self.ClusterLoaded(view))

    def on_devices_screen_loaded(self, msg: Loaded) -> None:
        table = self.query_one("#devices", DataTable)
        for key in [k for k in self._cells if k not in msg.rows]:
            table.remove_row(key)
            del self._cells[key]
        for key, cells in msg.rows.items():
            old = self._cells.get(key)
            if old is None:
                table.add_row(*cells, key=key)
            else:
                for column, (new, was) in zip(COLUMNS, zip(cells, old)):
                    if new != was or new.style != was.style:
                        table.update_cell(key, column, new)
            self._cells[key] = cells
        self.query_one("#devices-title", Static).update(
            f"{len(msg.rows)} card(s) on this host, sampled every 2 s"
        )
        self.query_one("#devices-notes", Static).update("\n".join(msg.notes))

    def on_devices_screen_cluster_loaded(self, msg: ClusterLoaded) -> None:
        table = self.query_one("#cluster", DataTable)
        title = self.query_one("#cluster-title", Static)
        title.display, table.display = True, bool(msg.view.nodes)
        table.clear()
        for node in msg.view.nodes:
            table.add_row(*node.row(), key=f"{node.partition}:{node.node}")
        partitions = len({n.partition for n in msg.view.nodes})
        title.update(msg.view.note or f"Slurm cluster: {len(msg.view.nodes)} node(s) in {partitions} "
                     f"partition(s), from sinfo every {CLUSTER_POLL_S:.0f} s")  # fmt: skip

    def on_unmount(self) -> None:
        if self.sampler is not None:
            sampler, self.sampler = self.sampler, None
            self.app.run_worker(sampler.close, thread=True, exit_on_error=False)  # NVML shutdown may block
