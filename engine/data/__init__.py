"""The engine's input pipeline: datasets, the recipe's transforms, samplers, synthetic data, loaders.

The trainer calls :func:`build_train_loader` / :func:`build_val_loader`, iterates :class:`Batch` es of
uint8 images, and normalises them on the device with :func:`normalize`.

Layout: ``datasets`` (ImageFolder / list files), ``decode`` (JPEG with reduced-size decoding, fallbacks),
``transforms`` (seeded augmentation, normalisation), ``synthetic``, ``loaders`` (sampler, Loader),
``dali`` / ``dali_graph`` (the DALI backends, fed by the same sampler and seeds), ``testing`` (tiny image
sets for tests and benchmarks), ``build`` (the loaders above), ``prepare`` (ImageNet's archives in).

The names below are imported on first use (PEP 562), not with the package: ``engine.data.prepare`` and
``engine.data.decode``'s verification run without torch, so a prepare starts, and forks its workers, fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOME = {  # name -> the module that defines it
    "CROP_RATIO": "engine.data.transforms",
    "CROP_SCALE": "engine.data.transforms",
    "IMAGENET_MEAN": "engine.data.transforms",
    "IMAGENET_STD": "engine.data.transforms",
    "IMG_EXTENSIONS": "engine.data.datasets",
    "BadImageWarning": "engine.data.loaders",
    "Batch": "engine.data.batch",
    "BatchPlan": "engine.data.loaders",
    "ConfigError": "engine.config",
    "ImageBatches": "engine.data.loaders",
    "Loader": "engine.data.loaders",
    "SampleList": "engine.data.datasets",
    "SyntheticImages": "engine.data.synthetic",
    "TrainTransform": "engine.data.transforms",
    "ValTransform": "engine.data.transforms",
    "build_train_loader": "engine.data.build",
    "build_val_loader": "engine.data.build",
    "load_split": "engine.data.datasets",
    "normalize": "engine.data.transforms",
    "sample_crop": "engine.data.transforms",
    "synthetic_sizes": "engine.data.build",
}
__all__ = list(_HOME)

if TYPE_CHECKING:
    from engine.config import ConfigError as ConfigError
    from engine.data.batch import Batch as Batch
    from engine.data.build import build_train_loader as build_train_loader
    from engine.data.build import build_val_loader as build_val_loader
    from engine.data.build import synthetic_sizes as synthetic_sizes
    from engine.data.datasets import IMG_EXTENSIONS as IMG_EXTENSIONS
    from engine.data.datasets import SampleList as SampleList
    from engine.data.datasets import load_split as load_split
    from engine.data.loaders import BadImageWarning as BadImageWarning
    from engine.data.loaders import BatchPlan as BatchPlan
    from engine.data.loaders import ImageBatches as ImageBatches
    from engine.data.loaders import Loader as Loader
    from engine.data.synthetic import SyntheticImages as SyntheticImages
    from engine.data.transforms import CROP_RATIO as CROP_RATIO
    from engine.data.transforms import CROP_SCALE as CROP_SCALE
    from engine.data.transforms import IMAGENET_MEAN as IMAGENET_MEAN
    from engine.data.transforms import IMAGENET_STD as IMAGENET_STD
    from engine.data.transforms import TrainTransform as TrainTransform
    from engine.data.transforms import ValTransform as ValTransform
    from engine.data.transforms import normalize as normalize
    from engine.data.transforms import sample_crop as sample_crop


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
