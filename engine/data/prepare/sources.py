"""What SRC holds, and its images in order: the three official archives, an extracted official tree, or
Kaggle's CLS-LOC tree. Every form gives the same classes (wnid -> name), val labels and file names.

The archives are read once: a scan of their headers alone (a seek per member, no image data) checks that
the train tar holds one tar per class and gives each class's place (a :class:`Span`); then the worker that
writes a class reads its inner tar's bytes, and only those, straight from the archive (the parent process
reads no image data and pipes none to the workers). A val image is a Span of the val tar likewise.
"""

from __future__ import annotations

import csv
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from engine.data.prepare.devkit import Devkit, devkit_path, read_devkit
from engine.data.prepare.errors import PrepareError

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
DEVKIT = "ILSVRC2012_devkit_t12.tar.gz"
KAGGLE_DATA = Path("ILSVRC/Data/CLS-LOC")
KAGGLE_SOLUTION = "LOC_val_solution.csv"
KAGGLE_MAPPING = "LOC_synset_mapping.txt"


@dataclass(frozen=True)
class Span:
    """A member's bytes inside an archive, found by the header scan; read by the worker that needs them."""

    path: str  # the archive
    member: str  # the member's name in it (for the error a short read gives)
    offset: int  # where its data starts
    size: int

    def read(self) -> bytes:
        """The member's bytes, all of them: a short read (the archive ends inside it) is an error."""
        with open(self.path, "rb") as f:
            data = os.pread(f.fileno(), self.size, self.offset)
            while 0 < len(data) < self.size:  # a read stops at 2 GiB: go on
                more = os.pread(f.fileno(), self.size - len(data), self.offset + len(data))
                if not more:
                    break
                data += more
        if len(data) != self.size:
            raise PrepareError(f"{self.path} is truncated (it ends inside {self.member}): download it again")
        return data


Data = Union[bytes, str, Span]  # an image's (or inner tar's) bytes, the path of its file, or its Span


@dataclass
class Source:
    """One ImageNet source: its form, its classes, and where each split's images come from."""

    form: str  # "official archives" | "official tree" | "Kaggle tree"
    root: Path
    names: dict[str, str]  # wnid -> class name; sorted wnids give the labels
    val_wnid: dict[str, str]  # val file name -> wnid
    train_sizes: dict[str, int]  # wnid -> bytes of its images (its inner tar's size for the archives)
    val_size: int
    train_tar: Union[Path, None] = None
    val_tar: Union[Path, None] = None
    train_dir: Union[Path, None] = None
    val_dir: Union[Path, None] = None
    train_spans: dict[str, Span] = field(default_factory=dict)  # wnid -> its inner tar, in archive order
    val_spans: list[tuple[str, Span]] = field(default_factory=list)  # (file name, Span), in archive order

    def train_classes(self, skip: set[str]) -> Iterator[tuple[str, Data]]:
        """(wnid, inner tar Span or class folder path) per class not in `skip`, in the source's order."""
        if self.train_dir is not None:
            for wnid in sorted(self.train_sizes):
                if wnid not in skip:
                    yield wnid, str(self.train_dir / wnid)
            return
        for wnid, span in self.train_spans.items():
            if wnid not in skip:
                yield wnid, span

    def val_images(self) -> Iterator[tuple[str, Data]]:
        """(file name, Span or path) of every val image, in the source's order."""
        if self.val_dir is not None:
            for name in sorted(self.val_wnid):
                yield name, str(self.val_dir / name)
            return
        yield from self.val_spans


def detect(src: Path) -> Source:
    """The form of `src`, checked up front: every file it needs is there and agrees with the others."""
    if not src.is_dir():
        raise PrepareError(f"SRC {src} is not a folder: give the folder holding the ImageNet archives")
    official = [src / TRAIN_TAR, src / VAL_TAR, src / DEVKIT]
    if any(p.exists() for p in official):
        missing = [p for p in official if not p.is_file()]
        if missing:
            raise PrepareError(f"{missing[0]} is missing: put {TRAIN_TAR}, {VAL_TAR} and {DEVKIT} in {src}")
        return _official_archives(src)
    kaggle = src / KAGGLE_DATA
    if kaggle.is_dir() or (src / KAGGLE_SOLUTION).exists():
        return _kaggle(src)
    if (src / "train").is_dir() and (src / "val").is_dir():
        return _official_tree(src)
    raise PrepareError(f"{src} holds no ImageNet: expected {TRAIN_TAR}, {VAL_TAR} and {DEVKIT}; or Kaggle's "
                       f"{KAGGLE_DATA}/ with {KAGGLE_SOLUTION}; or train/<wnid>/, val/ and the devkit")  # fmt: skip


def _official_archives(src: Path) -> Source:
    kit = read_devkit(src / DEVKIT)
    train_spans = _inner_tars(src / TRAIN_TAR, kit)
    with _open_tar(src / VAL_TAR, "r:") as tar:  # headers only: the count the ground truth must match
        members = [m for m in _guard(tar, src / VAL_TAR) if m.isfile()]
    if len(members) != len(kit.ground_truth):
        raise PrepareError(f"{src / DEVKIT}: its ground truth has {len(kit.ground_truth)} labels but {src / VAL_TAR} "
                           f"holds {len(members)} images: download the archive that is short again")  # fmt: skip
    val_wnid = kit.val_wnids(src / DEVKIT)
    unknown = [m.name for m in members if os.path.basename(m.name) not in val_wnid]
    if unknown:
        raise PrepareError(f"{src / VAL_TAR}: {unknown[0]} has no ground-truth label: download it again")
    val_spans = [(os.path.basename(m.name), _span(src / VAL_TAR, m)) for m in members]
    _whole(src / VAL_TAR, val_spans)
    return Source("official archives", src, kit.names, val_wnid, {w: s.size for w, s in train_spans.items()},
                  sum(m.size for m in members), train_tar=src / TRAIN_TAR, val_tar=src / VAL_TAR,
                  train_spans=train_spans, val_spans=val_spans)  # fmt: skip


