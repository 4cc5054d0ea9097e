"""One job's chart history, kept in memory and grown by increments read from the store.

A `JobHistory` is owned by one screen and updated only inside that screen's (exclusive) poll worker;
the UI gets frozen `ChartData` views, downsampled for the width it draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from rn50tui.app.data import CHART_POINTS, METRIC_BATCH, AppJobManager
from rn50tui.app.series import Points, Series, bucket_max
from rn50tui.jobs import view
from rn50tui.jobs.core.store import ChartPoint, DeviceSample, Job
from rn50tui.jobs.policy.smoothing import LossSmoother

# x: minutes since the job's first record. loss: each -p window's raw mean; loss_smooth: the average the
# jobs list shows while an epoch runs; loss_epoch: each epoch's mean (what it shows once the epoch ends)
TIME_CHARTS = ("loss", "loss_smooth", "loss_epoch", "ips", "lr")
EPOCH_CHARTS = ("top1", "top5", "ema_top1")  # x: epoch; ema_top1 only for --use-ema jobs
CARD_METRICS = ("util_percent", "mem_used_mib", "temp_c", "power_w")


@dataclass(frozen=True)
class CardView:
    """What one card panel draws: its name, latest values and a sparkline per metric."""

    device: str
    card: int
    name: Optional[str]
    latest: dict[str, Optional[float]]
    sparks: dict[str, list[float]]
    mem_total_mib: Optional[float]
    power_cap_w: Optional[float]
    node: Optional[str] = None  # the machine holding it (multi-node jobs)


@dataclass(frozen=True)
class ChartData:
    """A frozen, display-sized view of a job's history."""

    version: int
    charts: dict[str, Points]
    cards: tuple[CardView, ...]
    points: int  # metric records held (for the status line)
    loss_kind: Optional[str] = None  # what the job's loss is now: "epoch N mean" or "smoothed"


