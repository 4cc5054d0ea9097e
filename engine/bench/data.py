"""``python -m engine.bench data [DIR]``: input-pipeline images/s, the port's PIL path beside ours.

OLD: PIL open + convert, torchvision.transforms (v1) RandomResizedCrop + flip + ToTensor + Normalize,
float collate — the port's pipeline. NEW: the engine's loader (header-planned crop, libjpeg-turbo or
reduced-size decode, v2 transforms on uint8, uint8 collate; normalisation is left to the device).
NEW+AA: the engine's loader with `--augmentation autoaugment` (ImageNet policy on the uint8 crop), for the
training split. DALI-CPU (where NVIDIA DALI is installed): `--data-backend dali-cpu`, the same plan and
crops, DALI's CPU decoder and operators with 1 and N threads (DALI-CPU+AA with AutoAugment), and below
the table NVIDIA DALI alone (engine/bench/dali_reference.py), the ceiling of DALI-CPU. The others run
through a DataLoader with 1 and with N workers; per-core = images/s ÷ workers (or threads).
Without DIR a set of 500×375 quality-90 JPEGs is generated in a temporary folder. The last line says how
many cards this host's cores feed at a card's training rate (engine/bench/feed.py).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from engine.data import IMAGENET_MEAN, IMAGENET_STD, BatchPlan, ImageBatches, Loader, load_split
from engine.data.datasets import SampleList
from engine.data.decode import read_bytes
from engine.data.testing import make_jpeg_set
from engine.data.transforms import TrainTransform, ValTransform


class _PilDataset(Dataset):
    """The port's per-sample path: PIL decode + v1 transforms to a normalised float tensor."""

    def __init__(self, samples: SampleList, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with open(self.samples.path(i), "rb") as f:
            img = Image.open(f).convert("RGB")
        return self.transform(img), int(self.samples.labels[i])


def old_transform(split: str, size: int) -> Callable[[Image.Image], torch.Tensor]:
    norm = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if split == "train":
        return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), *norm])
    return T.Compose([T.Resize(int(round(size / 0.875))), T.CenterCrop(size), *norm])


def old_loader(samples: SampleList, split: str, size: int, batch: int, workers: int) -> DataLoader:
    return DataLoader(
        _PilDataset(samples, old_transform(split, size)),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )


def new_loader(
    samples: SampleList, split: str, size: int, batch: int, workers: int, augmentation: Optional[str] = None
) -> Loader:
    transform = (
        TrainTransform(size, augmentation=augmentation)
        if split == "train"
        else ValTransform(size, int(round(size / 0.875)))
    )
    plan = BatchPlan(len(samples), batch, 0, 1, shuffle=True, seed=0)
    return Loader(ImageBatches(samples, transform, size, 0), plan, workers, 2, pin_memory=False)


def timed_pass(loader: Iterable[Any], epoch: int) -> float:
    """Images/s of one full pass over the set."""
    if isinstance(loader, Loader):
        loader.set_epoch(epoch)
    n, start = 0, time.perf_counter()
    for batch in loader:
        n += len(batch[1]) if isinstance(batch, (list, tuple)) else len(batch)
    return n / (time.perf_counter() - start)


