"""Chart data kept in memory by the app: append-only (x, y) arrays and display downsampling.

The store keeps every point; only what is drawn is reduced. A window of a million points becomes at
most two points per bucket (the bucket's min and max, in the order they occur), so spikes stay visible
and drawing costs the same whatever the history. Min, max and index run in C on array slices.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from dataclasses import dataclass
from typing import Optional

Points = tuple[tuple[float, ...], tuple[float, ...]]
EMPTY: Points = ((), ())


class Series:
    """One curve: x ascending (time or epoch), y the metric; appended by one worker at a time."""

    __slots__ = ("x", "y")

    def __init__(self) -> None:
        self.x = array("d")
        self.y = array("d")

    def __len__(self) -> int:
        return len(self.x)

    def append(self, x: float, y: Optional[float]) -> None:
        if y is not None and y == y:  # skip None and NaN: nothing to draw
            self.x.append(x)
            self.y.append(float(y))

    def last(self) -> Optional[float]:
        return self.y[-1] if self.y else None

    def view(self, buckets: int, span: Optional[float] = None) -> Points:
        """At most 2 × buckets points of the last `span` x-units (all when None)."""
        if not self.x:
            return EMPTY
        lo = 0 if span is None else bisect_left(self.x, self.x[-1] - span)
        return downsample(self.x, self.y, lo, len(self.x), buckets)


def downsample(x: array, y: array, lo: int, hi: int, buckets: int) -> Points:
    """Min/max decimation of x[lo:hi], y[lo:hi] into at most 2 × buckets points."""
    n = hi - lo
    if n <= 2 * buckets:
        return tuple(x[lo:hi]), tuple(y[lo:hi])
    xs: list[float] = []
    ys: list[float] = []
    step = n / buckets
    for b in range(buckets):
        start, end = lo + int(b * step), lo + int((b + 1) * step)
        chunk = y[start:end]
        if not chunk:
            continue
        low, high = min(chunk), max(chunk)
        i_low, i_high = chunk.index(low), chunk.index(high)
        for i in sorted({i_low, i_high}):
            xs.append(x[start + i])
            ys.append(chunk[i])
    return tuple(xs), tuple(ys)


def bucket_max(values: array | list[float], buckets: int) -> list[float]:
    """At most `buckets` values: the max of each bucket (what a sparkline shows of a card's load)."""
    n = len(values)
    if n <= buckets:
        return list(values)
    step = n / buckets
    return [max(values[int(b * step) : int((b + 1) * step)] or [0.0]) for b in range(buckets)]


@dataclass(frozen=True)
class Window:
    """A choice of how much history the time charts show."""

    label: str
    seconds: Optional[float]


WINDOWS = (
    Window("all", None),
    Window("last hour", 3600.0),
    Window("last 15 min", 900.0),
    Window("last 5 min", 300.0),
    Window("last minute", 60.0),
)
