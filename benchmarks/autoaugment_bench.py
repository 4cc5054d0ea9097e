"""AutoAugment on 224² uint8 crops: torchvision's (the engine's before issue 30) against engine/data/autoaugment.py.

    python benchmarks/autoaugment_bench.py [--rounds 5] [--pipeline] [--images 320]

One torch thread, one core. Per op: torchvision's functional op as v2.AutoAugment calls it, then ours, at
magnitude bin 7 (signed ops positive), µs per image on random 224² crops. Whole policy: the old
SeededAutoAugment (``fork_rng`` + ``manual_seed`` + ``v2.AutoAugment(IMAGENET)``) against the new one over
the same images and seeds. Every figure is the best of `--rounds`, the two sides alternating, so drift on
a shared machine hits both alike. --pipeline also times the own pipeline's stages (engine/bench/
data_profile.py) on generated 500×375 JPEGs with each AutoAugment and prints AutoAugment's share of the
time per image (the "AA cost" of ``python -m engine.bench data``). The load average is printed before
and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

import engine.data.transforms as transforms  # noqa: E402
from engine.data.autoaugment import SPACE, AutoAugment, apply_op, magnitude  # noqa: E402


class TorchvisionAutoAugment:
    """The engine's SeededAutoAugment before issue 30: torchvision's transform in a forked, seeded RNG."""

    def __init__(self) -> None:
        self.aa = v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)

    def __call__(self, img: torch.Tensor, seed: int) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.aa(img)


def best_us(fns: dict[str, Callable[[int], object]], calls: int, rounds: int) -> dict[str, float]:
    """µs per call of each function, the best of `rounds` runs of `calls`, the functions alternating."""
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn(0)
            start = time.perf_counter()
            for i in range(calls):
                fn(i)
            best[name] = min(best[name], (time.perf_counter() - start) / calls * 1e6)
    return best


def per_op(images: list[torch.Tensor], rounds: int) -> None:
    tv = v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)
    n = len(images)
    forked = best_us(
        {"": lambda i: (torch.random.fork_rng(devices=[]).__enter__(), torch.manual_seed(i))}, 200, rounds
    )
    print(f"{'op':<14} {'torchvision µs':>14} {'ours µs':>8} {'ratio':>6}")
    print(f"{'fork_rng+seed':<14} {forked['']:>14.0f} {'–':>8}")
    for op in SPACE:
        m = magnitude(op, 7, 224, 224)
        t = best_us(
            {
                "tv": lambda i, op=op, m=m: tv._apply_image_or_video_transform(
                    images[i % n], op, m, tv.interpolation, tv._fill
                ),
                "ours": lambda i, op=op, m=m: apply_op(images[i % n], op, m),
            },
            60,
            rounds,
        )
        print(f"{op:<14} {t['tv']:>14.0f} {t['ours']:>8.0f} {t['tv'] / t['ours']:>5.1f}×")


def pipeline(count: int, rounds: int) -> None:
    from engine.bench.data_profile import profile
    from engine.data import load_split
    from engine.data.testing import make_jpeg_set

    with tempfile.TemporaryDirectory(prefix="rn50tui-aa-") as tmp:
        root = make_jpeg_set(Path(tmp), count, splits=("train",))
        samples = load_split(str(root), "train", num_classes=1 << 30)
        best: dict[str, tuple[float, float]] = {}
        new = transforms.SeededAutoAugment
        for _ in range(rounds):
            for name, cls in (("torchvision", TorchvisionAutoAugment), ("ours", new)):
                transforms.SeededAutoAugment = cls  # TrainTransform builds its AutoAugment from this name
                stages = profile(samples, 224, 32, "autoaugment")
                aa, total = stages["autoaugment"], sum(stages.values())
                if name not in best or aa < best[name][0]:
                    best[name] = (aa, total)
        transforms.SeededAutoAugment = new
    print(f"\nown pipeline on {count} generated 500×375 JPEGs, per image (best of {rounds}):")
    for name, (aa, total) in best.items():
        print(
            f"{name:<12} AutoAugment {1e6 * aa:>5.0f} µs of {1e6 * total:>5.0f} µs: AA cost {100 * aa / total:4.1f}%"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--pipeline", action="store_true", help="also AutoAugment's share of the own pipeline")
    p.add_argument("--images", type=int, default=320, help="JPEGs for --pipeline")
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 224, 224), dtype=torch.uint8, generator=g) for _ in range(8)]
    per_op(images, args.rounds)
    old, new = TorchvisionAutoAugment(), AutoAugment()
    t = best_us(
        {"old": lambda i: old(images[i % 8], i), "new": lambda i: new(images[i % 8], i)}, 1000, args.rounds
    )
    print(
        f"\nwhole policy per image: torchvision {t['old']:.0f} µs, ours {t['new']:.0f} µs ({t['old'] / t['new']:.1f}×)"
    )
    if args.pipeline:
        pipeline(args.images, max(1, args.rounds // 2))
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
