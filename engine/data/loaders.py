"""Samplers and loaders: a whole batch is one DataLoader fetch, planned by a sampler the engine owns.

The sampler (:class:`BatchPlan`) yields ``(epoch, indices)`` keys: the epoch travels with every
request, so persistent workers (which hold a copy of the dataset from the first epoch) still augment
with the right epoch's seeds, and a resume can skip batches by not planning them at all.
"""

from __future__ import annotations

import atexit
import copy
import math
import signal
import time
import warnings
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional, Protocol

import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from engine.data import shm_pool
from engine.data.batch import Batch, collate
from engine.data.datasets import SampleList
from engine.data.decode import BadImage, load_image
from engine.data.transforms import Transform, mix_seed, sample_rng


class BadImageWarning(UserWarning):
    """An image that could not be read or decoded and was skipped."""


_warned: set[str] = set()  # per process: each bad file is reported once, not every epoch


def _warn_once(path: str, reason: str) -> None:
    if path not in _warned:
        _warned.add(path)
        warnings.warn(f"skipping unreadable image {reason}", BadImageWarning, stacklevel=2)


class BatchSource(Protocol):
    classes: list[str]

    def __len__(self) -> int: ...

    def fetch(self, epoch: int, indices: Sequence[int]) -> Batch: ...


class ImageBatches:
    """Decodes and augments the images of one batch; sample i's draws depend on (seed, epoch, i) only.

    `sizes` (epoch → (crop, resize), engine/schedule.py) changes the output size per epoch; the epoch comes
    with every request, so persistent workers follow it. `slow_s` (a test hook, engine/testhooks.py): each
    fetch sleeps that long first, as a slow disk or too few loader workers would make it.
    """

    def __init__(
        self, samples: SampleList, transform: Transform, size: int, seed: int,
        sizes: Optional[Callable[[int], tuple[int, int]]] = None, slow_s: float = 0.0,
    ) -> None:  # fmt: skip
        self.samples, self.transform, self.size, self.seed = samples, transform, size, seed
        self.classes = samples.classes
        self.sizes = sizes
        self._transforms: dict[tuple[int, int], Transform] = {}
        self._slow = slow_s

    def __len__(self) -> int:
        return len(self.samples)

    def _transform_at(self, epoch: int) -> tuple[Transform, int]:
        """The transform of `epoch`'s size (one copy per size), and that size."""
        if self.sizes is None:
            return self.transform, self.size
        crop, resize = self.sizes(epoch)
        if (crop, resize) not in self._transforms:
            t = copy.copy(self.transform)
            t.size = crop
            if hasattr(t, "resize"):
                t.resize = resize
            self._transforms[(crop, resize)] = t
        return self._transforms[(crop, resize)], crop

    def fetch(self, epoch: int, indices: Sequence[int]) -> Batch:
        if self._slow:
            time.sleep(self._slow)
        transform, size = self._transform_at(epoch)
        images, labels, bad = [], [], []
        for i in indices:
            path = self.samples.path(i)
            try:
                images.append(load_image(path, transform, sample_rng(self.seed, epoch, i)))
            except (BadImage, RuntimeError, ValueError) as e:  # a bad file is skipped, never a crash
                _warn_once(path, str(e) if isinstance(e, BadImage) else f"{path}: {e}")
                bad.append(path)
                continue
            labels.append(int(self.samples.labels[i]))
        return collate(images, labels, size, bad)


