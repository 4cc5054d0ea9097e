"""One view of a job for every front end: `jobs list`, `jobs show` and the app's screens render it, and
only add their style (harlequin's one computation for every front end: a second copy of a question is
where the front ends start to disagree).

Pure functions of a job (a Job, or for lists a JobSummary) and a time: its status with its marks, which
loss its `loss` is, the ETA (none for a stalled job: no progress, no honest estimate), the training time
over all its attempts, its cards and where it runs, its epoch (none for an inference job; a prepare's MB
instead), what a job that is not a training run has done (`work`), its rate, and its EMA curve. Durations read one way everywhere: 42s, 3m05s, 1h02m, 2d03h. No torch, no Rich.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from rn50tui.jobs.core.records import MetricRow
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.kinds import KINDS as WORK_KINDS
from rn50tui.jobs.policy.stall import StallMark, flag

SMOOTHED = "smoothed training loss (moving average over about a quarter epoch)"


def duration(seconds: float) -> str:
    """42s, 3m05s, 1h02m, 2d03h: two units at most, never negative."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def short_duration(seconds: float) -> str:
    """One unit, for narrow columns and marks: 45s, 12m, 3h, 2d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(max(seconds, 0))}s"


def idle_mark(idle_s: float) -> str:
    """A held card left idle (rn50tui.jobs.policy.idle): `held, idle 14m`."""
    return f"held, idle {short_duration(idle_s)}"


@dataclass(frozen=True)
class JobView:
    """What every front end shows of one job at one time (None: not known, or nothing to say)."""

    status: str  # `running`, `running (stalled 12m)`
    mark: Optional[StallMark]  # a running job's stall or a hung supervisor
    epoch: Optional[str]  # `2/3 · 17/30` while it runs, `2/3` after; None for an inference job
    eta_s: Optional[float]  # seconds left
    started_at: Optional[float]  # its first attempt's start
    ran_s: Optional[float]  # training time over every attempt (the current one to now)
    ran: Optional[str]  # `1m02s`, `1m02s (3 attempts)`
    cards: str  # `cpu:0`, `mlu:0,1`, `cuda×4` before they are granted
    where: str  # `local`, `slurm 12 RUNNING node[1-2]`
    work: Optional[str] = None  # a prepare: `1,234 images · 12.3 of 48.0 MB · ETA 3m05s`

    @property
    def eta(self) -> Optional[str]:
        return None if self.eta_s is None else duration(self.eta_s)


def view(job: Any, now: float) -> JobView:
    """The view of a Job or JobSummary at `now`."""
    mark = flag(job, now)
    status = (
        job.status.value if mark is None else f"{job.status.value} ({mark.kind} {short_duration(mark.for_s)})"
    )
    ran = ran_seconds(job, now)
    text = None
    if ran is not None:
        text = duration(ran) + (f" ({job.attempt} attempts)" if job.attempt > 1 else "")
    started = getattr(job, "first_started_at", None) or job.started_at
    eta = eta_seconds(job, now)
    return JobView(status, mark, epoch(job), eta, started, ran, text, cards(job), where(job), work(job, eta))


def work(job: Any, eta_s: Optional[float] = None) -> Optional[str]:
    """What a prepare has done, in words, with its ETA while it runs (None for any other kind, or before
    its first progress record): `1,234 images · 12.3 of 48.0 MB · ETA 3m05s`."""
    if job.kind != "prepare" or not job.note or job.iters_per_epoch is None:
        return None
    return job.note + (f" · ETA {duration(eta_s)}" if eta_s is not None else "")


def ran_seconds(job: Any, now: float) -> Optional[float]:
    """Training time over every attempt: the ended ones' together, plus the current one's so far."""
    total = getattr(job, "ran_s", None)
    current = job.current if hasattr(job, "current") else None
    ended = current is not None and current.status is not None or job.status.terminal
    if job.started_at is not None and not ended:  # the current attempt runs: to now
        total = (total or 0.0) + max(0.0, now - job.started_at)
    elif total is None and job.started_at is not None and job.finished_at is not None:
        total = max(0.0, job.finished_at - job.started_at)  # a row written before the totals were kept
    return total


def epoch(job: Any) -> Optional[str]:
    """`2/3 · 17/30`: epoch of epochs, and while it runs iteration of iterations per epoch; None for an
    inference job (it has no schedule) or before the engine said."""
    if job.kind == "infer" or not job.epoch or not job.epochs:
        return None
    if job.kind in WORK_KINDS:  # a prepare's progress: bytes done of all, as MB
        if job.kind != "prepare" or not job.iters_per_epoch:
            return None
        places = 0 if job.iters_per_epoch >= 100e6 else 1
        return f"{(job.iteration or 0) / 1e6:,.{places}f}/{job.iters_per_epoch / 1e6:,.{places}f} MB"
    text = f"{job.epoch}/{job.epochs}"
    if job.iters_per_epoch and job.status.active:
        text += f" · {job.iteration or 0}/{job.iters_per_epoch}"
    return text


def cards(job: Any) -> str:
    """cpu:0, mlu:0,1, or cuda×4 while not granted yet."""
    if job.cards_granted:
        return f"{job.device}:{','.join(map(str, job.cards_granted))}"
    return f"{job.device}×{job.cards_requested}"


def where(job: Any) -> str:
    """Where it runs, in a few words: `local`, `slurm 12 RUNNING node[1-2]`."""
    from rn50tui.jobs.executors import describe  # the executors import their transports: only when asked

    return describe(job)


def eta_seconds(job: Any, now: float) -> Optional[float]:
    """Seconds left: the follower's estimate (iterations, validation passes and checkpoints timed on this
    job: rn50tui/jobs/policy/eta.py), else remaining images / images per second, else the elapsed-time rate;
    None unless it runs, and None while it is stalled."""
    if job.status is not Status.RUNNING or not job.epochs or not job.iters_per_epoch or not job.epoch:
        return None
    if job.stalled_at:
        return None  # no progress: no honest ETA
    if job.kind in WORK_KINDS:  # a prepare's own estimate, from its rate (rn50tui/jobs/report.py)
        return None if not job.eta_end else max(0.0, job.eta_end - now)
    if job.eta_end:
        return max(0.0, job.eta_end - now)
    total = job.epochs * job.iters_per_epoch
    done = (job.epoch - 1) * job.iters_per_epoch + (job.iteration or 0)
    remaining = max(0, total - done)
    batch = batch_size(getattr(job, "argv", None) or ())
    if job.ips and batch:
        return remaining * batch * max(1, job.world_size or job.cards_requested) / job.ips
    progress = job.progress
    elapsed = None if job.started_at is None else max(0.0, now - job.started_at)
    if elapsed and progress:
        return elapsed * (1 - progress) / progress
    return None


def batch_size(argv: Sequence[str]) -> Optional[int]:
    """The per-card batch an engine argv runs with, as the engine's own parser reads it (its default when
    the argv sets none); None when the argv is not the engine's. Remembered per argv: the app asks for
    each running job on every poll, and building the engine's parser costs milliseconds."""
    return _batch_size(tuple(argv))