def decode_rates(samples: SampleList, limit: int = 64, passes: int = 3) -> dict[str, float]:
    """Decode-only images/s on one thread (PIL and torchvision), for reference: the best of `passes` after
    a warm-up one (a single cold pass read 615 img/s where the decoder makes 826)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    blobs = [read_bytes(samples.path(i)) for i in range(min(limit, len(samples)))]
    rates = {}
    for name, fn in {
        "PIL decode": lambda b: Image.open(io.BytesIO(b)).convert("RGB"),
        "torchvision decode_jpeg": lambda b: decode_jpeg(
            torch.frombuffer(b, dtype=torch.uint8), mode=ImageReadMode.RGB
        ),
    }.items():
        best = float("inf")
        for i in range(passes + 1):
            start = time.perf_counter()
            for b in blobs:
                fn(b)
            best = min(best, time.perf_counter() - start) if i else best  # pass 0 warms up
        rates[name] = len(blobs) / best
    return rates


def new_aa_loader(samples: SampleList, split: str, size: int, batch: int, workers: int) -> Loader:
    return new_loader(samples, split, size, batch, workers, augmentation="autoaugment")


def dali_loader(
    samples: SampleList, split: str, size: int, batch: int, threads: int, augmentation: Optional[str] = None
) -> Loader:
    """`--data-backend dali-cpu`'s loader with `threads` DALI threads (one feeder thread besides)."""
    from engine.data.dali import DaliBatches, DaliLoader

    train = split == "train"
    source = DaliBatches(
        samples,
        train,
        size,
        int(round(size / 0.875)),
        "bilinear",
        augmentation,
        0,
        "dali-cpu",
        batch,
        threads,
    )
    return DaliLoader(source, BatchPlan(len(samples), batch, 0, 1, shuffle=True, seed=0), prefetch=2)


def dali_aa_loader(samples: SampleList, split: str, size: int, batch: int, threads: int) -> Loader:
    return dali_loader(samples, split, size, batch, threads, augmentation="autoaugment")


def dali_present() -> bool:
    from engine.data.dali import missing

    return missing("dali-cpu") is None


def run(samples: SampleList, args: argparse.Namespace) -> list[tuple[str, int, float]]:
    """Best-of-`repeat` images/s for (path, workers); the paths alternate so load changes hit all."""
    counts = sorted({1, args.workers})
    paths: list[tuple[str, Callable[..., Any]]] = [("old", old_loader), ("new", new_loader)]
    if args.split == "train":
        paths.append(("new+aa", new_aa_loader))
    if dali_present():
        paths.append(("dali", dali_loader))
        if args.split == "train":
            paths.append(("dali+aa", dali_aa_loader))
    loaders = {
        (path, w): make(samples, args.split, args.image_size, args.batch_size, w)
        for w in counts
        for path, make in paths
    }
    for loader in loaders.values():
        timed_pass(loader, 0)  # warm-up: worker start, page cache
    best = dict.fromkeys(loaders, 0.0)
    for rep in range(args.repeat):
        for key, loader in loaders.items():
            best[key] = max(best[key], timed_pass(loader, rep + 1))
    return [(path, w, best[(path, w)]) for (path, w) in loaders]


