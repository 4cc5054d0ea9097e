"""TensorBoard scalars of a run: which record becomes which scalar, and the engine's event-file sink.

:func:`scalars` is the one place that turns a LOG record (its phase, step and data) into TensorBoard
scalars; the engine's :class:`TensorBoardSink` (fed by :class:`engine.events.EventWriter` with the very
records it writes to raport.json) and `rn50tui export --format tensorboard` (fed from the job store) both
call it, so a live run's files and an exported run's say the same.

    train/loss, train/lr, train/images_per_second, train/data_wait_ratio   every -p window, x: global step
    epoch/train_loss, epoch/val_loss, epoch/val_top1, epoch/val_top5,      every epoch, x: the epoch (1-based)
    epoch/val_ema_loss, epoch/val_ema_top1, epoch/val_ema_top5 (--use-ema),
    epoch/time_seconds, epoch/images_per_second, epoch/data_wait_ratio

The global step of a window is (epoch - 1) × iterations per epoch + iteration, as the ETA counts it.
No torch import at module level: the job manager imports this module; the sink imports torch's
SummaryWriter when a run creates it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any, Optional, TextIO

from engine.events import Record

TENSORBOARD_DIR = "tensorboard"  # under the run's --workspace
INSTALL_HINT = "pip install 'rn50tui[tensorboard]'"

# (metric of the record, TensorBoard tag) for each phase; the values are written as they are.
WINDOW_TAGS = (
    ("train.loss", "train/loss"),
    ("train.lr", "train/lr"),
    ("train.total_ips", "train/images_per_second"),
)
EPOCH_TAGS = (
    ("train.loss", "epoch/train_loss"),
    ("val.loss", "epoch/val_loss"),
    ("val.top1", "epoch/val_top1"),
    ("val.top5", "epoch/val_top5"),
    ("val_ema.loss", "epoch/val_ema_loss"),
    ("val_ema.top1", "epoch/val_ema_top1"),
    ("val_ema.top5", "epoch/val_ema_top5"),
    ("epoch.time", "epoch/time_seconds"),
    ("train.total_ips", "epoch/images_per_second"),
)


def data_wait_ratio(data: dict[str, Any]) -> Optional[float]:
    """The share of a training step spent waiting for the data loader, from a record's
    train.data_time and train.compute_time (both per iteration); None when the record lacks them."""
    wait, compute = data.get("train.data_time"), data.get("train.compute_time")
    if wait is None or compute is None or wait + compute <= 0:
        return None
    return float(wait) / float(wait + compute)


def global_step(epoch: int, iteration: int, iters_per_epoch: Optional[int]) -> int:
    """The x of a training window: iterations since the run's start (the iteration alone when unknown)."""
    return (epoch - 1) * (iters_per_epoch or 0) + iteration


def scalars(
    phase: Optional[str], step: Any, data: dict[str, Any], iters_per_epoch: Optional[int]
) -> Iterator[tuple[str, float, int]]:
    """(tag, value, x) of one LOG record: train windows and epoch records; other phases give nothing."""
    if phase == "train" and len(step) >= 2:
        x, tags = global_step(int(step[0]), int(step[1]), iters_per_epoch), WINDOW_TAGS
        wait_tag = "train/data_wait_ratio"
    elif phase == "epoch" and len(step) >= 1:
        x, tags, wait_tag = int(step[0]), EPOCH_TAGS, "epoch/data_wait_ratio"
    else:
        return
    for name, tag in tags:
        if data.get(name) is not None:
            yield tag, float(data[name]), x
    wait = data_wait_ratio(data)
    if wait is not None:
        yield wait_tag, wait, x


class TensorBoardSink:
    """Writes the scalars of the records it is given to `<workspace>/tensorboard/` (rank 0 only).

    Never breaks training: a failed write prints one warning line and turns the sink off.
    """

    def __init__(self, logdir: str | os.PathLike[str], writer: Any, err: TextIO = sys.stderr) -> None:
        self.logdir = os.fspath(logdir)
        self._writer: Any = writer
        self._err = err
        self.iters_per_epoch: Optional[int] = None

    @classmethod
    def open(cls, workspace: str | os.PathLike[str], err: TextIO = sys.stderr) -> Optional[TensorBoardSink]:
        """A sink on `<workspace>/tensorboard`, or None (one line says why) without the tensorboard package."""
        logdir = os.path.join(os.fspath(workspace), TENSORBOARD_DIR)
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package too
        except ImportError:
            print(f"note: no TensorBoard event files for this run: {INSTALL_HINT}", file=err, flush=True)
            return None
        try:
            return cls(logdir, SummaryWriter(log_dir=logdir), err)
        except Exception as exc:  # an unwritable folder must not stop the run
            print(f"warning: TensorBoard event files off: cannot write {logdir}: {exc}", file=err, flush=True)
            return None

    def record(self, rec: Record) -> None:
        """Take one record of the event stream (LOG, STATUS or METADATA)."""
        if self._writer is None:
            return
        try:
            if rec.type == "STATUS" and rec.data and rec.data.get("train_iters"):
                self.iters_per_epoch = int(rec.data["train_iters"])  # run_start and epoch_start say it
            elif rec.type == "LOG" and rec.data:
                for tag, value, x in scalars(rec.phase, rec.step, rec.data, self.iters_per_epoch):
                    self._writer.add_scalar(tag, value, x, walltime=rec.timestamp)
                if rec.phase == "epoch":
                    self._writer.flush()  # an epoch is worth seeing at once; windows flush on a timer
        except Exception as exc:
            self._fail(exc)

    def close(self) -> None:
        """Flush and close the files (the run's end, including a stop on SIGTERM)."""
        if self._writer is None:
            return
        try:
            self._writer.close()
        except Exception as exc:
            self._fail(exc)
        self._writer = None

    def _fail(self, exc: Exception) -> None:
        print(f"warning: TensorBoard event files stopped ({self.logdir}): {exc}", file=self._err, flush=True)
        self._writer = None