@functools.lru_cache(maxsize=1024)
def _batch_size(argv: tuple[str, ...]) -> Optional[int]:
    from engine.config import build_parser  # torch-free; only an estimate without the follower's needs it

    try:
        return int(build_parser().parse_known_args(list(argv))[0].batch_size)
    except (SystemExit, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class StartEstimate:
    """When a queued job should start: `at` (None: unknown), and the job whose end decides it."""

    at: Optional[float]
    after_job: Optional[int]
    text: str  # `starts in about 2h10m, when job 7 ends`, `unknown: job 7 has no ETA`


def start_estimates(queued: Sequence[Any], active: Sequence[Any], capacity: dict[str, int],
                    dependencies: dict[int, list[int]], now: float) -> dict[int, StartEstimate]:  # fmt: skip
    """An estimate for each queued job (given in the scheduler's order) from the ETAs of the jobs holding
    cards (`active`, starting or running) and the jobs ahead of it: each job ahead takes the first cards
    that free up and keeps them for a time nobody knows yet, so a job behind one that must wait for those
    is "unknown"; a job that waits for another starts after it ends. Dependencies of jobs not yet running
    make it unknown too (a queued job has no ETA)."""
    free: dict[str, int] = {kind: n for kind, n in capacity.items()}
    releases: dict[str, list[list[Any]]] = {}  # kind → [[time or None, cards, job id], …]
    ends: dict[int, Optional[float]] = {}
    for job in active:
        n = len(job.cards_granted or ()) or (1 if job.device == "cpu" else max(1, job.cards_requested))
        eta = eta_seconds(job, now)
        ends[job.id] = None if eta is None else now + eta
        free[job.device] = free.get(job.device, 0) - n
        releases.setdefault(job.device, []).append([ends[job.id], n, job.id])
    out: dict[int, StartEstimate] = {}
    queued_ids = {job.id for job in queued}
    active_ids = {job.id for job in active}
    for job in queued:
        start: float = now
        by: Optional[int] = None
        unknown: Optional[str] = None
        for dep in dependencies.get(job.id, []):
            end = ends.get(dep)
            if dep in queued_ids:
                unknown = f"unknown: it waits for job {dep}, which has not started"
            elif dep in ends and end is None:
                unknown = f"unknown: it waits for job {dep}, which has no ETA"
            elif end is not None and end > start:
                start, by = end, dep
        need = 1 if job.device == "cpu" else max(1, job.cards_requested)
        kind_releases = sorted(releases.get(job.device, []), key=lambda r: (r[0] is None, r[0] or 0.0))
        have = max(0, free.get(job.device, 0))
        taken_from: list[list[Any]] = []
        for release in kind_releases:
            if have >= need:
                break
            if release[0] is None:
                what = "has no ETA" if release[2] in active_ids else "is ahead of it and has not started"
                unknown = unknown or f"unknown: job {release[2]} {what}"
                break
            have += release[1]
            taken_from.append(release)
            if release[0] > start:
                start, by = release[0], release[2]
        if unknown is None and have < need:
            unknown = f"unknown: this host has {capacity.get(job.device, 0)} {job.device} card(s)"
        if unknown is not None:
            out[job.id] = StartEstimate(None, None, unknown)
        else:
            when = (
                "starts at the next scheduling"
                if start - now < 1
                else f"starts in about {duration(start - now)}"
            )
            out[job.id] = StartEstimate(start, by, when + (f", when job {by} ends" if by is not None else ""))
        # it takes its cards (the free ones first) for a time nobody knows yet
        left = need
        use = min(left, max(0, free.get(job.device, 0)))
        free[job.device] = free.get(job.device, 0) - use
        left -= use
        for release in taken_from:
            if left <= 0:
                break
            take = min(left, release[1])
            release[1] -= take
            left -= take
        releases[job.device] = [r for r in releases.get(job.device, []) if r[1] > 0]
        releases[job.device].append([None, need, job.id])
        ends[job.id] = None
    return out


@dataclass(frozen=True)
class LossKind:
    """Which loss a job's `loss` is: the mean of epoch `epoch` once it ended, else the smoothed recent one."""

    epoch: Optional[int]  # None: the smoothed training loss of the epoch that runs

    @property
    def short(self) -> str:
        """`epoch 2 mean`, `smoothed` (beside the number, in the app's header)."""
        return "smoothed" if self.epoch is None else f"epoch {self.epoch} mean"

    @property
    def long(self) -> str:
        """The words of `jobs show`."""
        return SMOOTHED if self.epoch is None else f"mean training loss of epoch {self.epoch}"


def loss_kind(
    last_window_id: Optional[int], last_epoch_id: Optional[int], last_epoch: Optional[int]
) -> LossKind:
    """From the ids of the job's newest training window and of its newest epoch record with a loss (the
    follower sets `loss` from whichever came last: rn50tui/jobs/report.py)."""
    if last_epoch_id is not None and (last_window_id is None or last_epoch_id > last_window_id):
        return LossKind(last_epoch)
    return LossKind(None)


def loss_is(job: Any, window: Optional[MetricRow], epoch_row: Optional[MetricRow]) -> Optional[str]:
    """Which loss the job's `loss` is, in `jobs show`'s words (None before there is one)."""
    if job.loss is None:
        return None
    with_loss = epoch_row if epoch_row is not None and "train.loss" in epoch_row.values else None
    return loss_kind(window.id if window else None, with_loss.id if with_loss else None,
                     with_loss.epoch if with_loss else None).long  # fmt: skip


def ema_curve(epoch_rows: Iterable[MetricRow]) -> dict[str, dict[int, float]]:
    """Val top-1 by epoch of the weights and of their EMA, for a --use-ema job ({} otherwise)."""
    top1: dict[int, float] = {}
    ema: dict[int, float] = {}
    for row in epoch_rows:
        if row.epoch is not None and "val_ema.top1" in row.values:
            ema[row.epoch] = round(float(row.values["val_ema.top1"]), 3)
            if "val.top1" in row.values:
                top1[row.epoch] = round(float(row.values["val.top1"]), 3)
    return {"top1_by_epoch": top1, "ema_top1_by_epoch": ema} if ema else {}