class BatchPlan:
    """This rank's batches of one epoch, as DistributedSampler would shard them.

    Training (`shuffle`): a permutation of (seed, epoch), padded to a multiple of the world size by
    repeating its head, every rank the same number of samples. Validation: ranks take indices
    rank, rank + world, … in order: no padding, no duplicates, counts may differ by one.
    `drop_last` leaves out a last batch shorter than `batch_size`, as the recipe's training loader does
    (a one-image batch cannot be batch-normalised where the feature map is 1×1).
    """

    def __init__(
        self, n: int, batch_size: int, rank: int, world_size: int, shuffle: bool, seed: int,
        drop_last: bool = False,
    ) -> None:  # fmt: skip
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.n, self.batch_size, self.rank, self.world_size = n, batch_size, rank, world_size
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0
        self.start = 0  # batches of this epoch not to plan (resume)

    @property
    def num_samples(self) -> int:
        if self.shuffle:
            return math.ceil(self.n / self.world_size)
        return len(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def indices(self, epoch: int) -> list[int]:
        """This rank's sample indices for `epoch`, in the order they are batched."""
        if not self.shuffle:
            return list(range(self.rank, self.n, self.world_size))
        g = torch.Generator().manual_seed(mix_seed(self.seed, epoch, 0x5A3))
        order = torch.randperm(self.n, generator=g).tolist()
        total = self.num_samples * self.world_size
        order += (order * math.ceil(total / max(self.n, 1)))[: total - self.n]  # pad like DistributedSampler
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[tuple[int, tuple[int, ...]]]:
        order, bs, epoch = self.indices(self.epoch), self.batch_size, self.epoch
        return iter([(epoch, tuple(order[b * bs : (b + 1) * bs])) for b in range(self.start, len(self))])


class _Fetch(Dataset):
    """DataLoader's view of a batch source: key (epoch, indices) → Batch; `pool` reaches the workers with it."""

    def __init__(self, source: BatchSource, pool: Optional[shm_pool.ShmPool] = None) -> None:
        self.source, self.pool = source, pool

    def __getitem__(self, key: tuple[int, Sequence[int]]) -> Batch:
        return self.source.fetch(*key)


def _as_is(batch: Batch) -> Batch:  # module level: workers may need to pickle it
    return batch


def _shield_worker(_worker_id: int) -> None:
    """Workers ignore SIGTERM, Ctrl-C and a hang-up: a signal to the whole process group must reach the
    training loop, which checkpoints and then shuts its workers down, not kill a worker mid-step first.
    They pack their batches into their loader's pool of shared storages."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    info = get_worker_info()
    shm_pool.install(getattr(info.dataset, "pool", None) if info is not None else None)


def _stop_workers(ref: weakref.ref) -> None:
    """At exit, before multiprocessing joins the workers it cannot terminate (they ignore SIGTERM): ask
    them to stop, as dropping the loader would; else a script that still holds a Loader hangs there."""
    loader = ref()
    it = getattr(loader, "_iterator", None)
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()


class Loader:
    """Iterable of :class:`Batch` over this rank's share of one split, epoch by epoch."""

    pool: Optional[shm_pool.ShmPool] = None  # the workers' reused shared storages (none in-process)

    def __init__(
        self, source: BatchSource, plan: BatchPlan, workers: int, prefetch: int, pin_memory: bool,
        pool_cap: int = 8,
    ) -> None:  # fmt: skip
        """`pool_cap`: reused shared storages per worker (engine/data/shm_pool.py); 0, a new one per batch."""
        self.source, self.plan = source, plan
        self.batch_size = plan.batch_size
        self.classes = source.classes
        self.epoch = 0
        self.position = 0  # batches of the current epoch handed out so far (skipped ones included)
        self._start = 0
        self.pool = shm_pool.ShmPool(workers, pool_cap) if workers > 0 else None
        kwargs: dict[str, Any] = {"num_workers": workers, "pin_memory": pin_memory}
        if workers > 0:
            kwargs.update(
                persistent_workers=True, prefetch_factor=max(1, prefetch), worker_init_fn=_shield_worker
            )
        self._loader = DataLoader(
            _Fetch(source, self.pool), batch_size=None, sampler=plan, collate_fn=_as_is, **kwargs
        )
        if workers > 0:  # registered after multiprocessing's own exit hook (imported with torch): runs first
            atexit.register(_stop_workers, weakref.ref(self._loader))

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch (training shards include their padding)."""
        return self.plan.num_samples

    @property
    def dataset_size(self) -> int:
        """Samples in the whole split, over all ranks, without padding."""
        return self.plan.n

    def __len__(self) -> int:
        """Iterations per epoch on this rank (the last batch may be short)."""
        return len(self.plan)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next iteration plays: its shuffle order and its augmentation seeds."""
        self.epoch = self.plan.epoch = epoch

    def set_start_iteration(self, it: int) -> None:
        """Make the next iteration skip the first `it` batches of the epoch, without loading them."""
        if not 0 <= it <= len(self):
            raise ValueError(f"start iteration {it} is outside 0..{len(self)}")
        self._start = it

    def __iter__(self) -> Iterator[Batch]:
        self.plan.start, self._start = self._start, 0
        self.position = self.plan.start
        batches = iter(self._loader)  # the plan is read here, eagerly
        self.plan.start = 0
        return self._counted(batches)

    def _counted(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        for batch in batches:
            self.position += 1
            if self.pool is not None:  # what the pinning thread or the caller has dropped since
                self.pool.sweep()
            yield batch
        if self.pool is not None:  # the epoch's last batches, dropped since they arrived
            self.pool.sweep()

    def state_dict(self) -> dict[str, int]:
        """Where the loader is: a checkpoint taken after the trainer used the last batch resumes after it."""
        return {"epoch": self.epoch, "iteration": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.set_epoch(int(state["epoch"]))
        self.set_start_iteration(int(state["iteration"]))
