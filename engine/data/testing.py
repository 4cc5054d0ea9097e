"""Small generated image sets, for tests, demos and the data benchmark (no downloads).

Each class has its own smooth colour layout, each image its own variation and fine grain, so a model
can learn the classes and a JPEG of it costs about what a photo of that size does to decode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from engine.data.transforms import mix_seed


def render_image(
    label: int, index: int, width: int, height: int, seed: int = 0, grain: float = 8.0
) -> Image.Image:
    """An RGB image of class `label`: the class's 4×4 colour layout, per-image shading, and grain."""
    layout = np.random.default_rng(mix_seed(seed, label)).integers(30, 226, (4, 4, 3)).astype(np.uint8)
    rng = np.random.default_rng(mix_seed(seed, label, index))
    shade = rng.integers(-25, 26, (8, 8, 3))
    img = np.asarray(Image.fromarray(layout).resize((width, height), Image.BICUBIC), dtype=np.float32)
    img += (
        np.asarray(Image.fromarray((shade + 128).astype(np.uint8)).resize((width, height), Image.BILINEAR))
        - 128.0
    )
    img += rng.normal(0.0, grain, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_image_folder(
    root: Path,
    splits: dict[str, int],
    num_classes: int = 4,
    size: tuple[int, int] = (64, 48),
    fmt: str = "JPEG",
    quality: int = 90,
    seed: int = 0,
    list_files: bool = False,
    grain: float = 8.0,
) -> Path:
    """Write ``root/<split>/class_<k>/<k>_<i>.<ext>`` with `splits[split]` images per class.

    With `list_files`, also write ``root/<split>.txt`` (``<split>/class_k/file label`` lines).
    Returns `root`.
    """
    ext = {"JPEG": "JPEG", "PNG": "png"}.get(fmt, fmt.lower())
    for split, per_class in splits.items():
        lines = []
        for k in range(num_classes):
            folder = root / split / f"class_{k}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                name = f"{k}_{i}.{ext}"
                # the split in the seed: val images differ from train images of the same class
                img = render_image(k, i + (1 << 20) * (split != "train"), size[0], size[1], seed, grain)
                img.save(folder / name, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
                lines.append(f"{split}/class_{k}/{name} {k}\n")
        if list_files:
            (root / f"{split}.txt").write_text("".join(lines))
    return root


def make_jpeg_set(
    root: Path,
    count: int,
    size: tuple[int, int] = (500, 375),
    quality: int = 90,
    num_classes: int = 10,
    splits: tuple[str, ...] = ("train",),
    seed: Optional[int] = None,
) -> Path:
    """At least `count` JPEGs of `size` per split (whole classes: up to num_classes − 1 more), ImageFolder
    form (the data benchmark's set).

    The grain makes a 500×375 file about 85 kB at quality 90, near an ImageNet photo of that size.
    """
    per_class = max(1, -(-count // num_classes))  # rounded up: 64 over 10 classes was 60 images
    return make_image_folder(
        root, dict.fromkeys(splits, per_class), num_classes, size, "JPEG", quality, seed or 0, grain=16.0
    )
