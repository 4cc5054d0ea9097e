"""Write a generated JPEG dataset (ImageFolder train/ and val/, plus train.txt/val.txt) for demos and benchmarks.

    python benchmarks/make_jpeg_set.py OUT [--per-class 50] [--classes 10] [--size 500x375] [--quality 90]

The images are learnable (one colour layout per class) and cost about what photos of that size cost to
decode; `python -m engine.train OUT --num-classes 10 …` trains on them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without an install
from engine.data.testing import make_image_folder  # noqa: E402


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="dataset root to create")
    p.add_argument("--per-class", type=int, default=50, help="training images per class (val gets a fifth)")
    p.add_argument("--classes", type=int, default=10, help="number of classes")
    p.add_argument("--size", default="500x375", metavar="WxH", help="image size")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality")
    p.add_argument("--seed", type=int, default=0, help="which images (the same seed writes the same files)")
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    splits = {"train": args.per_class, "val": max(1, args.per_class // 5)}
    make_image_folder(
        args.out, splits, args.classes, size, "JPEG", args.quality, args.seed, list_files=True, grain=16.0
    )
    print(f"wrote {sum(splits.values()) * args.classes} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