def _inner_tars(path: Path, kit: Devkit) -> dict[str, Span]:
    with _open_tar(path, "r:") as tar:  # a seek per member: the 1,000 headers, not the 138 GB
        spans = {}
        for m in _guard(tar, path):
            wnid = _class_of(m.name)
            if wnid is not None and m.isfile():
                spans[wnid] = _span(path, m)
    _same_classes(set(spans), kit.names, path, "per-class tars")
    _whole(path, list(spans.items()))
    return spans


def _span(path: Path, m: tarfile.TarInfo) -> Span:
    return Span(str(path), m.name, m.offset_data, m.size)


def _whole(path: Path, spans: list[tuple[str, Span]]) -> None:
    """The archive holds every byte its headers promise (a short file ends inside its last member)."""
    size = path.stat().st_size
    for _, s in spans:
        if s.offset + s.size > size:
            raise PrepareError(f"{path} is truncated (it ends inside {s.member}): download it again")


def _official_tree(src: Path) -> Source:
    kit_path = devkit_path(src)
    if kit_path is None:
        raise PrepareError(
            f"{src / DEVKIT} is missing: put the devkit (tar.gz or extracted) beside train/ and val/"
        )
    kit = read_devkit(kit_path)
    return _tree(
        src, "official tree", src / "train", src / "val", kit.names, kit.val_wnids(kit_path), kit_path
    )


def _kaggle(src: Path) -> Source:
    for name in (KAGGLE_SOLUTION, KAGGLE_MAPPING):
        if not (src / name).is_file():
            raise PrepareError(
                f"{src / name} is missing: SRC must be Kaggle's imagenet-object-localization folder"
            )
    names = {}
    for line in (src / KAGGLE_MAPPING).read_text().splitlines():
        if line.strip():
            wnid, _, words = line.strip().partition(" ")
            names[wnid] = words
    val_wnid = {}
    with open(src / KAGGLE_SOLUTION, newline="") as f:
        for row in csv.DictReader(f):  # ImageId, PredictionString: "wnid x0 y0 x1 y1 wnid …", one class
            val_wnid[row["ImageId"] + ".JPEG"] = row["PredictionString"].split()[0]
    data = src / KAGGLE_DATA
    return _tree(src, "Kaggle tree", data / "train", data / "val", names, val_wnid, src / KAGGLE_SOLUTION)


def _tree(src: Path, form: str, train: Path, val: Path, names: dict[str, str], val_wnid: dict[str, str],
          labels_from: Path) -> Source:  # fmt: skip
    if not train.is_dir() or not val.is_dir():
        raise PrepareError(f"{train if not train.is_dir() else val} is missing: SRC must hold both splits")
    sizes = {e.name: _folder_size(Path(e.path)) for e in os.scandir(train) if e.is_dir()}
    _same_classes(set(sizes), names, train, "class folders")
    present = {e.name: e.stat().st_size for e in os.scandir(val) if e.is_file()}
    if len(present) != len(val_wnid):
        raise PrepareError(f"{labels_from}: it labels {len(val_wnid)} val images but {val} holds {len(present)}: "
                           "download the one that is short again")  # fmt: skip
    missing = sorted(set(val_wnid) - set(present))
    if missing:
        raise PrepareError(f"{val / missing[0]} is missing ({labels_from} labels it): download val again")
    bad = sorted(w for w in set(val_wnid.values()) if w not in names)
    if bad:
        raise PrepareError(f"{labels_from}: val label {bad[0]} is not one of the classes")
    return Source(form, src, names, val_wnid, sizes, sum(present.values()), train_dir=train, val_dir=val)


def _same_classes(found: set[str], names: dict[str, str], where: Path, what: str) -> None:
    lacking, extra = sorted(set(names) - found), sorted(found - set(names))
    if lacking or extra:
        detail = f"lacks {lacking[0]}" if lacking else f"has {extra[0]}, which is no class"
        raise PrepareError(f"{where} holds {len(found)} {what} for {len(names)} classes ({detail}): "
                           "download it again (a short file is truncated)")  # fmt: skip


def _folder_size(folder: Path) -> int:
    return sum(e.stat().st_size for e in os.scandir(folder) if e.is_file())


def _class_of(name: str) -> Union[str, None]:
    base = os.path.basename(name)
    return base[: -len(".tar")] if base.endswith(".tar") else None


def _open_tar(path: Path, mode: str) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode)
    except (tarfile.TarError, EOFError) as e:
        raise PrepareError(f"{path} is not a tar archive ({e}): download it again") from e


def _guard(tar: tarfile.TarFile, path: Path) -> Iterator[tarfile.TarInfo]:
    """The members, with a truncated or damaged archive turned into one PrepareError."""
    try:
        yield from tar
    except (tarfile.TarError, EOFError) as e:
        raise PrepareError(f"{path} is damaged or truncated ({e}): download it again") from e
