"""The loaders the trainer builds (:func:`build_train_loader`, :func:`build_val_loader`); re-exported by
``engine.data``, which imports this module on first use."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Optional

from engine.config import DALI_BACKENDS, ConfigError, TrainConfig
from engine.data.datasets import SampleList, load_split
from engine.data.loaders import BatchPlan, ImageBatches, Loader
from engine.data.synthetic import SyntheticImages
from engine.data.transforms import TrainTransform, ValTransform
from engine.schedule import CropSizes

SYNTHETIC_WORKERS = 2  # rendering a synthetic batch is a few uint8 adds: two workers keep any card fed


def synthetic_sizes(cfg: TrainConfig, world_size: int) -> tuple[int, int]:
    """(train, val) images per epoch of the synthetic backend, over all ranks."""
    per_step = cfg.batch_size * world_size
    train = cfg.synthetic_size or 40 * per_step
    return train, max(train // 4, min(train, per_step))


def build_train_loader(
    cfg: TrainConfig, rank: int, world_size: int, pin_memory: bool, slow_s: float = 0.0
) -> Loader:
    """This rank's training loader: shuffled per epoch, padded shards, the recipe's augmentation.
    `slow_s`: the slow-loader test hook (engine/testhooks.py)."""
    return _build(cfg, "train", rank, world_size, pin_memory, slow_s)


def build_val_loader(
    cfg: TrainConfig, rank: int, world_size: int, pin_memory: bool, slow_s: float = 0.0
) -> Loader:
    """This rank's validation loader: fixed order, exact shards (every sample on exactly one rank)."""
    return _build(cfg, "val", rank, world_size, pin_memory, slow_s)


def _build(
    cfg: TrainConfig, split: str, rank: int, world_size: int, pin_memory: bool, slow_s: float
) -> Loader:
    seed = cfg.seed if cfg.seed is not None else 0
    sizes = _sizes_by_epoch(cfg, split)
    size, resize = sizes(0) if sizes is not None else (cfg.train_image_size, cfg.val_resize)
    workers = cfg.workers
    if cfg.data_backend == "synthetic":
        n = synthetic_sizes(cfg, world_size)[0 if split == "train" else 1]
        source = SyntheticImages(n, cfg.num_classes, size, seed, split, sizes)
        workers = min(workers, SYNTHETIC_WORKERS)
    else:
        if not cfg.data:
            raise ConfigError(
                "no dataset given: pass DIR (with train/ and val/), or --data-backend synthetic"
            )
        samples = load_split(cfg.data, split, cfg.num_classes)
        if _dali_runs(cfg.data_backend):
            source = _dali_source(cfg, samples, split, seed, workers)
        else:
            transform = (
                TrainTransform(size, cfg.interpolation, cfg.augmentation)
                if split == "train"
                else ValTransform(size, resize, cfg.interpolation)
            )
            source = ImageBatches(samples, transform, size, seed, sizes, slow_s)
    train = split == "train"
    plan = BatchPlan(len(source), cfg.batch_size, rank, world_size, shuffle=train, seed=seed, drop_last=train)
    if train and len(plan) == 0:
        raise ConfigError(
            f"the training set has {plan.num_samples} images per card, fewer than one batch (-b "
            f"{cfg.batch_size}): lower -b, or use fewer cards or more images"
        )
    if _dali_runs(cfg.data_backend):
        from engine.data.dali import DaliLoader

        return DaliLoader(source, plan, cfg.prefetch, pin_memory)
    return Loader(source, plan, workers, cfg.prefetch, pin_memory)


def _sizes_by_epoch(cfg: TrainConfig, split: str) -> Optional[Callable[[int], tuple[int, int]]]:
    """epoch → (crop, resize) of `split` when --resize-schedule or --val-image-size set it, else None."""
    crops = cfg.crop_sizes
    if crops.schedule is None and (split == "train" or cfg.val_image_size is None):
        return None
    if split == "train":
        return partial(_train_size, crops)
    return crops.val_at


def _train_size(crops: CropSizes, epoch: int) -> tuple[int, int]:  # module level: workers pickle it
    size = crops.train_at(epoch)
    return size, size


def _dali_runs(backend: str) -> bool:
    """A DALI backend was asked for and can run here (else the own pipeline runs; train.py says why)."""
    if backend not in DALI_BACKENDS:
        return False
    from engine.data.dali import missing  # DALI is imported only when a DALI backend is asked for

    return missing(backend) is None


def _dali_source(cfg: TrainConfig, samples: SampleList, split: str, seed: int, threads: int) -> Any:
    from engine.data.dali import DaliBatches

    return DaliBatches(
        samples, split == "train", cfg.train_image_size, cfg.val_resize, cfg.interpolation,
        cfg.augmentation, seed, cfg.data_backend, cfg.batch_size, threads,
    )  # fmt: skip
