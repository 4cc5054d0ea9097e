"""The training crop's size per epoch (`--resize-schedule`) and validation's (`--val-image-size`).

FFCV's progressive resizing: the crop grows from START to END px between epochs FROM and TO, in steps of
32 px, the batch size fixed. The size is a pure function of the epoch, so a resume (mid-ramp too) trains
every epoch at the size a straight run would, and persistent loader workers need no message: the epoch
travels with every batch request. No torch import (engine/config.py checks the flag with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

STEP = 32  # ResNet-50 downsamples 32×: sizes in whole feature-map cells
VAL_CROP_RATIO = 0.875  # centre crop / resize, as 224 / 256


class ScheduleError(ValueError):
    """A --resize-schedule value that cannot work; the message says what to pass."""


@dataclass(frozen=True)
class ResizeSchedule:
    """Crop START px up to epoch FROM, END px from epoch TO, linear in between rounded to 32 px (epochs
    counted from 1, as the records count them)."""

    start: int
    end: int
    first: int
    last: int

    @classmethod
    def parse(cls, text: str) -> ResizeSchedule:
        parts = text.split(":")
        if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
            raise ScheduleError(
                f"--resize-schedule {text!r}: expected START:END:FROM:TO, e.g. 160:192:66:77 (px, px, epoch, epoch)"
            )
        start, end, first, last = (int(p) for p in parts)
        for name, px in (("START", start), ("END", end)):
            if px < STEP or px % STEP:
                raise ScheduleError(
                    f"--resize-schedule {text}: {name} {px} must be a multiple of {STEP}, at least {STEP}"
                )
        if first < 1 or last < first:
            raise ScheduleError(
                f"--resize-schedule {text}: epochs must satisfy 1 <= FROM <= TO (counted from 1)"
            )
        return cls(start, end, first, last)

    def size_at(self, epoch: int) -> int:
        """The crop of epoch `epoch` (0-based, as the loaders count): FFCV's get_resolution, 1-based."""
        e = epoch + 1
        if e <= self.first:
            return self.start
        if e >= self.last:
            return self.end
        exact = self.start + (self.end - self.start) * (e - self.first) / (self.last - self.first)
        return int(round(exact / STEP)) * STEP

    def __str__(self) -> str:
        return f"{self.start}:{self.end}:{self.first}:{self.last}"


@dataclass(frozen=True)
class CropSizes:
    """What the loaders ask per epoch: the training crop, and validation's crop and resize."""

    train: int
    schedule: Optional[ResizeSchedule] = None
    val_size: Optional[int] = None  # --val-image-size; None: the epoch's training crop

    def train_at(self, epoch: int) -> int:
        return self.schedule.size_at(epoch) if self.schedule else self.train

    def val_at(self, epoch: int) -> tuple[int, int]:
        """(centre crop, shorter-side resize) of validation after epoch `epoch` (0-based)."""
        crop = self.val_size or self.train_at(epoch)
        return crop, int(round(crop / VAL_CROP_RATIO))

    @property
    def varies(self) -> bool:
        return self.schedule is not None and self.schedule.start != self.schedule.end
