"""The ETA of a training job, from its own records: training iterations, validation passes and the
work between epochs (checkpoint write, the next epoch's loader start), each timed on this job.

    remaining = iterations left × s/iteration + epoch ends left × (validation pass + epoch-end overhead)

s/iteration is the mean rate of the last windows between training records inside an epoch (the first
window of an epoch is counted in the epoch-end overhead instead). A validation pass is timed from an
epoch's last training record to its epoch record; before the first one it is estimated from the
validation records seen so far, else as val_iters × s/iteration × VAL_COST (a forward pass only).
The overhead is the gap from an epoch record to the next epoch's first training record, less the
iterations that record covers; unknown (0) until the first epoch end. The supervisor stores the result
as `eta_end` (the wall time it predicts the job ends), so every reader shows the same ETA.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Optional

VAL_COST = 0.4  # a validation iteration / a training iteration, before one is measured (forward only)
RATE_WINDOWS = 50  # the training rate is the mean of this many recent windows


@dataclass
class EtaModel:
    epochs: Optional[int] = None
    iters_per_epoch: Optional[int] = None
    val_iters: int = 0
    epoch: Optional[int] = None  # 1-based, as the job's columns
    iteration: int = 0
    rates: deque = field(default_factory=lambda: deque(maxlen=RATE_WINDOWS))  # (seconds, iterations)
    val_rates: list[float] = field(default_factory=list)
    val_passes: list[float] = field(default_factory=list)
    overheads: list[float] = field(default_factory=list)
    last_train: Optional[tuple[float, int, int]] = None  # (time, epoch, iteration)
    last_val: Optional[tuple[float, int]] = None  # (time, val iteration) in the current pass
    last_epoch_end: Optional[float] = None
    last_time: Optional[float] = None

    def observe(self, rows: list[tuple[Any, ...]], updates: dict[str, Any]) -> None:
        """One follower batch: (job, attempt, time, epoch, iteration, phase, data) rows and job updates."""
        for key in ("epochs", "iters_per_epoch", "val_iters"):
            if updates.get(key) is not None:
                setattr(self, key, updates[key])
        for row in rows:
            at, epoch, it, phase = row[2], row[3], row[4], row[5]
            self.last_time = at
            if phase == "train":
                self._train(at, epoch, it or 0)
            elif phase == "val":
                self._val(at, it or 0)
            elif phase == "epoch":
                if self.last_train is not None and self.last_train[1] == epoch:
                    self.val_passes.append(at - self.last_train[0])
                self.last_epoch_end, self.last_val = at, None

    def _train(self, at: float, epoch: int, it: int) -> None:
        last = self.last_train
        if last is not None and last[1] == epoch and it > last[2]:
            self.rates.append((at - last[0], it - last[2]))
        elif self.last_epoch_end is not None and self.per_iteration() is not None:
            self.overheads.append(max(0.0, at - self.last_epoch_end - it * self.per_iteration()))
        self.last_train, self.epoch, self.iteration = (at, epoch, it), epoch, it

    def _val(self, at: float, it: int) -> None:
        start = self.last_val or ((self.last_train[0], 0) if self.last_train else None)
        if start is not None and it > start[1]:
            self.val_rates.append((at - start[0]) / (it - start[1]))
        self.last_val = (at, it)

    def per_iteration(self) -> Optional[float]:
        if not self.rates:
            return None
        return sum(s for s, _ in self.rates) / sum(n for _, n in self.rates)

    def val_pass(self) -> float:
        if self.val_passes:
            return median(self.val_passes)
        per_val = median(self.val_rates) if self.val_rates else (self.per_iteration() or 0.0) * VAL_COST
        return self.val_iters * per_val

    def remaining(self) -> Optional[float]:
        """Seconds from the last record to the end of the run, or None until a rate is known."""
        per_it = self.per_iteration()
        if per_it is None or not self.epochs or not self.iters_per_epoch or self.epoch is None:
            return None
        done = (self.epoch - 1) * self.iters_per_epoch + self.iteration
        iters_left = max(0, self.epochs * self.iters_per_epoch - done)
        ends_left = self.epochs - self.epoch + 1
        in_val = self.iteration >= self.iters_per_epoch and self.last_val is not None
        val_left = self.val_pass() * ends_left
        if in_val and self.last_val is not None:  # part of this epoch's pass is behind us
            val_left -= min(self.val_pass(), self.last_val[0] - (self.last_train or (self.last_val[0],))[0])
        overhead = median(self.overheads) if self.overheads else 0.0
        return iters_left * per_it + max(0.0, val_left) + ends_left * overhead

    def end_time(self) -> Optional[float]:
        left = self.remaining()
        return None if left is None or self.last_time is None else self.last_time + left
