"""The samples of a split: an ImageFolder tree or a ``train.txt`` / ``val.txt`` list, checked up front.

Paths are kept packed in one byte array with offsets, not as a list of Python strings: a list of a
million strings would be copied page by page into every forked worker as their refcounts change.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.config import ConfigError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass
class SampleList:
    """Image paths (relative to `root`) and their class labels, in a fixed order."""

    root: str
    blob: np.ndarray  # uint8: every relative path, utf-8, back to back
    offsets: np.ndarray  # int64, len + 1 entries
    labels: np.ndarray  # int64
    classes: list[str]  # class names (folder names), or label numbers as text for list files
    source: str  # the folder or list file the samples came from, for messages

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, i: int) -> str:
        rel = self.blob[self.offsets[i] : self.offsets[i + 1]].tobytes().decode("utf-8")
        return os.path.join(self.root, rel)

    @classmethod
    def pack(cls, root: str, pairs: list[tuple[str, int]], classes: list[str], source: str) -> SampleList:
        encoded = [p.encode("utf-8") for p, _ in pairs]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        labels = np.fromiter((label for _, label in pairs), dtype=np.int64, count=len(pairs))
        return cls(root, blob, offsets, labels, classes, source)


def load_split(data: str, split: str, num_classes: int) -> SampleList:
    """`split`'s samples under `data`: from `data/<split>.txt` when it exists, else the `data/<split>/` tree."""
    root = Path(data)
    listing = root / f"{split}.txt"
    if listing.is_file():
        return read_list(listing, root, split, num_classes)
    folder = root / split
    if not folder.is_dir():
        raise ConfigError(f"dataset {root} has no {split}/ folder and no {split}.txt list")
    return scan_folder(folder, class_names(root, split), num_classes)


def class_names(root: Path, split: str) -> list[str]:
    """Sorted class folders of train/ when it exists (val must agree with it), else of `split`/."""
    base = root / "train" if (root / "train").is_dir() else root / split
    return sorted(e.name for e in os.scandir(base) if e.is_dir())


def scan_folder(folder: Path, classes: list[str], num_classes: int) -> SampleList:
    """ImageFolder: every image under `folder/<class>/` (recursively), label = the class's sorted index."""
    if len(classes) > num_classes:
        raise ConfigError(
            f"{folder.parent} has {len(classes)} class folders but --num-classes is {num_classes}: "
            f"pass --num-classes {len(classes)}"
        )
    index = {name: i for i, name in enumerate(classes)}
    present = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    unknown = [c for c in present if c not in index]
    if unknown:
        raise ConfigError(f"{folder} has class folders that train/ lacks: {', '.join(unknown[:5])}")
    pairs = [(rel, index[c]) for c in present for rel in _images_under(folder, c)]
    if not pairs:
        raise ConfigError(
            f"{folder}: no images found (looked for {', '.join(IMG_EXTENSIONS)} in its class folders)"
        )
    return SampleList.pack(str(folder), pairs, classes, str(folder))


def _images_under(folder: Path, cls: str) -> Iterable[str]:
    """Relative paths of the images in one class folder, sorted (the same order on every rank)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder / cls, followlinks=True):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, folder)
        found.extend(
            os.path.join(rel_dir, f) for f in sorted(filenames) if f.lower().endswith(IMG_EXTENSIONS)
        )
    return found


def read_list(listing: Path, root: Path, split: str, num_classes: int) -> SampleList:
    """A list file: one ``relative/path label`` per line, paths relative to `root` or to `root/split`."""
    pairs = []
    with open(listing, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            pairs.append(_parse_line(line, listing, lineno, num_classes))
    if not pairs:
        raise ConfigError(f"{listing}: the list is empty")
    base = _list_base(listing, root, split, pairs[0][0])
    classes = [str(i) for i in range(int(max(label for _, label in pairs)) + 1)]
    return SampleList.pack(str(base), pairs, classes, str(listing))


def _parse_line(line: str, listing: Path, lineno: int, num_classes: int) -> tuple[str, int]:
    parts = line.strip().rsplit(None, 1)
    if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
        raise ConfigError(f"{listing}:{lineno}: expected 'relative/path label', got {line.strip()!r}")
    label = int(parts[1])
    if not 0 <= label < num_classes:
        raise ConfigError(
            f"{listing}:{lineno}: label {label} is outside 0..{num_classes - 1} (--num-classes {num_classes})"
        )
    return parts[0], label


def _list_base(listing: Path, root: Path, split: str, first: str) -> Path:
    """Which directory the list's paths are relative to, judged by its first entry."""
    for base in (root, root / split):
        if (base / first).exists():
            return base
    raise ConfigError(
        f"{listing}:1: {first} exists neither under {root} nor under {root / split}: "
        "list paths must be relative to the dataset root or to the split's folder"
    )
