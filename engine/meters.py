"""What the training loop counts: windows of loss and time, images read and skipped, batch latencies.

No torch import needed here: a window's loss stays whatever the loop adds (a device tensor) until the
trainer reduces it across ranks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any


class DataError(RuntimeError):
    """Too many images of the dataset could not be read."""


@dataclass
class Meter:
    """Sums over a window of iterations; the loss stays on the device until a log point."""

    loss: Any = 0.0
    images: int = 0
    iters: int = 0
    data_time: float = 0.0
    skipped: int = 0
    start: float = field(default_factory=time.perf_counter)


def train_rates(loss: float, images: float, data_time: float, m: Meter, lr: float) -> dict[str, float]:
    """train.* of a window (or an epoch) `m` whose reduced loss, images and data time are given."""
    elapsed = time.perf_counter() - m.start
    compute = max(1e-9, elapsed - data_time)
    return {
        "train.loss": loss,
        "train.total_ips": images / max(1e-9, elapsed),
        "train.compute_ips": images / compute,
        "train.data_time": data_time / max(1, m.iters),
        "train.compute_time": compute / max(1, m.iters),
        "train.lr": lr,
    }


@dataclass
class ImageCounts:
    """Images read and images skipped as unreadable, per split, over the whole run (all ranks)."""

    read: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    skipped: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def total(self) -> int:
        return self.total_skipped + sum(self.read.values())

    def where(self, sources: dict[str, str]) -> str:
        """`train: 40 of 40 in /data/train; val: 0 of 10 in /data/val` (the splits met so far)."""
        parts = []
        for split in ("train", "val"):
            seen = self.read[split] + self.skipped[split]
            if seen:
                place = f" in {sources[split]}" if sources.get(split) else ""
                parts.append(f"{split}: {self.skipped[split]} of {seen}{place}")
        return "; ".join(parts)

    def add(
        self, split: str, images: float, skipped: float, final: bool, sources: dict[str, str], limit: float
    ) -> None:
        """Count a window; raise DataError once unreadable images pass `limit` (judged after 100 images,
        or at the end of a pass), or when a whole pass read no image at all (`final`)."""
        self.read[split] += int(images)
        self.skipped[split] += int(skipped)
        bad, total = self.total_skipped, self.total
        where = self.where(sources)
        if final and self.skipped[split] and not self.read[split]:
            raise DataError(
                f"{bad} of {total} images could not be read ({where}), not one {split} image was readable: "
                "check the dataset"
            )
        if bad and (total >= 100 or final) and bad / total > limit:
            raise DataError(
                f"{bad} of {total} images could not be read ({where}), more than "
                f"{limit:.1%}: check the dataset, or raise --max-bad-fraction"
            )


def latency_percentiles(latencies: list[float]) -> dict[str, float]:
    """Mean and 95th/99th/100th percentile of per-batch compute latency (seconds)."""
    if not latencies:
        return {}
    s = sorted(latencies)

    def pct(p: float) -> float:
        return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]

    return {
        "val.compute_latency": sum(s) / len(s),
        "val.compute_latency_at95": pct(95),
        "val.compute_latency_at99": pct(99),
        "val.compute_latency_at100": s[-1],
    }
