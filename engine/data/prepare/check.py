"""`check(DIR)`: would a run on this dataset fail, or silently learn the wrong labels?

Works on either layout the engine reads (class folders, ``train.txt`` / ``val.txt``, or both): classes
and counts per split, images that do not decode (the engine's own decoder), list entries naming missing
files, labels out of range, val classes train lacks, and lists that disagree with the folders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from engine.data.datasets import IMG_EXTENSIONS

DECODE_BATCH = 256
MAX_BAD_FRACTION = 0.01  # the engine's --max-bad-fraction default: past it a run fails


@dataclass
class SplitFacts:
    """One split as found: its class folders and their images, its list's entries."""

    classes: list[str] = field(default_factory=list)
    images: dict[str, list[str]] = field(default_factory=dict)  # class -> image paths relative to DIR
    entries: Optional[list[tuple[str, int]]] = None  # (path relative to DIR, label); None: no list


@dataclass
class CheckResult:
    """What `check` found: facts per split, the problems (a run fails or mislearns) and the warnings."""

    splits: dict[str, SplitFacts]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def verdict(self) -> str:
        counts = ", ".join(f"{self.count(s):,} {s}" for s in self.splits)
        if self.problems:
            return f"FAIL: {len(self.problems)} problem(s), first: {self.problems[0]}"
        extra = f"; {len(self.warnings)} warning(s)" if self.warnings else ""
        return f"OK: {len(self.splits['train'].classes or [])} classes, {counts} images{extra}"

    def count(self, split: str) -> int:
        f = self.splits[split]
        return len(f.entries) if f.entries is not None else sum(len(v) for v in f.images.values())


def check(root: Path, jobs: int = 1, decode: bool = True) -> CheckResult:
    """Check the dataset at `root` (see the module docstring)."""
    splits = {s: _facts(root, s) for s in ("train", "val")}
    result = CheckResult(splits)
    train_classes = splits["train"].classes
    for split, f in splits.items():
        if not f.classes and f.entries is None:
            result.problems.append(f"{root} has neither {split}/ nor {split}.txt")
    lacking = sorted(set(splits["val"].classes) - set(train_classes))
    if lacking:
        result.problems.append(f"val has {len(lacking)} class(es) train lacks: {', '.join(lacking[:3])}")
    num_classes = len(train_classes) or 1 + max((lbl for _, lbl in splits["train"].entries or []), default=0)
    for split, f in splits.items():
        if f.entries is not None:
            _check_list(root, split, f, train_classes, num_classes, result)
    if decode:
        _check_decode(root, splits, jobs, result)
    return result


def _facts(root: Path, split: str) -> SplitFacts:
    f = SplitFacts()
    folder = root / split
    if folder.is_dir():
        f.classes = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
        for c in f.classes:
            f.images[c] = sorted(
                f"{split}/{c}/{e.name}" for e in os.scandir(folder / c)
                if e.is_file() and e.name.lower().endswith(IMG_EXTENSIONS)
            )  # fmt: skip
    listing = root / f"{split}.txt"
    if listing.is_file():
        f.entries = []
        for line in listing.read_text(encoding="utf-8").splitlines():
            parts = line.strip().rsplit(None, 1)
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                rel = (
                    parts[0]
                    if parts[0].startswith(f"{split}/") or not folder.is_dir()
                    else f"{split}/{parts[0]}"
                )
                if not (root / rel).exists() and (root / parts[0]).exists():
                    rel = parts[0]
                f.entries.append((rel, int(parts[1])))
            elif line.strip():
                f.entries.append((line.strip(), -1))
    return f


def _check_list(root: Path, split: str, f: SplitFacts, train_classes: list[str], num_classes: int,
                result: CheckResult) -> None:  # fmt: skip
    assert f.entries is not None
    missing = [p for p, _ in f.entries if not (root / p).is_file()]
    if missing:
        result.problems.append(f"{split}.txt names {len(missing)} missing file(s), first {missing[0]}")
    bad = [(p, lbl) for p, lbl in f.entries if not 0 <= lbl < num_classes]
    if bad:
        result.problems.append(
            f"{split}.txt has {len(bad)} label(s) outside 0..{num_classes - 1}, first {bad[0][0]} {bad[0][1]}"
        )
    index = {c: i for i, c in enumerate(train_classes)}
    wrong = [(p, lbl) for p, lbl in f.entries if _folder_class(p) in index and index[_folder_class(p)] != lbl]
    if wrong:
        p, lbl = wrong[0]
        result.problems.append(f"{split}.txt disagrees with the folders on {len(wrong)} label(s): {p} is {lbl}, "
                               f"its folder's sorted index is {index[_folder_class(p)]}")  # fmt: skip
    if f.images:
        listed = {p for p, _ in f.entries}
        unlisted = [p for v in f.images.values() for p in v if p not in listed]
        if unlisted:
            result.warnings.append(f"{len(unlisted)} image(s) in {split}/ are not in {split}.txt (a run skips them), "
                                   f"first {unlisted[0]}")  # fmt: skip


def _folder_class(rel: str) -> str:
    parts = rel.split("/")
    return parts[-2] if len(parts) >= 2 else ""


def _check_decode(root: Path, splits: dict[str, SplitFacts], jobs: int, result: CheckResult) -> None:
    from engine.data.prepare.run import worker_pool

    paths: list[str] = []
    for f in splits.values():
        used = (
            [p for p, _ in f.entries] if f.entries is not None else [p for v in f.images.values() for p in v]
        )
        paths += [p for p in used if (root / p).is_file()]
    batches = [paths[i : i + DECODE_BATCH] for i in range(0, len(paths), DECODE_BATCH)]
    with worker_pool(jobs) as pool:
        for bad in pool.imap(_undecodable, [(str(root), b) for b in batches]):
            result.undecodable += bad
    if result.undecodable:
        share = len(result.undecodable) / max(1, len(paths))
        line = (
            f"{len(result.undecodable)} image(s) do not decode ({share:.2%}), first {result.undecodable[0]}"
        )
        (result.problems if share > MAX_BAD_FRACTION else result.warnings).append(line)


def _undecodable(task: tuple[str, list[str]]) -> list[str]:
    from engine.data.decode import BadImage, read_bytes, verify_rgb

    root, paths = task
    bad = []
    for rel in paths:
        try:
            verify_rgb(read_bytes(os.path.join(root, rel)), rel)
        except (BadImage, OSError, RuntimeError, ValueError):
            bad.append(rel)
    return bad