@dataclass
class CardHistory:
    """One card's samples over time (by CARD_METRICS), and what its latest sample says is fixed about it."""

    node: Optional[str]  # the machine holding the card; None: this host
    device: str
    card: int
    series: dict[str, Series] = field(default_factory=lambda: {m: Series() for m in CARD_METRICS})
    name: Optional[str] = None
    mem_total_mib: Optional[float] = None
    power_cap_w: Optional[float] = None

    def add(self, s: DeviceSample) -> None:
        self.name = s.name or self.name
        self.mem_total_mib = s.mem_total_mib if s.mem_total_mib is not None else self.mem_total_mib
        self.power_cap_w = s.power_cap_w if s.power_cap_w is not None else self.power_cap_w
        for metric in CARD_METRICS:
            self.series[metric].append(s.time, getattr(s, metric))

    def view(self, width: int, span: Optional[float]) -> CardView:
        sparks, latest = {}, {}
        for metric, series in self.series.items():
            _, ys = series.view(max(1, width // 2), span)
            sparks[metric] = bucket_max(list(ys), width)
            latest[metric] = series.last()
        return CardView(
            self.device, self.card, self.name, latest, sparks, self.mem_total_mib, self.power_cap_w, self.node
        )


class JobHistory:
    """Every chart point of one job read so far, and where to continue reading."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.last_id = 0
        self.settled = False  # True once a finished job's records are all held (no more chart reads)
        self.last_sample: Optional[float] = None
        self.base_time: Optional[float] = None
        self.version = 0
        self.records = 0
        self.series: dict[str, Series] = {
            name: Series() for name in (*TIME_CHARTS, *EPOCH_CHARTS, "loss_by_epoch")
        }
        self.smoother = LossSmoother()
        self.last_window: Optional[int] = None  # the newest training record's id
        self.last_epoch_loss: Optional[tuple[int, int]] = None  # (id, epoch) of the newest epoch mean
        self.cards: dict[tuple[str, str, int], CardHistory] = {}

    def update(self, client: AppJobManager, job: Job, samples: bool = True) -> bool:
        """Read what the store has beyond what is held; True if anything new arrived."""
        if job.status.terminal and self.settled:
            points = []  # a finished job's records are all read: nothing more to ask the store
        elif self.last_id == 0 and job.status.terminal:  # a finished job: its history downsampled, once
            points = client.chart_points_sampled(self.job_id, CHART_POINTS)
            self.add_points(points, job.iters_per_epoch)
            self.records = client.chart_record_count(self.job_id)  # the records they stand for
            self.settled = True
        else:
            points = client.chart_points(self.job_id, self.last_id, METRIC_BATCH)
            self.add_points(points, job.iters_per_epoch)
            self.settled = job.status.terminal and not points  # ended, and its last records read
        new_samples = client.device_samples(self.job_id, since=self.last_sample) if samples else []
        self.add_samples(new_samples)
        changed = bool(points or new_samples)
        self.version += changed
        return changed

    def add_points(self, points: list[ChartPoint], iters_per_epoch: Optional[int]) -> None:
        for p in points:
            self.last_id = p.id
            self.records += 1
            if p.phase == "train":
                self._add_train(p, iters_per_epoch)
            elif p.phase == "epoch" and p.epoch is not None:
                self.series["top1"].append(p.epoch, p.top1)
                self.series["top5"].append(p.epoch, p.top5)
                self.series["ema_top1"].append(p.epoch, p.ema_top1)
                if p.loss is not None and self.base_time is not None:
                    self.series["loss_epoch"].append((p.time - self.base_time) / 60.0, p.loss)
                if p.loss is not None:
                    self.last_epoch_loss = (p.id, p.epoch)

    @property
    def loss_kind(self) -> Optional[str]:
        """What the job's loss is now (rn50tui.jobs.view.loss_kind, as `jobs show` says it); None before any."""
        if self.last_window is None and self.last_epoch_loss is None:
            return None
        epoch_id, epoch = self.last_epoch_loss or (None, None)
        return view.loss_kind(self.last_window, epoch_id, epoch).short

    def _add_train(self, p: ChartPoint, iters_per_epoch: Optional[int]) -> None:
        self.last_window = p.id
        if self.base_time is None:
            self.base_time = p.time
        minutes = (p.time - self.base_time) / 60.0
        self.series["loss"].append(minutes, p.loss)
        self.series["ips"].append(minutes, p.ips)
        self.series["lr"].append(minutes, p.lr)
        if p.loss is None or p.epoch is None or p.iteration is None:
            return
        smooth = self.smoother.add(p.epoch, p.iteration, p.loss, iters_per_epoch)
        self.series["loss_smooth"].append(minutes, smooth)
        if iters_per_epoch:
            self.series["loss_by_epoch"].append(p.epoch - 1 + p.iteration / iters_per_epoch, smooth)

    def add_samples(self, samples: list[DeviceSample]) -> None:
        for s in samples:
            key = (s.node or "", s.device, s.card)  # sorted: a multi-node job's cards grouped by node
            if key not in self.cards:
                self.cards[key] = CardHistory(s.node, s.device, s.card)
            self.cards[key].add(s)
            self.last_sample = s.time if self.last_sample is None else max(self.last_sample, s.time)

    def view(self, buckets: int, span_s: Optional[float], spark_width: int = 40) -> ChartData:
        """Display-sized copies: time charts cut to the last `span_s` seconds (all when None)."""
        span_min = None if span_s is None else span_s / 60.0
        charts = {name: self.series[name].view(buckets, span_min) for name in TIME_CHARTS}
        charts.update({name: self.series[name].view(buckets) for name in (*EPOCH_CHARTS, "loss_by_epoch")})
        cards = tuple(self.cards[k].view(spark_width, span_s) for k in sorted(self.cards))
        return ChartData(self.version, charts, cards, self.records, self.loss_kind)