def report(
    results: list[tuple[str, int, float]], decode: dict[str, float], plain: Optional[dict[int, float]] = None
) -> None:
    rates = {(p, w): r for p, w, r in results}
    aa = any(p == "new+aa" for p, _, _ in results)
    dali = any(p == "dali" for p, _, _ in results)
    dali_aa = any(p == "dali+aa" for p, _, _ in results)
    plain = plain or {}
    head = f"{'workers':>7}  {'old img/s':>10} {'per core':>9}  {'new img/s':>10} {'per core':>9}  {'speed-up':>8}"
    head += f"  {'new+AA img/s':>12} {'per core':>9}  {'AA cost':>7}" if aa else ""
    head += f"  {'dali-cpu img/s':>14} {'per core':>9}  {'vs new':>6}" if dali else ""
    head += f"  {'dali+AA img/s':>13} {'per core':>9}  {'AA cost':>7}" if dali_aa else ""
    print(head)
    for w in sorted({w for _, w, _ in results}):
        old, new = rates[("old", w)], rates[("new", w)]
        line = f"{w:>7}  {old:>10.0f} {old / w:>9.0f}  {new:>10.0f} {new / w:>9.0f}  {new / old:>7.2f}×"
        if aa:  # AutoAugment's cost: the share of the plain pipeline's rate it takes away
            with_aa = rates[("new+aa", w)]
            line += f"  {with_aa:>12.0f} {with_aa / w:>9.0f}  {100 * (1 - with_aa / new):>6.0f}%"
        if dali:  # DALI's threads are the workers: the same cores, one process
            d = rates[("dali", w)]
            line += f"  {d:>14.0f} {d / w:>9.0f}  {d / new:>5.2f}×"
        if dali_aa:
            d_aa = rates[("dali+aa", w)]
            line += f"  {d_aa:>13.0f} {d_aa / w:>9.0f}  {100 * (1 - d_aa / rates[('dali', w)]):>6.0f}%"
        print(line)
    for name, r in decode.items():
        print(f"reference, one thread: {name} {r:.0f} img/s (decode alone)")
    for threads, r in sorted(plain.items()):
        print(f"reference, {threads} thread{'s' if threads > 1 else ''}: NVIDIA DALI alone {r:.0f} img/s "
              "(file reader → random-crop decode → resize → flip, engine/bench/dali_reference.py)")  # fmt: skip
    if not dali:
        print("dali-cpu: not measured, NVIDIA DALI is not installed (pip install 'rn50tui[dali]')")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m engine.bench data", description=__doc__.split("\n")[0])
    p.add_argument(
        "data",
        nargs="?",
        default=None,
        metavar="DIR",
        help="dataset root (train/ or train.txt…); default: generated 500×375 JPEGs",
    )
    p.add_argument("--workers", "-j", type=int, default=2, help="the N of the N-worker row")
    p.add_argument("--image-size", type=int, default=224, help="training crop size")
    p.add_argument("--batch-size", "-b", type=int, default=32, help="images per batch")
    p.add_argument("--images", type=int, default=320, help="images in the generated set (or used from DIR)")
    p.add_argument("--split", choices=("train", "val"), default="train", help="which transform to time")
    p.add_argument("--repeat", type=int, default=2, help="timed passes per configuration (best is shown)")
    p.add_argument("--source-size", default="500x375", metavar="WxH", help="size of the generated JPEGs")
    p.add_argument(
        "--card-ips",
        type=float,
        default=None,
        metavar="N",
        help="one card's training images/s for the feed estimate (default: NVIDIA's published 1-card AMP "
        "figure, engine/bench/feed.py)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also print the own pipeline's time per image of each stage (read … normalise), one core",
    )
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="rn50tui-bench-") as tmp:
        if args.data:
            root = Path(args.data)
        else:
            size = tuple(int(v) for v in args.source_size.lower().split("x"))
            root = make_jpeg_set(Path(tmp), args.images, size=size, splits=(args.split,))
        samples = _subset(load_split(str(root), args.split, num_classes=1 << 30), args.images)
        kb = sum(os.path.getsize(samples.path(i)) for i in range(len(samples))) / len(samples) / 1000
        print(
            f"{len(samples)} images ({kb:.0f} kB on average) from {samples.source}, {args.split} transform "
            f"at {args.image_size} px, batch {args.batch_size}, one torch thread per worker"
        )
        decode = decode_rates(samples)
        results = run(samples, args)
        plain = {}
        if args.split == "train" and dali_present():  # DALI's own ceiling on these cores
            from engine.bench.dali_reference import dali_alone

            plain = {
                w: dali_alone(samples, args.image_size, args.batch_size, w, args.repeat)
                for w in sorted({1, args.workers})
            }
        report(results, decode, plain)
        if args.split == "train":  # cards feed on the training transform
            from engine.bench.feed import estimate

            print(estimate({w: r for p, w, r in results if p == "new"}, args.card_ips).line())
        if args.profile:
            from engine.bench.data_profile import profile, report_profile

            for aug in (None, "autoaugment") if args.split == "train" else (None,):
                print(f"\nown pipeline, training transform{' + AutoAugment' if aug else ''}, per stage:")
                per_image = profile(samples, args.image_size, args.batch_size, aug)
                report_profile(per_image, decode.get("torchvision decode_jpeg"))
    return 0


def _subset(samples: SampleList, count: int) -> SampleList:
    """`count` samples (all when there are fewer), spread evenly over the listing, so over the classes."""
    n = min(count, len(samples))
    if n == 0:
        return samples
    pick = [i * len(samples) // n for i in range(n)]
    pairs = [(samples.path(i), int(samples.labels[i])) for i in pick]
    return SampleList.pack("", pairs, samples.classes, samples.source)
