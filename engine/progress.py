"""Time to accuracy and the input-bound verdict: what a run's records say about how fast it learns.

:class:`RunClock` sums the wall time of training and validation over a run's attempts (time queued,
stopped, building the model, loading or saving a checkpoint is not counted; work lost after the last
checkpoint of a killed attempt is not either) and keeps, at each new best top-1, how long it took. Its
share of the checkpoint: ``train_seconds`` and ``time_to_best`` (a list of ``{top1, epoch,
train_seconds}``); a checkpoint without them (older files) starts both from zero.

:class:`InputWatch` turns an epoch's share of step time spent waiting for data into a note that says what
to do (``input_bound``) and takes it back once an epoch is compute-bound again (``compute_bound``).
No torch import.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional

INPUT_BOUND_SHARE = 0.10  # above this share of step time spent waiting for data, the epoch is input-bound


def format_duration(seconds: float) -> str:
    """`4h12m`, `3m20s`, `42s`: the largest two units, as a person says it."""
    s = int(round(max(0.0, seconds)))
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def best_score(val: dict[str, float]) -> Optional[float]:
    """An epoch's top-1 for time to accuracy and --target-top1: the better of the model's and the EMA's."""
    scores = [val[k] for k in ("val.top1", "val_ema.top1") if k in val]
    return max(scores) if scores else None


def target_reason(
    target: Optional[float], score: Optional[float], epoch: int, seconds: float
) -> Optional[str]:
    """run_end's reason when `score` reaches --target-top1 at `epoch` (1-based), else None."""
    if target is None or score is None or score < target:
        return None
    return f"reached {score:.1f}% top-1 at epoch {epoch} after {format_duration(seconds)} of training"


@dataclass
class RunClock:
    """Training + validation seconds over all attempts, and the time to each new best top-1."""

    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @contextmanager
    def measure(self) -> Iterator[None]:
        """Count the block's wall time (a stop inside it counts what was done up to the stop)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.train_seconds += time.perf_counter() - start

    @property
    def best(self) -> Optional[float]:
        return max((h["top1"] for h in self.history), default=None)

    def after_validation(self, epoch: int, val: dict[str, float]) -> Optional[dict[str, Any]]:
        """The `best` record's data when `val` beats every earlier epoch (1-based `epoch`), else None."""
        score = best_score(val)
        if score is None or (self.best is not None and score <= self.best):
            return None
        self.history.append({"top1": score, "epoch": epoch, "train_seconds": self.train_seconds})
        return {**self.history[-1], "history": [dict(h) for h in self.history]}

    def state_dict(self) -> dict[str, Any]:
        return {"train_seconds": self.train_seconds, "time_to_best": [dict(h) for h in self.history]}

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        self.train_seconds = float(ckpt.get("train_seconds") or 0.0)
        self.history = [
            {"top1": float(h["top1"]), "epoch": int(h["epoch"]), "train_seconds": float(h["train_seconds"])}
            for h in ckpt.get("time_to_best") or []
        ]


def input_bound_message(ratio: float, workers: int) -> str:
    """The note for an input-bound epoch: how much the cards waited, and the three ways out."""
    return (
        f"input-bound: the cards waited for data {ratio:.0%} of each step; more loader workers (-j, now "
        f"{workers}), a resized dataset, or fewer cards per host"
    )


@dataclass
class InputWatch:
    """Per epoch: input-bound above `threshold`, and back to compute-bound once an epoch is not."""

    workers: int
    threshold: float = INPUT_BOUND_SHARE
    bound: bool = False

    def after_epoch(self, ratio: Optional[float]) -> Optional[tuple[str, dict[str, Any]]]:
        """The STATUS event (name, data) this epoch's ratio calls for, or None."""
        if ratio is None:
            return None
        if ratio > self.threshold:
            self.bound = True
            message = input_bound_message(ratio, self.workers)
            return "input_bound", {"ratio": ratio, "workers": self.workers, "threshold": self.threshold,
                                   "message": message}  # fmt: skip
        if self.bound:
            self.bound = False
            return "compute_bound", {"ratio": ratio, "threshold": self.threshold}
        return None
