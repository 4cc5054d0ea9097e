"""``python -m engine.bench data --profile``: the own pipeline's time per image, stage by stage.

Stages as :class:`ImageBatches` runs them, timed on one thread in this process: read (the file's bytes),
decode (header, crop plan, the crop's window by libjpeg-turbo's partial decode, or the whole image by
libjpeg-turbo or reduced-size PIL), crop-resize, flip, [AutoAugment],
collate (packing the batch into one N×H×W×3 buffer), normalise (uint8 → float on the CPU, what the device
does per batch, in the default nchw layout: a uint8 transpose of the channels-last batch first; nhwc
skips it), and hand-over: what a 1-worker DataLoader pass costs per image beyond the stages (shared
memory, pickling, the queue between the worker and the training loop). One torch thread, as a worker.
Below the table, the same 1-worker pass without the pool of reused shared storages (engine/data/shm_pool.py,
a new storage per batch), timed alternately with the pooled one: the pool's gain, on the same run.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Optional

import torch

from engine.data import BatchPlan, ImageBatches, Loader, jpegcrop, normalize
from engine.data.batch import collate
from engine.data.datasets import SampleList
from engine.data.decode import _decode_other, decode_planned, jpeg_size, read_bytes
from engine.data.transforms import TrainTransform, sample_rng

STAGES = ("read", "decode", "crop-resize", "flip", "autoaugment", "collate", "hand-over", "normalise")
# seconds per image of whole 1-worker passes, with and without the pool, and hand-over without it
PASSES = ("1-worker pass", "1-worker pass, unpooled", "hand-over, unpooled")


def _in_process(samples: SampleList, transform: TrainTransform, batch: int) -> dict[str, float]:
    """Seconds of each stage over one pass, timed around the calls ImageBatches.fetch makes."""
    spent: dict[str, float] = defaultdict(float)
    n, size = len(samples), transform.size
    for start in range(0, n, batch):
        images, labels = [], []
        for i in range(start, min(n, start + batch)):
            path, rng = samples.path(i), sample_rng(0, 0, i)
            t0 = time.perf_counter()
            buf = read_bytes(path)
            t1 = time.perf_counter()
            hw = jpeg_size(buf)
            full_hw = hw
            if hw is not None:  # as load_image does: the crop's window alone where the decoder is built
                plan = transform.plan(hw[0], hw[1], rng)
                img, plan, full_hw = decode_planned(
                    buf, hw, plan, transform.reduction(hw[0], hw[1], plan), path
                )
            else:
                img = _decode_other(buf, path)
                plan = transform.plan(img.shape[1], img.shape[2], rng)
            t2 = time.perf_counter()
            out = transform.crop_resize(img, plan, full_hw)
            t3 = time.perf_counter()
            out = transform.flip(out, plan)
            t4 = time.perf_counter()
            if transform.autoaugment is not None:
                out = transform.autoaugment(out, plan.aa_seed)
            t5 = time.perf_counter()
            images.append(out)
            labels.append(int(samples.labels[i]))
            for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                if stage != "autoaugment" or transform.autoaugment is not None:  # no row for a stage not run
                    spent[stage] += dt
        t0 = time.perf_counter()
        stacked = collate(images, labels, size, []).images
        t1 = time.perf_counter()
        normalize(stacked)  # the engine's default layout (--memory-format nchw)
        spent["collate"] += t1 - t0
        spent["normalise"] += time.perf_counter() - t1
    return spent


def profile(
    samples: SampleList, size: int, batch: int, augmentation: Optional[str] = None, passes: int = 3
) -> dict[str, float]:
    """Seconds per image of each stage on one thread (a loader worker's), from the fastest of `passes`
    passes over `samples`; hand-over is the fastest 1-worker loader pass less that pass's stages (workers
    collate into shared memory, pickle, queue). The two kinds of pass alternate, so load hits both."""
    transform = TrainTransform(size, augmentation=augmentation)
    n = len(samples)
    source = ImageBatches(samples, transform, size, 0)
    loaders = {cap: Loader(source, BatchPlan(n, batch, 0, 1, False, 0), 1, 2, False, cap) for cap in (8, 0)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a worker's one thread: no stage borrows the other cores here
    try:
        for loader in loaders.values():  # warm-up: the worker's start and the page cache are not hand-over
            for _ in loader:
                pass
        best: Optional[dict[str, float]] = None
        best_loader = {cap: float("inf") for cap in loaders}
        for _ in range(max(1, passes)):
            spent = _in_process(samples, transform, batch)
            if best is None or _work(spent) < _work(best):
                best = spent
            for cap, loader in loaders.items():
                t0 = time.perf_counter()
                for _ in loader:
                    pass
                best_loader[cap] = min(best_loader[cap], time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    assert best is not None
    best["hand-over"] = max(0.0, best_loader[8] - _work(best))
    out = {stage: best[stage] / n for stage in STAGES if stage in best}
    extra = (best_loader[8], best_loader[0], max(0.0, best_loader[0] - _work(best)))
    return {**out, **{k: v / n for k, v in zip(PASSES, extra)}}


def _work(spent: dict[str, float]) -> float:
    """What a worker does of a pass: every stage but hand-over and normalise (the device's)."""
    return sum(v for k, v in spent.items() if k not in ("hand-over", "normalise"))


def report_profile(per_image: dict[str, float], decode_alone: Optional[float]) -> None:
    stages = {k: v for k, v in per_image.items() if k not in PASSES}
    total = sum(stages.values())
    print(f"{'stage':<12} {'µs/image':>9} {'share':>6}")
    for stage, s in stages.items():
        print(f"{stage:<12} {1e6 * s:>9.0f} {100 * s / total:>5.0f}%")
    print(f"{'total':<12} {1e6 * total:>9.0f}   → {1 / total:.0f} img/s on one core")
    if all(k in per_image for k in PASSES):
        pooled, unpooled, handover = (per_image[k] for k in PASSES)
        print(f"1-worker pass: {1 / pooled:.0f} img/s with the shared-storage pool, {1 / unpooled:.0f} without "
              f"(hand-over {1e6 * handover:.0f} µs/image without it)")  # fmt: skip
    if decode_alone:
        print(f"decode alone (torchvision decode_jpeg, full size): {1e6 / decode_alone:.0f} µs/image")
    print("decode: the crop's window alone (engine/data/_jpegcrop)" if jpegcrop.available()
          else f"decode: whole images (the window decoder is not built: {jpegcrop.BUILD_HINT})")  # fmt: skip
