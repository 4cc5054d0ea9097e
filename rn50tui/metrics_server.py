"""`rn50tui metrics --listen 127.0.0.1:9108`: the job store in Prometheus's text format (prometheus_client).

A collector reads the store at each scrape (three indexed queries, no cache to drift) and yields:

    rn50tui_jobs{status}                                         jobs per status
    rn50tui_job_{images_per_second, train_loss, val_top1_ratio, epoch, progress_ratio, eta_seconds,
                 stalled, data_wait_ratio}{job, name, executor, node, kind}          every running job
    rn50tui_card_{utilization_ratio, memory_used_bytes, memory_total_bytes, temperature_celsius,
                  power_watts, power_limit_watts}{node, kind, card, job, name}       every card sampled
    rn50tui_card_info{node, kind, card, job, name, executor, model} 1                 the job holding it

`kind` is the card kind (mlu, cuda, cpu) everywhere; `node` is the host a card is on (this host's name for
a local job), and `card` its index there, so `node`+`card` join with mlu-exporter's and DCGM exporter's
series (README: "Prometheus and Grafana"). The `job` label is the job id: scrape with `honor_labels: true`,
or Prometheus renames it `exported_job`. Read-only: nothing here writes the store or reconciles.
"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Iterator
from typing import Any, Optional

from engine.tensorboard import data_wait_ratio
from rn50tui.extras import require
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.policy import stall

DEFAULT_LISTEN = "127.0.0.1:9108"
SAMPLE_WINDOW_S = 10.0  # a node's samples this close to its job's newest one are current (5 rounds of 2 s)
MIB = 1 << 20
JOB_LABELS = ("job", "name", "executor", "node", "kind")
CARD_LABELS = ("node", "kind", "card", "job", "name")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `metrics` command's options (registered by rn50tui/cli.py)."""
    m = sub.add_parser("metrics", parents=[common], help="serve the job store to Prometheus (/metrics)",
                       description="Serve running jobs' throughput, loss, accuracy, progress and ETA, job counts "
                       "and the sampled cards' stats in Prometheus's text format, read from the store at each "
                       "scrape. Read-only. Needs prometheus-client (pip install 'rn50tui[prometheus]').")  # fmt: skip
    m.add_argument("--listen", default=parse_listen(DEFAULT_LISTEN), type=parse_listen, metavar="HOST:PORT",
                   help=f"address to serve on (default {DEFAULT_LISTEN})")  # fmt: skip
    m.add_argument("--allow-remote", action="store_true",
                   help="needed to listen beyond loopback: anyone who reaches the port reads job names and "
                   "metrics (never changes them)")  # fmt: skip


