"""The training loss a person expects to read: a smoothed recent value while an epoch runs.

The engine logs the mean loss of each `-p` window of iterations; one window of a few batches is noise
(and a single skewed batch can spike it). The job's LOSS is therefore this exponential moving average
while an epoch runs, and the epoch's exact mean once it ends. The follower (the list, `jobs show`) and
the app's charts use the same class, so the curve and the number agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

SMOOTHING_EPOCHS = 0.25  # the average's time constant: a quarter of an epoch of iterations
DEFAULT_TAU_ITERS = 50.0  # the time constant while the epoch's length is not known yet


@dataclass
class LossSmoother:
    """An exponential moving average of window losses, weighted by the iterations each window covers,
    so the log interval (`-p`) does not change it. Feed windows in log order with :meth:`add`."""

    value: Optional[float] = None
    epoch: Optional[int] = None
    iteration: Optional[int] = None  # the last window's end (iterations into its epoch)

    def add(self, epoch: int, iteration: int, loss: float, iters_per_epoch: Optional[int] = None) -> float:
        """Fold in the window that ends at `iteration` (1-based) of `epoch`; return the smoothed loss."""
        same_epoch = epoch == self.epoch and self.iteration is not None and iteration > self.iteration
        span = iteration - (self.iteration or 0) if same_epoch else iteration
        self.epoch, self.iteration = epoch, iteration
        if self.value is None or not math.isfinite(self.value):
            self.value = float(loss)  # a diverged average recovers with the first finite window
            return self.value
        tau = SMOOTHING_EPOCHS * iters_per_epoch if iters_per_epoch else DEFAULT_TAU_ITERS
        weight = 1.0 - math.exp(-max(1, span) / max(1.0, tau))
        self.value += weight * (float(loss) - self.value)
        return self.value

    def copy(self) -> LossSmoother:
        return replace(self)
