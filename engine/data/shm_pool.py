"""Reused shared-memory batch buffers: a loader worker packs its batches into a few storages it keeps.

A fresh shared storage per batch costs the worker shm_open, ftruncate, mmap and a zero-filled page fault
per 4 kB it writes (about 130 µs an image at 224 px); a kept one costs none of it. A storage is reused
only once the training process is done with the batch that last crossed in it:

- the :class:`ShmPool` is made by the Loader before its workers start and reaches them with the dataset;
  its `busy` flags (workers × cap, in shared memory) say which of a worker's storages are out;
- a worker takes a storage whose flag is clear, sets the flag, and its Batch carries the slot;
- the training process, as each batch arrives (is unpickled), keeps a weak reference to the batch's
  storage; once that reference has expired (nothing there holds the pixels: the batch was dropped, or
  the pinning thread has copied it and dropped the shared one), a sweep clears the flag.

A caller who keeps every batch simply holds every slot: the worker then allocates unpooled storages, as
it did before the pool. A batch pickled on from the training process to a third one is not tracked there:
keep it in this process, or copy it, while a loader's workers still run.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Optional

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils.data import get_worker_info

Slot = tuple[int, int, int]  # (pool token, worker id, index in that worker's pool)

_pools: weakref.WeakValueDictionary[int, ShmPool] = weakref.WeakValueDictionary()  # training side
_worker_pool: Optional[ShmPool] = None  # inside a loader worker: its loader's pool


class ShmPool:
    """Up to `cap` reusable shared storages per worker of one loader, and the flags that say which are out."""

    def __init__(self, workers: int, cap: int = 8) -> None:
        self.token = int.from_bytes(os.urandom(7), "little")  # names this pool in the slots its batches carry
        self.cap = cap
        self.busy = torch.zeros((workers, cap), dtype=torch.uint8).share_memory_()
        self.fresh = torch.zeros(workers, dtype=torch.int64).share_memory_()  # storages each worker made
        self._lock = threading.Lock()  # batches arrive in the main thread or the pinning thread
        self._out: dict[tuple[int, int], StorageWeakRef] = {}  # training side: slot → its batch's storage
        self._mine: list[torch.UntypedStorage] = []  # worker side: this worker's storages
        _pools[self.token] = self

    def __getstate__(self) -> dict:
        """A spawned worker gets the flags, not the other side's references."""
        state = self.__dict__.copy()
        for key in ("_lock", "_out", "_mine"):
            del state[key]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock(), _out={}, _mine=[])

    def allocations(self) -> int:
        """Shared storages the workers have made so far (pooled ones and unpooled ones)."""
        return int(self.fresh.sum())

    def take(self, worker: int, nbytes: int) -> tuple[torch.UntypedStorage, Optional[int]]:
        """Worker side: a shared storage of at least `nbytes`, and its slot (None: unpooled, all are out)."""
        busy = self.busy.numpy()[worker]  # a view: the flags the training process clears
        free = None
        for i, storage in enumerate(self._mine):
            if not busy[i]:
                if storage.nbytes() >= nbytes:
                    busy[i] = 1
                    return storage, i
                free = i if free is None else free
        self.fresh[worker] += 1
        storage = torch.UntypedStorage._new_shared(nbytes)
        if free is None and len(self._mine) < self.cap:
            free = len(self._mine)
            self._mine.append(storage)
        elif free is not None:  # a free storage too small (a bigger batch size this epoch): replace it
            self._mine[free] = storage
        if free is not None:
            busy[free] = 1
        return storage, free

    def arrived(self, worker: int, index: int, storage: torch.UntypedStorage) -> None:
        """Training side: a batch in slot (worker, index) has arrived; free it once `storage` has died."""
        with self._lock:
            self._out[(worker, index)] = StorageWeakRef(storage)
            self._sweep()

    def sweep(self) -> None:
        with self._lock:
            self._sweep()

    def _sweep(self) -> None:
        busy = self.busy.numpy()
        for (worker, index), ref in list(self._out.items()):
            if ref.expired():
                del self._out[(worker, index)]
                busy[worker, index] = 0


def install(pool: Optional[ShmPool]) -> None:
    """Called in each loader worker as it starts: its batches are packed into `pool`'s storages."""
    global _worker_pool
    _worker_pool = pool


def shared_buffer(shape: tuple[int, ...]) -> tuple[torch.Tensor, Optional[Slot]]:
    """An uninitialised uint8 tensor of `shape` in shared memory (in a worker), and its pool slot if any."""
    info = get_worker_info()
    nbytes = 1
    for d in shape:
        nbytes *= d
    pool = _worker_pool
    if info is None or pool is None or nbytes == 0:
        storage, slot = torch.UntypedStorage._new_shared(nbytes), None
    else:
        storage, index = pool.take(info.id, nbytes)
        slot = None if index is None else (pool.token, info.id, index)
    return torch.empty(0, dtype=torch.uint8).set_(storage, 0, shape), slot


def arrived(slot: Slot, images: torch.Tensor) -> None:
    """Training side: a pooled batch has been unpickled here (a slot of an unknown pool is not ours)."""
    pool = _pools.get(slot[0])
    if pool is not None:
        pool.arrived(slot[1], slot[2], images.untyped_storage())