def run(args: argparse.Namespace, db: str) -> int:
    """The command: check the address, open the store, serve until Ctrl+C."""
    from rn50tui import serve
    from rn50tui.jobs.core.errors import JobsError

    require("prometheus_client", "prometheus", "rn50tui metrics")
    host, port = args.listen
    if not serve.is_loopback(host) and not args.allow_remote:
        raise JobsError(f"--listen {host}:{port} lets other machines read every job's name and metrics: "
                        "add --allow-remote to mean it")  # fmt: skip
    store = JobStore(db, create=False)
    try:
        server = make_server(store, host, port)
        where = f"[{host}]" if ":" in host else host
        print(
            f"rn50tui: serving Prometheus metrics on http://{where}:{port}/metrics (Ctrl+C stops)", flush=True
        )
        try:
            server.serve_forever()
        finally:
            server.server_close()
    finally:
        store.close()
    return 0


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:9108`, `[::1]:9108` or `:9108` (all interfaces) → (host, port); a usage error otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return (host.strip("[]") or "0.0.0.0"), int(port)


def make_server(store: JobStore, host: str, port: int) -> Any:
    """A WSGI server answering /metrics from `store` (one request at a time: one SQLite connection)."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from prometheus_client import CollectorRegistry, make_wsgi_app

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # a line per scrape would flood the log
            pass

    class Server(WSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    return make_server(host, port, make_wsgi_app(registry), server_class=Server, handler_class=Quiet)


class StoreCollector:
    """A prometheus_client collector over the job store: every scrape reads it afresh."""

    def __init__(self, store: JobStore, clock: Any = time.time, hostname: Optional[str] = None) -> None:
        self.store, self.clock = store, clock
        self.hostname = hostname or socket.gethostname()

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        now = self.clock()
        counts = self.store.status_counts()
        jobs = GaugeMetricFamily("rn50tui_jobs", "Jobs in the store per status.", labels=["status"])
        for status in Status:
            jobs.add_metric([status.value], counts.get(status.value, 0))
        yield jobs
        running = self.store.running_with_data_times()
        yield from self._job_families(running, now, GaugeMetricFamily)
        names = {j.id: (j.name, j.executor) for j, _, _ in running}
        yield from self._card_families(names, GaugeMetricFamily)

    def _job_families(self, running: list, now: float, gauge: Any) -> Iterator[Any]:
        families = {
            key: gauge(f"rn50tui_job_{key}", doc, labels=list(JOB_LABELS))
            for key, doc in (
                ("images_per_second", "Training throughput of the last -p window (images/s, all ranks)."),
                (
                    "train_loss",
                    "Training loss as `jobs list` shows it (smoothed; an epoch's mean at its end).",
                ),
                ("val_top1_ratio", "Top-1 accuracy of the last validation, 0 to 1."),
                ("epoch", "The epoch being trained, 1-based."),
                ("progress_ratio", "Share of the schedule's training iterations done, 0 to 1."),
                ("eta_seconds", "Seconds until the job is predicted to end."),
                ("stalled", "1 while the job makes no progress or its supervisor hangs, else 0."),
                ("data_wait_ratio", "Share of the last -p window's step time spent waiting for data."),
            )
        }
        for job, data_time, compute_time in running:
            labels = [str(job.id), job.name, job.executor, self._job_node(job), job.device]
            values = {
                "images_per_second": job.ips,
                "train_loss": job.loss,
                "val_top1_ratio": None if job.top1 is None else job.top1 / 100.0,
                "epoch": job.epoch,
                "progress_ratio": job.progress,
                "eta_seconds": None if job.eta_end is None else max(0.0, job.eta_end - now),
                "stalled": 0.0 if stall.flag(job, now) is None else 1.0,
                "data_wait_ratio": data_wait_ratio(
                    {"train.data_time": data_time, "train.compute_time": compute_time}
                ),
            }
            for key, value in values.items():
                if value is not None:  # unknown yet: no sample rather than a made-up 0
                    families[key].add_metric(labels, float(value))
        yield from families.values()

    def _card_families(self, names: dict[int, tuple[str, str]], gauge: Any) -> Iterator[Any]:
        latest = {}  # (node, kind, card) → (job id, sample): each card's newest, from the store
        for job_id, s in self.store.latest_running_samples(SAMPLE_WINDOW_S):
            if job_id in names:
                latest[(s.node or self.hostname, s.device, s.card)] = (job_id, s)
        families = {
            key: gauge(f"rn50tui_card_{key}", doc, labels=list(CARD_LABELS))
            for key, doc in (
                ("utilization_ratio", "Card utilisation, 0 to 1."),
                ("memory_used_bytes", "Card memory in use, bytes."),
                ("memory_total_bytes", "Card memory in all, bytes."),
                ("temperature_celsius", "Card temperature, degrees Celsius."),
                ("power_watts", "Card power draw, watts."),
                ("power_limit_watts", "Card power cap, watts."),
            )
        }
        idle = gauge("rn50tui_card_held_idle_seconds", "Seconds a held card has stayed under 5% utilisation, "
                     "once past $RN50TUI_IDLE_S (10 min); 0 while it is used.", labels=list(CARD_LABELS))  # fmt: skip
        idle_for = self._idle(names)
        info = gauge("rn50tui_card_info", "The job holding the card (value 1).",
                     labels=[*CARD_LABELS, "executor", "model"])  # fmt: skip
        for (node, kind, card), (job_id, s) in sorted(latest.items()):
            name, executor = names[job_id]
            labels = [node, kind, str(card), str(job_id), name]
            values = {
                "utilization_ratio": None if s.util_percent is None else s.util_percent / 100.0,
                "memory_used_bytes": None if s.mem_used_mib is None else s.mem_used_mib * MIB,
                "memory_total_bytes": None if s.mem_total_mib is None else s.mem_total_mib * MIB,
                "temperature_celsius": s.temp_c,
                "power_watts": s.power_w,
                "power_limit_watts": s.power_cap_w,
            }
            for key, value in values.items():
                if value is not None:
                    families[key].add_metric(labels, float(value))
            info.add_metric([*labels, executor, s.name or ""], 1.0)
            if s.util_percent is not None:  # a CPU slot has no utilisation to judge
                idle.add_metric(labels, idle_for.get((s.node, kind, card), 0.0))
        yield from families.values()
        yield info
        yield idle

    def _idle(self, names: dict[int, tuple[str, str]]) -> dict[tuple[Any, ...], float]:
        """{(node as sampled, kind, card): seconds idle} of the running jobs' held cards (policy/idle.py)."""
        from rn50tui.jobs.policy.idle import idle_after, idle_cards

        now = self.clock()
        out: dict[tuple[Any, ...], float] = {}
        for job_id in names:
            out.update(
                idle_cards(self.store.device_samples(job_id, since=now - 6 * max(idle_after(), 60.0)), now)
            )
        return out

    def _job_node(self, job: Any) -> str:
        """Where the job runs: a Slurm job's node list, else this host (a local job's supervisor is here)."""
        nodes = (job.executor_handle or {}).get("nodes") if job.executor != "local" else None
        return nodes if nodes and nodes != "(null)" else self.hostname
