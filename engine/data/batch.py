"""What the loaders yield: one collated batch of uint8 images and their labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

import torch
from torch.utils.data import get_worker_info

from engine.data import shm_pool


@dataclass
class Batch:
    """uint8 N×3×H×W images (CPU; pinned when the loader was asked), int64 labels, and the skip count.

    The images are channels-last (an N×H×W×3 buffer, as decoders write pixels) or, where most of a batch's
    images come channels-first (AutoAugment's ops), contiguous; `normalize` gives whichever layout the
    model runs.

    `skipped` images failed to decode and were dropped, so N may be a few short of the batch size (even
    0); `bad_files` names them, for a log line from the main process.

    `slot`: the loader worker's pooled shared storage the images are in (engine/data/shm_pool.py); it
    travels with the batch to the training process, which frees the slot once the batch has died.
    """

    images: torch.Tensor
    labels: torch.Tensor
    skipped: int = 0
    bad_files: tuple[str, ...] = field(default_factory=tuple)
    slot: Optional[shm_pool.Slot] = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """A pooled batch is unpickled by `_arrived`, which has the pool watch its storage there."""
        fields = (self.images, self.labels, self.skipped, self.bad_files)
        return (Batch, fields) if self.slot is None else (_arrived, (*fields, self.slot))

    def pin_memory(self) -> Batch:
        """Called by DataLoader's pinning thread (it pins any object that has this method)."""
        return Batch(self.images.pin_memory(), self.labels.pin_memory(), self.skipped, self.bad_files)

    def to(self, device: Union[torch.device, str], non_blocking: bool = False) -> Batch:
        return Batch(
            self.images.to(device, non_blocking=non_blocking),
            self.labels.to(device, non_blocking=non_blocking),
            self.skipped,
            self.bad_files,
        )


def collate(images: list[torch.Tensor], labels: list[int], size: int, bad: list[str]) -> Batch:
    """Stack the images that decoded; an all-bad batch is an empty one, not an error."""
    if not images:
        return Batch(
            torch.empty((0, 3, size, size), dtype=torch.uint8),
            torch.empty(0, dtype=torch.int64),
            len(bad),
            tuple(bad),
        )
    # the layout most images already have: each is then one contiguous copy, never a transpose (the resize
    # gives channels-last images, AutoAugment's ops mostly channels-first ones)
    nhwc = 2 * sum(img.permute(1, 2, 0).is_contiguous() for img in images) >= len(images)
    out, pooled = _buffer(len(images), (size, size, 3) if nhwc else (3, size, size))
    for dst, img in zip(out, images):
        dst.copy_(img.permute(1, 2, 0) if nhwc else img)
    batch = out.permute(0, 3, 1, 2) if nhwc else out
    return Batch(batch, torch.tensor(labels, dtype=torch.int64), len(bad), tuple(bad), pooled)


def _buffer(n: int, shape: tuple[int, int, int]) -> tuple[torch.Tensor, Optional[shm_pool.Slot]]:
    """An uninitialised uint8 n×`shape` tensor; in shared memory inside a loader worker (a pooled
    storage where one is free), so the batch crosses to the training process as a handle, not a second
    copy of its pixels (as default_collate)."""
    if get_worker_info() is None:
        return torch.empty((n, *shape), dtype=torch.uint8), None
    return shm_pool.shared_buffer((n, *shape))


def _arrived(
    images: torch.Tensor, labels: torch.Tensor, skipped: int, bad_files: tuple[str, ...], slot: shm_pool.Slot
) -> Batch:
    """A pooled batch unpickled in the training process: its slot is freed once these pixels die."""
    shm_pool.arrived(slot, images)
    return Batch(images, labels, skipped, bad_files)
