"""NVIDIA DALI on its own: the ceiling `--data-backend dali-cpu` is measured against.

A plain CPU pipeline (no card: ``device_id=None``) over the same files: DALI's file reader (shuffled)
→ ``decoders.image_random_crop`` (RandomResizedCrop's ranges, decoding the window alone) → resize →
``crop_mirror_normalize`` with a random flip, uint8 HWC out, copied to a numpy array as the engine's
backend copies its batches. No engine plan, no Python per sample: what DALI itself does on these cores.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from engine.data.datasets import SampleList


def dali_alone(samples: SampleList, size: int, batch: int, threads: int, repeat: int) -> float:
    """Best-of-`repeat` images/s of whole passes over `samples` (after one warm-up pass)."""
    from nvidia.dali import fn, pipeline_def, types

    files = [samples.path(i) for i in range(len(samples))]

    @pipeline_def
    def plain() -> object:
        jpegs, _ = fn.readers.file(files=files, random_shuffle=True, name="reader")
        images = fn.decoders.image_random_crop(
            jpegs,
            device="cpu",
            output_type=types.RGB,
            random_area=(0.08, 1.0),
            random_aspect_ratio=(0.75, 4 / 3),
        )
        images = fn.resize(images, resize_x=size, resize_y=size, antialias=True)
        flip = fn.random.coin_flip()
        return fn.crop_mirror_normalize(images, mirror=flip, dtype=types.UINT8, output_layout="HWC")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pipe = plain(batch_size=batch, num_threads=threads, device_id=None, seed=0)
        pipe.build()
    steps = max(1, len(files) // batch)

    def one_pass() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            (out,) = pipe.run()
            np.array(out.as_tensor())
        return steps * batch / (time.perf_counter() - start)

    one_pass()  # warm-up: buffers, page cache
    return max(one_pass() for _ in range(max(1, repeat)))
