"""Mixup (`--mixup ALPHA`): each training batch becomes λ·x + (1−λ)·x[perm], λ ~ Beta(α, α), and its
targets the same mix of label-smoothed one-hot vectors; the loss is the cross-entropy against them.

Upstream (DeepLearningExamples' `mixup.py`) mixes one-hot targets from its DALI loader and moves the
permutation with `.cuda()`; here the mixing runs on whatever device the batch is on (MLU, CUDA, CPU)
from the integer labels every loader yields. λ and the permutation of batch `it` of epoch `e` on rank
`r` come from (seed, e, it, r) alone, not from a global generator: a resumed run draws exactly what a
straight run draws, and the draw needs no checkpoint state. Upstream's `NLLMultiLabelSmooth`
((1−s)·NLL(mixed one-hot) + s·mean(−log p)) equals the cross-entropy against the mixed smoothed targets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.data.transforms import mix_seed


@dataclass(frozen=True)
class MixDraw:
    """λ and the partner of each sample for one batch."""

    lam: float
    perm: torch.Tensor  # int64, on the CPU


def draw(alpha: float, n: int, seed: int, epoch: int, iteration: int, rank: int) -> MixDraw:
    """The Beta(α, α) draw and permutation of one batch, a pure function of its position."""
    s = mix_seed(seed, epoch, iteration, rank, 0x313)
    lam = random.Random(s).betavariate(alpha, alpha)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(s))
    return MixDraw(lam, perm)


def soft_targets(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """Label-smoothed one-hot rows: 1 − s + s/K on the label, s/K elsewhere (float32, labels' device)."""
    off = smoothing / num_classes
    t = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return t.scatter_(1, labels[:, None], 1.0 - smoothing + off)


def mix(
    images: torch.Tensor, labels: torch.Tensor, d: MixDraw, num_classes: int, smoothing: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mixed images, mixed soft targets) on the batch's device; `images` is overwritten."""
    perm = d.perm.to(images.device, non_blocking=True)
    partner = images.index_select(0, perm)
    images.mul_(d.lam).add_(partner, alpha=1.0 - d.lam)
    t = soft_targets(labels, num_classes, smoothing)
    targets = t.mul(d.lam).add_(t.index_select(0, perm), alpha=1.0 - d.lam)
    return images, targets


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of −Σ_k t_k log softmax(z)_k, computed in float32 (as upstream)."""
    return -(targets * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


class Mixup:
    """The trainer's hook: mixes a normalised batch in place and gives the loss against its targets."""

    def __init__(self, alpha: float, num_classes: int, smoothing: float, seed: int, rank: int) -> None:
        self.alpha, self.num_classes, self.smoothing = alpha, num_classes, smoothing
        self.seed, self.rank = seed, rank

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, epoch: int, iteration: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        d = draw(self.alpha, int(y.shape[0]), self.seed, epoch, iteration, self.rank)
        return mix(x, y, d, self.num_classes, self.smoothing)
