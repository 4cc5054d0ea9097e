"""The engine's sampler and loader: per-epoch shuffles, rank shards, exact mid-epoch resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.config import TrainConfig
from engine.data import BatchPlan, build_train_loader, build_val_loader
from engine.data.testing import make_image_folder

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")


def shards(
    n: int, world: int, shuffle: bool, epoch: int = 0, seed: int = 0, batch: int = 4
) -> list[list[int]]:
    plans = [BatchPlan(n, batch, r, world, shuffle, seed) for r in range(world)]
    return [p.indices(epoch) for p in plans]


def test_train_order_changes_per_epoch_and_follows_the_seed() -> None:
    orders = [shards(50, 1, True, epoch=e)[0] for e in range(4)]
    assert all(sorted(o) == list(range(50)) for o in orders)
    assert len({tuple(o) for o in orders}) == 4
    assert shards(50, 1, True, epoch=2)[0] == orders[2]  # a rank that restarts computes the same order
    assert shards(50, 1, True, epoch=2, seed=9)[0] != orders[2]


@pytest.mark.parametrize(("n", "world"), [(50, 2), (50, 4), (7, 3), (2, 4)])
def test_train_shards_are_equal_disjoint_and_cover_the_set(n: int, world: int) -> None:
    for epoch in range(3):
        parts = shards(n, world, True, epoch)
        per_rank = -(-n // world)
        assert all(len(p) == per_rank for p in parts)
        everything = [i for p in parts for i in p]
        assert set(everything) == set(range(n))
        assert len(everything) - n == per_rank * world - n  # only the padding repeats
        if per_rank * world == n:
            assert len(set(everything)) == n


@pytest.mark.parametrize(("n", "world"), [(50, 1), (50, 4), (7, 3), (2, 4)])
def test_val_shards_are_exact(n: int, world: int) -> None:
    parts = shards(n, world, False)
    everything = sorted(i for p in parts for i in p)
    assert everything == list(range(n))  # each sample on exactly one rank, no padding
    assert shards(n, world, False, epoch=5) == parts
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_plan_yields_epoch_tagged_batches_and_skips_without_loading() -> None:
    plan = BatchPlan(10, 4, 0, 1, shuffle=True, seed=0)
    plan.epoch = 3
    keys = list(plan)
    assert len(plan) == 3 and [len(ix) for _, ix in keys] == [4, 4, 2] and {e for e, _ in keys} == {3}
    plan.start = 2
    assert list(plan) == keys[2:]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    return make_image_folder(root, {"train": 7, "val": 3}, num_classes=3, size=(48, 40))


def cfg_for(data: Path, workers: int) -> TrainConfig:
    return TrainConfig(data=str(data), num_classes=3, image_size=32, batch_size=4, workers=workers, seed=5)


def epoch_batches(loader, epoch: int, start: int = 0) -> list:
    loader.set_epoch(epoch)
    loader.set_start_iteration(start)
    return list(loader)


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x.images, y.images) and torch.equal(x.labels, y.labels) for x, y in zip(a, b)
    )


@pytest.mark.parametrize("workers", [0, 2])
def test_start_iteration_resumes_the_same_epoch_bit_for_bit(folder: Path, workers: int) -> None:
    loader = build_train_loader(cfg_for(folder, workers), 0, 1, False)
    assert len(loader) == 5  # full batches only: the short last one is dropped, as the recipe's
    full = epoch_batches(loader, 1)
    other = epoch_batches(loader, 2)
    assert not same(full, other)
    tail = epoch_batches(loader, 1, start=4)
    assert loader.position == 5 and same(tail, full[4:])
    assert same(epoch_batches(loader, 1), full)  # the skip applied to one iteration only
    fresh = build_train_loader(cfg_for(folder, workers), 0, 1, False)
    fresh.load_state_dict({"epoch": 1, "iteration": 3})  # as a resumed process would
    assert same(list(fresh), full[3:])


def test_batches_do_not_depend_on_the_worker_count(folder: Path) -> None:
    a = epoch_batches(build_train_loader(cfg_for(folder, 0), 0, 1, False), 3)
    b = epoch_batches(build_train_loader(cfg_for(folder, 2), 0, 1, False), 3)
    assert same(a, b)


def test_loader_position_counts_batches_handed_out(folder: Path) -> None:
    loader = build_train_loader(cfg_for(folder, 0), 0, 1, False)
    loader.set_epoch(4)
    it = iter(loader)
    next(it), next(it)
    assert loader.state_dict() == {"epoch": 4, "iteration": 2}
    with pytest.raises(ValueError):
        loader.set_start_iteration(7)


def test_ranks_of_a_loader_split_val_exactly(folder: Path) -> None:
    cfg = cfg_for(folder, 0)
    loaders = [build_val_loader(cfg, r, 2, False) for r in range(2)]
    assert [ld.num_samples for ld in loaders] == [5, 4] and all(ld.dataset_size == 9 for ld in loaders)
    labels = sorted(int(x) for ld in loaders for b in ld for x in b.labels)
    assert labels == [0, 0, 0, 1, 1, 1, 2, 2, 2]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinning needs an accelerator")
def test_batches_are_pinned_when_asked(folder: Path) -> None:
    batch = next(iter(build_train_loader(cfg_for(folder, 0), 0, 1, True)))
    assert batch.images.is_pinned() and batch.labels.is_pinned()


def test_the_training_plan_drops_a_short_last_batch_and_validation_keeps_it():
    train = BatchPlan(17, 8, 0, 1, shuffle=True, seed=0, drop_last=True)
    val = BatchPlan(17, 8, 0, 1, shuffle=False, seed=0)
    assert len(train) == 2 and [len(b) for _, b in train] == [8, 8]
    assert len(val) == 3 and [len(b) for _, b in val] == [8, 8, 1]
    two_ranks = [BatchPlan(33, 8, r, 2, shuffle=True, seed=0, drop_last=True) for r in range(2)]
    assert [len(p) for p in two_ranks] == [2, 2]  # 17 padded samples per rank: 2 full batches each
