"""Reused shared-memory batch buffers (engine/data/shm_pool.py): reused when done with, never under a holder."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from engine.data import BatchPlan, ImageBatches, Loader, load_split
from engine.data.shm_pool import ShmPool
from engine.data.testing import make_image_folder
from engine.data.transforms import TrainTransform
from tests.conftest import ROOT, engine_env

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")
SIZE, BATCH = 16, 4


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """2 classes × 13 training JPEGs: 26 images, 7 batches of 4 (the last one short)."""
    return make_image_folder(tmp_path_factory.mktemp("pool"), {"train": 13}, num_classes=2, size=(40, 32))


def loader(folder: Path, workers: int, pin: bool = False, cap: int = 8) -> Loader:
    samples = load_split(str(folder), "train", 2)
    source = ImageBatches(samples, TrainTransform(SIZE), SIZE, seed=5)
    plan = BatchPlan(len(samples), BATCH, 0, 1, shuffle=True, seed=5)
    return Loader(source, plan, workers, prefetch=2, pin_memory=pin, pool_cap=cap)


def epochs(ld: Loader, count: int, start: int = 0) -> list:
    """Every batch of `count` epochs, all kept."""
    out = []
    for epoch in range(count):
        ld.set_epoch(epoch)
        if epoch == 0 and start:
            ld.set_start_iteration(start)
        out += [(b.images.clone(), b.labels.clone(), b) for b in ld]
    return out


def assert_same(kept: list, expected: list) -> None:
    """The batches held all along still have the pixels they arrived with, and those of 0 workers."""
    assert len(kept) == len(expected)
    for (_, _, held), (img, lab, _) in zip(kept, expected):
        assert torch.equal(held.images, img) and torch.equal(held.labels, lab)
    for (img, _, _), (ref, _, _) in zip(kept, expected):
        assert torch.equal(img, ref)


@pytest.mark.slow
def test_a_steady_pass_reuses_a_few_buffers(folder: Path) -> None:
    ld = loader(folder, 1)
    batches = 0
    for epoch in range(4):
        ld.set_epoch(epoch)
        for batch in ld:
            batches += 1
            assert batch.images.shape[1:] == (3, SIZE, SIZE)
    assert ld.pool is not None and batches == 28
    assert ld.pool.allocations() <= 8 < batches  # the unpooled loader makes one per batch
    unpooled = loader(folder, 1, cap=0)
    for _ in unpooled:
        pass
    assert unpooled.pool is not None and unpooled.pool.allocations() == 7


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_kept_batches_are_never_overwritten(folder: Path, workers: int) -> None:
    expected = epochs(loader(folder, 0), 3)
    ld = loader(folder, workers, cap=3)  # fewer slots than batches held: the pool falls back to fresh ones
    kept = epochs(ld, 3)
    assert_same(kept, expected)
    assert ld.pool is not None and ld.pool.allocations() == len(kept)  # every one held: none reused


@pytest.mark.slow
def test_pinned_batches_are_intact_and_free_their_slot_at_once(folder: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("pinning memory needs CUDA here")
    expected = epochs(loader(folder, 0), 2)
    ld = loader(folder, 1, pin=True)
    kept = epochs(ld, 2)
    assert_same(kept, expected)
    assert all(b.images.is_pinned() for _, _, b in kept)
    assert ld.pool is not None and ld.pool.allocations() <= 8  # the pinned copies hold no slot


@pytest.mark.slow
def test_a_resumed_epoch_is_the_same(folder: Path) -> None:
    expected = epochs(loader(folder, 0), 2, start=3)
    kept = epochs(loader(folder, 1), 2, start=3)
    assert_same(kept, expected)
    assert len(kept) == 7 - 3 + 7


@pytest.mark.slow
def test_a_broken_off_epoch_frees_what_it_dropped(folder: Path) -> None:
    """Batches in flight when an epoch is broken off are dropped on the next one; their slots come back."""
    ld = loader(folder, 1, cap=4)
    for epoch in range(6):
        ld.set_epoch(epoch)
        for i, _ in enumerate(ld):
            if i == 1:
                break
    ld.set_epoch(6)
    kept = [(b.images.clone(), b.labels.clone(), b) for b in ld]
    assert all(torch.equal(b.images, img) for img, _, b in kept)
    assert ld.pool is not None and ld.pool.allocations() < 6 * 2 + 7


@pytest.mark.slow
def test_batches_of_only_bad_images_are_empty_and_take_no_buffer(tmp_path: Path) -> None:
    bad = make_image_folder(tmp_path / "bad", {"train": 4}, num_classes=2, size=(40, 32))
    for f in (bad / "train").rglob("*.JPEG"):
        f.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" * 10)
    ld = loader(bad, 1)
    batches = list(ld)  # the worker warns, in its own process
    assert [(len(b), b.skipped, b.images.shape) for b in batches] == [(0, 4, (0, 3, SIZE, SIZE))] * 2
    assert ld.pool is not None and ld.pool.allocations() == 0


def test_the_pool_hands_out_free_storages_only() -> None:
    pool = ShmPool(workers=1, cap=2)
    a, sa = pool.take(0, 100)
    b, sb = pool.take(0, 100)
    c, sc = pool.take(0, 100)  # both out: unpooled
    assert (sa, sb, sc) == (0, 1, None) and pool.allocations() == 3
    pool.busy[0, 0] = 0
    again, s = pool.take(0, 50)
    assert s == 0 and again.data_ptr() == a.data_ptr() and pool.allocations() == 3
    pool.busy[0, 1] = 0
    bigger, s = pool.take(0, 200)  # a free one too small is replaced
    assert s == 1 and bigger.nbytes() == 200 and pool.allocations() == 4


def test_a_spawned_worker_gets_the_flags_not_the_storages() -> None:
    pool = ShmPool(workers=2, cap=3)
    pool.take(0, 10)
    copy = pickle.loads(pickle.dumps(pool))
    assert copy.token == pool.token and copy._mine == [] and copy.busy.shape == (2, 3)


def test_a_batch_off_the_pool_pickles_as_a_plain_one(folder: Path) -> None:
    (batch, *_) = list(loader(folder, 0))
    assert batch.slot is None
    again = pickle.loads(pickle.dumps(batch))
    assert torch.equal(again.images, batch.images) and again.slot is None


@pytest.mark.slow
def test_a_script_that_exits_holding_a_loader_ends(folder: Path) -> None:
    script = textwrap.dedent(f"""
        from tests.data.test_batch_pool import loader
        from pathlib import Path
        held = loader(Path({str(folder)!r}), 1)
        next(iter(held))
        print("done")
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=engine_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr
