"""``python -m engine.bench handover``: 1-worker loader passes with and without the shared-storage pool.

The pool (engine/data/shm_pool.py) against a new shared storage per batch (pool cap 0), the two passes
alternating so load hits both; best and median images/s, the loader worker's user and system CPU per
image (from /proc), and the storages each worker made. Without DIR a generated 500×375 JPEG set is used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch

from engine.data import BatchPlan, ImageBatches, Loader, load_split
from engine.data.testing import make_jpeg_set
from engine.data.transforms import TrainTransform


def _cpu(pid: int) -> float:
    """User + system seconds of process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.bench handover", description=__doc__)
    p.add_argument("data", nargs="?", help="an ImageFolder root with a train split (default: generated)")
    p.add_argument("--images", type=int, default=320, help="images in the generated set")
    p.add_argument("--batch-size", "-b", type=int, default=32)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--repeat", type=int, default=8, help="timed passes of each loader")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rn50tui-bench-") as tmp:
        root = args.data or make_jpeg_set(Path(tmp), args.images, size=(500, 375), splits=("train",))
        samples = load_split(str(root), "train", num_classes=1 << 30)
        n, size = len(samples), args.image_size
        source = ImageBatches(samples, TrainTransform(size), size, 0)
        loaders = {
            cap: Loader(source, BatchPlan(n, args.batch_size, 0, 1, False, 0), 1, 2, False, cap)
            for cap in (8, 0)
        }
        torch.set_num_threads(1)  # as a worker: the main process takes no second core from it
        walls: dict[int, list[float]] = {cap: [] for cap in loaders}
        cpus = dict.fromkeys(loaders, 0.0)
        for loader in loaders.values():  # warm-up: worker start, page cache
            for _ in loader:
                pass
        for _ in range(args.repeat):
            for cap, loader in loaders.items():
                pid = loader._loader._iterator._workers[0].pid  # type: ignore[union-attr]
                c0, t0 = _cpu(pid), time.perf_counter()
                for _ in loader:
                    pass
                walls[cap].append(time.perf_counter() - t0)
                cpus[cap] += _cpu(pid) - c0
        print(f"{n} images, batch {args.batch_size}, {size} px, one worker, {args.repeat} passes each")
        for cap, name in ((8, "pooled (cap 8)"), (0, "unpooled")):
            best, median = n / min(walls[cap]), n / statistics.median(walls[cap])
            cpu_us = 1e6 * cpus[cap] / (n * args.repeat)
            made = loaders[cap].pool.allocations()  # type: ignore[union-attr]
            print(f"{name:<15} best {best:5.0f} img/s, median {median:5.0f} img/s; worker CPU "
                  f"{cpu_us:5.0f} µs/image; {made} shared storages made")  # fmt: skip
    return 0
