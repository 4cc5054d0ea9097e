"""`rn50tui devices [--json] [--watch [SECONDS]]`: every card of every kind, its stats and its holder.

rich and the telemetry backends are imported inside `run`, so `rn50tui --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any, Optional, TextIO

from rn50tui.cards import NONE, card_row
from rn50tui.commands.common import EXIT_ERROR, fail
from rn50tui.jobs.core.errors import StoreMissing
from rn50tui.jobs.core.store import default_db_path

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from engine.telemetry.detect import HostReport
    from engine.telemetry.stats import CardStats

Holders = dict[tuple[str, int], str]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rn50tui devices`."""
    parser.add_argument("--json", action="store_true", help="print JSON; with --watch, one line per refresh")
    parser.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=2.0,
        default=None,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until Ctrl-C",
    )
    parser.add_argument(
        "--count", type=int, default=None, metavar="N", help="with --watch, stop after N refreshes"
    )
    parser.add_argument(
        "--cnmon", default=None, metavar="PATH", help="cnmon executable (default: $RN50TUI_CNMON, else PATH)"
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="how long to wait for cnmon (default 5)"
    )


def run(
    args: argparse.Namespace, holders: Optional[Holders] = None, *, console: Optional[Console] = None
) -> int:
    """Print every card (a table, or JSON) once, or every `--watch` seconds until Ctrl-C. Returns 0.

    `holders` maps (kind, physical index) to the job holding that card, e.g. "job 12 (demo)"; without
    it the table has no "held by" column, since nobody knows whether a card is free.
    """
    from engine.telemetry.detect import HostSampler

    watch = getattr(args, "watch", None)
    if watch is not None and watch <= 0:
        print("rn50tui devices: --watch needs a positive number of seconds", file=sys.stderr)
        return 2
    console = console or _default_console()
    sampler = HostSampler(cnmon_path=getattr(args, "cnmon", None), timeout=getattr(args, "timeout", 5.0))
    try:
        if watch is None:
            _show(sampler.sample(), holders, args, console, watching=False)
        else:
            _watch(sampler, holders, args, console, watch)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how --watch is meant to end
    finally:
        sampler.close()
    return 0


def _default_console() -> Console:
    from rich.console import Console

    # Piped output keeps whole rows instead of squeezing them into 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=160)


def _watch(
    sampler: Any, holders: Optional[Holders], args: argparse.Namespace, console: Console, every: float
) -> None:
    """Refresh until Ctrl-C (or `--count` refreshes): in place on a terminal, one after another otherwise."""
    count = getattr(args, "count", None)
    live_terminal = console.is_terminal and not args.json
    live = None
    if live_terminal:
        from rich.live import Live

        live = Live(console=console, auto_refresh=False)
        live.start()
    try:
        done = 0
        while count is None or done < count:
            report = sampler.sample()
            if live is not None:
                live.update(render(report, holders), refresh=True)
            else:
                _show(report, holders, args, console, watching=True)
            done += 1
            if count is None or done < count:
                time.sleep(every)
    finally:
        if live is not None:
            live.stop()


def _show(
    report: HostReport, holders: Optional[Holders], args: argparse.Namespace, console: Console, watching: bool
) -> None:
    if args.json:
        payload = to_json(report, holders)
        _write(console.file, json.dumps(payload) if watching else json.dumps(payload, indent=2))
    else:
        console.print(render(report, holders))


