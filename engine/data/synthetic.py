"""Synthetic images that a network can learn: one colour pattern per class plus per-sample noise.

Class c's template is a 4×4 grid of colours built as ``row_c[y] + col_c[x]`` (two small vectors per
class, so templates for a thousand classes cost kilobytes); sample i adds a window of a cached noise
bank chosen by a hash of (seed, split, i). Label of sample i = i mod classes. Everything is
deterministic per index and rendered per batch with a few uint8 adds (no clamping: the ranges are
chosen so the sum stays below 256).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable, Optional

import torch

from engine.data.batch import Batch
from engine.data.transforms import mix_seed

GRID = 4  # colour blocks per side
NOISE_BANKS = 16
NOISE_PAD = 16  # noise windows start at one of PAD × PAD offsets: 16 × 256 distinct noise fields
SPLIT_SALT = {"train": 1, "val": 2}


class SyntheticImages:
    """`n` deterministic uint8 3×size×size images of `num_classes` learnable classes."""

    def __init__(
        self, n: int, num_classes: int, size: int, seed: int, split: str,
        sizes: Optional[Callable[[int], tuple[int, int]]] = None,
    ) -> None:  # fmt: skip
        self.n, self.num_classes, self.size, self.seed = n, num_classes, size, seed
        self.salt = SPLIT_SALT[split]
        self.classes = [f"class_{i}" for i in range(num_classes)]
        self.sizes = sizes  # epoch → (crop, resize): --resize-schedule renders each epoch at its size
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return self.n

    def _tables(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Row and column patterns per class and the noise bank; built once per process and size."""
        if size not in self._cache:
            # one generator for both splits: val must show the same class templates as train
            g = torch.Generator().manual_seed(mix_seed(self.seed, 0x5E7))
            blocks = (torch.arange(size) * GRID) // size
            shape = (self.num_classes, 3, GRID)
            rows = torch.randint(0, 112, shape, generator=g, dtype=torch.uint8)[..., blocks]
            cols = torch.randint(0, 112, shape, generator=g, dtype=torch.uint8)[..., blocks]
            side = size + NOISE_PAD
            bank = torch.randint(0, 32, (NOISE_BANKS, 3, side, side), generator=g, dtype=torch.uint8)
            self._cache[size] = (rows.contiguous(), cols.contiguous(), bank)
        return self._cache[size]

    def labels(self, indices: Sequence[int]) -> torch.Tensor:
        return torch.tensor([i % self.num_classes for i in indices], dtype=torch.int64)

    def render(self, indices: Sequence[int], size: Optional[int] = None) -> torch.Tensor:
        """The images of `indices`, N×3×size×size uint8 (`size`: default the source's)."""
        s = size or self.size
        rows, cols, bank = self._tables(s)
        labels = self.labels(indices)
        out = rows[labels][:, :, :, None] + cols[labels][:, :, None, :]  # values < 224
        for j, i in enumerate(indices):
            h = mix_seed(self.seed, self.salt, i)
            k, dy, dx = h % NOISE_BANKS, (h >> 8) % NOISE_PAD, (h >> 16) % NOISE_PAD
            out[j].add_(bank[k, :, dy : dy + s, dx : dx + s])  # < 224 + 32: no overflow
        return out

    def fetch(self, epoch: int, indices: Sequence[int]) -> Batch:
        """A batch of `indices` (the same images every epoch)."""
        size = self.sizes(epoch)[0] if self.sizes is not None else self.size
        return Batch(self.render(indices, size), self.labels(indices))
