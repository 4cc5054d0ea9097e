"""Follow an engine's raport.json (engine/events.py) into the store: metric rows, progress, latest values.

The job's `loss` is what a person expects to read: the smoothed recent training loss while an epoch
runs (rn50tui/jobs/policy/smoothing.py), the epoch's mean once it ends (so a finished job shows its last
epoch's mean); the raw last window stays in the metric rows.

The reader reads from the attempt's saved offset, so nothing is read twice and nothing is lost across
supervisor restarts; it never writes by itself: :meth:`ReportReader.poll` returns a :class:`Batch` that the
supervisor commits in one short transaction together with its heartbeat and card samples.

A job that is not a training run (a prepare: rn50tui/jobs/kinds.py) writes STATUS `work` records instead
of training ones: each becomes a metric row of phase `work` (its progress history, and progress for the
stall watch) and sets the job's progress columns: `iteration` of `iters_per_epoch` are its bytes done of
all (epoch 1 of 1), `ips` its images/s, `eta_end` its own estimate, `note` its images and MB in words.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from engine.events import Record, RunEnd, iter_records, read_from, stored_position
from rn50tui.jobs.core.records import MetricRow
from rn50tui.jobs.core.store import DeviceSample, JobStore
from rn50tui.jobs.policy.smoothing import LossSmoother

METRIC_PHASES = ("train", "val", "epoch", "summary")
WORK_PHASE = "work"  # the metric rows of a job that is not a training run
MB = 1e6


@dataclass
class RunState:
    """What this attempt's records said about how it ends."""

    run_end: Optional[RunEnd] = None  # from the STATUS run_end record
    error: Optional[str] = None
    stopping_signal: Optional[str] = None
    started: bool = False
    input_note: Optional[str] = None  # the input-bound note of the last epoch, if it was


@dataclass
class Batch:
    """Everything one poll read: metric rows and the job columns to update."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    updates: dict[str, Any] = field(default_factory=dict)
    offset: int = 0
    start_offset: int = 0  # where this batch began: a failed commit rewinds the reader here
    start_smoother: LossSmoother = field(default_factory=LossSmoother)  # and its loss average to this


class ReportReader:
    """Turns the records of one job's raport.json, from a byte offset on, into store writes.

    Records written before `attempt_started` belong to the previous attempt (its tail, read late after a
    supervisor died); they are stored under that attempt and do not touch this attempt's progress.
    """

    def __init__(self, job_id: int, attempt: int, raport: Path, offset: int = 0,
                 attempt_started: Optional[float] = None, best_top1: Optional[float] = None,
                 loss: Optional[float] = None, iters_per_epoch: Optional[int] = None) -> None:  # fmt: skip
        self.job_id, self.attempt, self.raport = job_id, attempt, raport
        self.offset = offset
        self.attempt_started = attempt_started
        self.best_top1 = best_top1
        self.smoother = LossSmoother(value=loss)  # a restarted supervisor goes on from the stored loss
        self.iters_per_epoch = iters_per_epoch
        self.state = RunState()
        self.records_read = 0
        self.work_note: Optional[str] = None  # a prepare's last progress in words: kept when it ends

    def poll(self) -> Batch:
        start = self.offset
        records, self.offset = read_from(self.raport, self.offset)
        batch = Batch(offset=self.offset, start_offset=start, start_smoother=self.smoother.copy())
        for rec in records:
            self.records_read += 1
            self._apply(rec, batch)
        batch.updates["raport_offset"] = self.offset
        return batch

    def rewind(self, batch: Batch) -> None:
        """Read `batch` again next time (its commit failed); re-applying its records is harmless."""
        self.offset = batch.start_offset
        self.smoother = batch.start_smoother.copy()

    def _apply(self, rec: Record, batch: Batch) -> None:
        late = self.attempt_started is not None and self.attempt > 1 and rec.timestamp < self.attempt_started
        attempt = self.attempt - 1 if late else self.attempt
        phase = rec.phase
        if phase in METRIC_PHASES:
            batch.rows.append(_metric_row(self.job_id, attempt, rec))
            if not late:
                self._latest(rec, batch.updates)
        elif rec.type == "STATUS" and rec.event == "checkpoint":
            data = rec.data or {}
            epoch, iteration = stored_position(int(data.get("epoch") or 0), int(data.get("iteration") or 0))
            batch.updates.update(last_checkpoint=data.get("path"), checkpoint_epoch=epoch,
                                 checkpoint_iteration=iteration)  # fmt: skip
        elif rec.type == "STATUS" and rec.event == "work":
            batch.rows.append(_work_row(self.job_id, attempt, rec))
            if not late:
                self.work_note = work_updates(rec, batch.updates)
        elif rec.type == "STATUS" and not late:
            self._status(rec.event or "", rec.data or {}, batch.updates)

    def _status(self, event: str, data: dict[str, Any], updates: dict[str, Any]) -> None:
        if data.get("train_iters"):
            self.iters_per_epoch = int(data["train_iters"])
        if event == "run_start":
            self.state.started = True
            done, into = stored_position(int(data.get("start_epoch") or 0), int(data.get("start_iter") or 0))
            updates.update(epochs=data.get("epochs"), iters_per_epoch=data.get("train_iters"),
                           val_iters=data.get("val_iters"), world_size=data.get("world_size"),
                           epoch=done + 1, iteration=into)  # fmt: skip
        elif event == "epoch_start":
            updates.update(epoch=data.get("epoch"), iteration=data.get("start_iter", 0),
                           iters_per_epoch=data.get("train_iters"))  # fmt: skip
        elif event == "error":
            self.state.error = str(data.get("message"))
        elif event == "warning":  # shown with the job while it runs (a disk too small for its checkpoints)
            updates["note"] = f"warning: {data.get('message')}"
        elif event == "input_bound":  # what to do about cards waiting for data, until an epoch is not
            self.state.input_note = updates["note"] = str(data.get("message"))
        elif event == "compute_bound":
            self.state.input_note = updates["note"] = None
        elif event == "best":  # the whole history so far: a restarted follower needs no state of its own
            updates["time_to_best"] = json.dumps(data.get("history") or [])
        elif event == "stopping":
            self.state.stopping_signal = str(data.get("signal"))
        elif event == "run_end":
            self.state.run_end = _run_end(data.get("status"))
            # e.g. early stopping: completed, and why before --epochs; a warning ends with the run, the
            # verdict of an input-bound last epoch stays (why the run was slow)
            updates["note"] = (
                str(data["reason"]) if data.get("reason") else (self.state.input_note or self.work_note)
            )

    def _latest(self, rec: Record, updates: dict[str, Any]) -> None:
        data, step = rec.data or {}, rec.step
        if rec.phase == "train":
            updates.update(epoch=step[0], iteration=step[1])
            for column, name in (("lr", "train.lr"), ("ips", "train.total_ips")):
                if name in data:
                    updates[column] = data[name]
            if "train.loss" in data:
                updates["loss"] = self.smoother.add(
                    step[0], step[1], data["train.loss"], self.iters_per_epoch
                )
        elif rec.phase in ("epoch", "summary"):
            if "train.loss" in data:  # the epoch's mean over every image (the summary repeats the last)
                updates["loss"] = data["train.loss"]
            if "train.total_ips" in data:  # the epoch's rate: what a finished job's img/s reads
                updates["ips"] = data["train.total_ips"]
            for column, name in (("top1", "val.top1"), ("top5", "val.top5"), ("val_loss", "val.loss")):
                if name in data:
                    updates[column] = data[name]
            if rec.phase == "epoch" and "val.top1" in data:
                self.best_top1 = max(self.best_top1 or 0.0, float(data["val.top1"]))
                updates["best_top1"] = self.best_top1
            if rec.phase == "summary" and "val.top1" in data and self.best_top1 is None:
                updates["best_top1"] = data["val.top1"]  # an evaluation: its top-1 is the result


def _metric_row(job_id: int, attempt: int, rec: Record) -> tuple[Any, ...]:
    step = rec.step or []
    epoch = step[0] if len(step) >= 1 else None
    iteration = step[-1] if len(step) >= 2 else None  # train: [e, it]; val: [e, train_iters, val_it]
    return (job_id, attempt, rec.timestamp, epoch, iteration, rec.phase, json.dumps(rec.data or {}))


def work_updates(rec: Record, updates: dict[str, Any]) -> str:
    """The job columns of one `work` record (see the module docstring); returns its note."""
    data = rec.data or {}
    done, total, images = (
        int(data.get("done") or 0),
        max(1, int(data.get("total") or 0)),
        int(data.get("images") or 0),
    )
    eta = data.get("eta_s")
    note = work_note(done, total, images)
    updates.update(epoch=1, epochs=1, iteration=min(done, total), iters_per_epoch=total, ips=data.get("ips"),
                   eta_end=None if eta is None else rec.timestamp + float(eta), note=note)  # fmt: skip
    return note


def work_note(done: int, total: int, images: int) -> str:
    """`1,234 images · 12.3 of 48.0 MB`: a prepare's progress in words."""
    return f"{images:,} images · {done / MB:,.1f} of {total / MB:,.1f} MB"


