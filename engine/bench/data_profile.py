"""``python -m engine.bench data --profile``: the own pipeline's time per image, stage by stage.

Stages as :class:`ImageBatches` runs them, timed on one thread in this process: read (the file's bytes),
decode (header, crop plan, the crop's window by libjpeg-turbo's partial decode, or the whole image by
libjpeg-turbo or reduced-size PIL), crop-resize, flip, [AutoAugment],
collate (stacking the batch), normalise (uint8 → float on the CPU, what the device does per batch), and
hand-over: what a 1-worker DataLoader pass costs per image beyond the stages (pickling, shared memory,
the queue between the worker and the training loop).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Optional

import torchvision.transforms.v2.functional as F
from torch.utils.data import default_collate

from engine.data import BatchPlan, ImageBatches, Loader, jpegcrop, normalize
from engine.data.datasets import SampleList
from engine.data.decode import _decode_other, decode_planned, jpeg_size, read_bytes
from engine.data.transforms import TrainTransform, _rescale, sample_rng

STAGES = ("read", "decode", "crop-resize", "flip", "autoaugment", "collate", "hand-over", "normalise")


def profile(
    samples: SampleList, size: int, batch: int, augmentation: Optional[str] = None
) -> dict[str, float]:
    """Seconds per image of each stage over one pass of `samples` (training transform)."""
    transform = TrainTransform(size, augmentation=augmentation)
    spent: dict[str, float] = defaultdict(float)
    n = len(samples)
    for start in range(0, n, batch):
        images = []
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
            top, left, h, w = _rescale(plan, img.shape[-2:], full_hw)
            out = F.resized_crop(img, top, left, h, w, [size, size], interpolation=transform.interpolation,
                                 antialias=True)  # fmt: skip
            t3 = time.perf_counter()
            out = F.horizontal_flip(out) if plan.flip else out
            t4 = time.perf_counter()
            if transform.autoaugment is not None:
                out = transform.autoaugment(out, plan.aa_seed)
            t5 = time.perf_counter()
            images.append(out)
            for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                if stage != "autoaugment" or transform.autoaugment is not None:  # no row for a stage not run
                    spent[stage] += dt
        t0 = time.perf_counter()
        stacked = default_collate(images)
        t1 = time.perf_counter()
        normalize(stacked)
        spent["collate"] += t1 - t0
        spent["normalise"] += time.perf_counter() - t1
    in_process = sum(spent.values()) - spent["normalise"]
    loader = Loader(
        ImageBatches(samples, transform, size, 0), BatchPlan(n, batch, 0, 1, False, 0), 1, 2, False
    )
    for _ in loader:  # warm-up: the worker's start is not hand-over
        pass
    t0 = time.perf_counter()
    for _ in loader:
        pass
    spent["hand-over"] = max(0.0, time.perf_counter() - t0 - in_process)
    return {stage: spent[stage] / n for stage in STAGES if stage in spent}


def report_profile(per_image: dict[str, float], decode_alone: Optional[float]) -> None:
    total = sum(per_image.values())
    print(f"{'stage':<12} {'µs/image':>9} {'share':>6}")
    for stage, s in per_image.items():
        print(f"{stage:<12} {1e6 * s:>9.0f} {100 * s / total:>5.0f}%")
    print(f"{'total':<12} {1e6 * total:>9.0f}   → {1 / total:.0f} img/s on one core")
    if decode_alone:
        print(f"decode alone (torchvision decode_jpeg, full size): {1e6 / decode_alone:.0f} µs/image")
    print("decode: the crop's window alone (engine/data/_jpegcrop)" if jpegcrop.available()
          else f"decode: whole images (the window decoder is not built: {jpegcrop.BUILD_HINT})")  # fmt: skip