def _write(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def to_json(report: HostReport, holders: Optional[Holders] = None) -> dict[str, Any]:
    """The report as JSON-ready data, each card with its `holder` (None: free or unknown)."""
    payload = report.to_dict()
    for card, data in zip(report.all_cards(), payload["cards"]):
        data["holder"] = (holders or {}).get(card.key)
    payload["messages"] = absence_lines(report)
    return payload


def absence_lines(report: HostReport) -> list[str]:
    """Plain sentences for the kinds with no card: 'no MLU card found (cnmon not on PATH)'."""
    from engine.telemetry.detect import LABELS
    from engine.telemetry.stats import KINDS

    lines = []
    for kind in KINDS:
        if kind in report.errors:
            lines.append(f"{LABELS[kind]} cards could not be read: {report.errors[kind]}")
        elif kind in report.unavailable:
            lines.append(f"no {LABELS[kind]} card found ({report.unavailable[kind]})")
    return lines


def render(report: HostReport, holders: Optional[Holders] = None) -> RenderableType:
    """The cards table, a processes table when any card has processes, and the absence lines."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [_cards_table(report, holders)]
    processes = _processes_table(report)
    if processes is not None:
        parts.append(processes)
    parts.extend(Text(line) for line in absence_lines(report))
    return Group(*parts)


def _cards_table(report: HostReport, holders: Optional[Holders]) -> Any:
    from rich.table import Table
    from rich.text import Text

    stamp = time.strftime("%H:%M:%S", time.localtime(report.sampled_at))
    table = Table(title=f"devices at {stamp}", title_justify="left")
    columns = ["kind", "card", "name", "util", "memory", "temp", "power", "bus id"]
    columns += ["held by"] if holders is not None else []
    for column in columns:
        table.add_column(column, justify="right" if column in ("card", "util", "temp", "power") else "left")
    for card in report.all_cards():
        cells = _card_cells(card)
        if holders is not None:
            cells.append(holders.get(card.key, "free"))
        table.add_row(*(Text(cell) for cell in cells))  # Text: names and reasons may hold [brackets]
    return table


def _card_cells(card: CardStats) -> list[str]:
    row = card_row(card)
    return [row.kind, row.card, row.name, row.util, row.memory, row.temp, row.power, card.bus_id or NONE]


def _processes_table(report: HostReport) -> Any:
    from rich.table import Table
    from rich.text import Text

    rows = [(card, p) for card in report.all_cards() for p in card.processes]
    if not rows:
        return None
    table = Table(title="processes on cards", title_justify="left")
    for column in ("kind", "card", "pid", "memory", "command"):
        table.add_column(column)
    for card, process in rows:
        memory = NONE if process.mem_used_mib is None else f"{process.mem_used_mib} MiB"
        cells = [card.kind, str(card.index), str(process.pid), memory, process.command or NONE]
        table.add_row(*(Text(cell) for cell in cells))
    return table


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `devices` on the CLI's subparsers: its options are parsed once, here."""
    d = sub.add_parser("devices", parents=[common], help="the host's cards and which job holds each",
                       description="Cards per kind with live stats, and the job holding each card.")  # fmt: skip
    add_arguments(d)
    d.add_argument("--cluster", action="store_true",
                   help="the cluster's partitions and nodes (its executor's, e.g. sinfo)")  # fmt: skip
    d.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """`rn50tui devices`: the host's cards with their holders, or with --cluster the cluster's nodes."""
    if args.cluster:
        return _cluster(args)
    return int(run(args, holders(getattr(args, "db", None))) or 0)


def _cluster(args: argparse.Namespace) -> int:
    """`rn50tui devices --cluster`: the cluster's partitions and nodes, cards in use and in all."""
    from rn50tui.jobs.executors import clusters

    executor = clusters()[0]
    absent = executor.cluster_missing()
    if absent:
        return fail(absent.replace(f"--executor {executor.name}", "--cluster"), EXIT_ERROR)
    nodes = executor.cluster_nodes()
    if args.json:
        print(
            json.dumps(
                [{**n.__dict__, "cards_used": n.cards()[0], "cards_total": n.cards()[1]} for n in nodes]
            )
        )
        return 0
    rows = [executor.cluster_columns] + [n.row() for n in nodes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    sys.stdout.write("".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in rows))
    return 0


def holders(db: Optional[str]) -> Optional[dict[tuple[str, int], str]]:
    """Which job holds each card, or None when there is no job store here."""
    from rn50tui.jobs.manager import JobManager

    try:
        jm = JobManager(default_db_path(db), create=False)
    except StoreMissing:
        return None
    jm.reconcile()
    held = jm.holders()
    from rn50tui.jobs.view import idle_mark as mark

    for (node, kind, card), idle in jm.idle_cards().items():  # this host's cards: node None
        if node is None and (kind, card) in held:
            held[(kind, card)] += f" ({mark(idle)})"
    return held


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m rn50tui.commands.devices`: the same as `rn50tui devices`, without a job store (no "held by")."""
    parser = argparse.ArgumentParser(
        prog="rn50tui devices", description="Every MLU, CUDA and CPU card on this host."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