def _work_row(job_id: int, attempt: int, rec: Record) -> tuple[Any, ...]:
    data = {
        k: v for k, v in (rec.data or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    return (job_id, attempt, rec.timestamp, 1, int(data.get("done", 0)), WORK_PHASE, json.dumps(data))


def raport_rows(job_id: int, raport: Path, attempt_starts: Sequence[tuple[int, Optional[float]]],
                attempt: Optional[int] = None) -> list[MetricRow]:  # fmt: skip
    """Every metric record of a job's raport.json as the store keeps them (full resolution: what `export`
    reads once the store's copy was thinned). `attempt_starts`: (number, started_at) of each attempt; a
    record belongs to the last attempt started at or before it (as the follower filed it). Ids are None."""
    starts = sorted((s, n) for n, s in attempt_starts if s is not None)
    rows = []
    for rec in iter_records(raport):
        if rec.phase not in METRIC_PHASES:
            continue
        number = min((n for n, _ in attempt_starts), default=1)
        for start, n in starts:
            if rec.timestamp + 1e-6 >= start:
                number = n
        if attempt is not None and number != attempt:
            continue
        _, _, at, epoch, iteration, phase, data = _metric_row(job_id, number, rec)
        rows.append(MetricRow(None, job_id, number, at, epoch, iteration, phase, json.loads(data)))  # type: ignore[arg-type]
    return rows


def commit(store: JobStore, job_id: int, batch: Batch, samples: list[DeviceSample], now: float) -> None:
    """Write one poll's rows, samples, progress and heartbeat in one short transaction."""
    with store.transaction():
        if batch.rows:
            store.add_metrics(batch.rows)
        if samples:
            store.add_samples(job_id, samples)
        store.update_job(job_id, heartbeat=now, **batch.updates)


def _run_end(value: Any) -> Optional[RunEnd]:
    """The run_end status as a RunEnd; an unknown word (a newer engine) counts as a failure."""
    try:
        return RunEnd(value)
    except ValueError:
        return RunEnd.FAILED


def attempt_state(job_id: int, attempt: int, raport: Path, attempt_started: Optional[float]) -> RunState:
    """What the engine recorded about how one attempt ends, read from the whole file (nothing is stored)."""
    reader = ReportReader(job_id, attempt, raport, 0, attempt_started)
    reader.poll()
    return reader.state
