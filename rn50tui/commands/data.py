"""`rn50tui data prepare SRC DEST` and `rn50tui data check DIR`: ImageNet in, and a dataset's health.

The work is the engine's (`engine/data/prepare/`), imported inside the handlers: it loads numpy, PIL and
scipy (the engine's decoder checks every image, the devkit is a .mat file), and `rn50tui --help` must stay
fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `data` and its actions on the CLI's subparsers."""
    d = sub.add_parser("data", parents=[common], help="prepare ImageNet from its archives, or check a dataset",
                       description="Turn the ImageNet downloads (official archives or Kaggle's tree) into the "
                       "recipe's layout, or check a dataset before a run.")  # fmt: skip
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION", required=True, parser_class=type(d))
    p = dsub.add_parser("prepare", parents=[common], help="write train/, val/, the lists and a manifest",
                        description="Detect SRC's form (the three official archives, an extracted official "
                        "tree, or Kaggle's CLS-LOC tree) and write DEST: train/<wnid>/, val/<wnid>/, train.txt, "
                        "val.txt and manifest.json. Every image is checked with the engine's decoder. Run the "
                        "same command again after an interruption: finished classes are kept.")  # fmt: skip
    p.add_argument("src", metavar="SRC", type=Path, help="folder holding the archives or the extracted tree")
    p.add_argument("dest", metavar="DEST", type=Path, help="empty folder (or an unfinished prepare) to write")
    p.add_argument("-j", "--jobs", type=_positive, default=os.cpu_count() or 1, metavar="N",
                   help="worker processes (default: the cores)")  # fmt: skip
    p.add_argument("--resize", type=_positive, default=None, metavar="N",
                   help="shorter side at most N pixels (JPEG quality 90), for hosts whose CPUs cannot feed the cards")  # fmt: skip
    c = dsub.add_parser("check", parents=[common], help="would a run on DIR fail or learn wrong labels?",
                        description="Classes and counts per split, images that do not decode, list entries "
                        "naming missing files, labels out of range, val classes train lacks, lists that "
                        "disagree with the folders. Exit 1 when a run would fail or mislearn.")  # fmt: skip
    c.add_argument(
        "dir", metavar="DIR", type=Path, help="dataset root (train/, val/ and/or train.txt, val.txt)"
    )
    c.add_argument("-j", "--jobs", type=_positive, default=os.cpu_count() or 1, metavar="N",
                   help="decoding processes (default: the cores)")  # fmt: skip
    c.add_argument("--no-decode", action="store_true", help="skip decoding every image (fast)")


def run(args: argparse.Namespace) -> int:
    """Run `data prepare` or `data check`; the exit status."""
    from engine.data.prepare import PrepareError

    try:
        return _prepare(args) if args.data_command == "prepare" else _check(args)
    except PrepareError as e:
        print(f"rn50tui: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(
            "rn50tui: stopped; run the same command again to continue (finished classes are kept)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def _prepare(args: argparse.Namespace) -> int:
    from engine.data.prepare.run import prepare

    manifest = prepare(args.src, args.dest, args.jobs, args.resize, say=lambda s: print(s, flush=True),
                       bar=sys.stderr.isatty())  # fmt: skip
    counts = manifest["counts"]
    print(f"wrote {args.dest}: {len(manifest['classes'])} classes, {counts['train']:,} train and "
          f"{counts['val']:,} val images; train with: python -m engine.train {args.dest}")  # fmt: skip
    return 0


def _check(args: argparse.Namespace) -> int:
    from engine.data.prepare.check import check

    if not args.dir.is_dir():
        print(f"rn50tui: error: {args.dir} is not a folder: give the dataset root", file=sys.stderr)
        return EXIT_ERROR
    result = check(args.dir, args.jobs, decode=not args.no_decode)
    for split, f in result.splits.items():
        listed = f"{len(f.entries):,} in {split}.txt" if f.entries is not None else f"no {split}.txt"
        folders = sum(len(v) for v in f.images.values())
        print(f"{split}: {len(f.classes)} class folders, {folders:,} images in them, {listed}")
    for line in result.problems:
        print(f"problem: {line}")
    for line in result.warnings:
        print(f"warning: {line}")
    for rel in result.undecodable[:20]:
        print(f"undecodable: {rel}")
    print(result.verdict())
    return 0 if result.ok else EXIT_ERROR


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
