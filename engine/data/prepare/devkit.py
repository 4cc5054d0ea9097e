"""The ILSVRC2012 devkit: the 1,000 leaf synsets of ``data/meta.mat`` and the validation ground truth.

meta.mat lists 1,860 synsets (the 1,000 classes and their WordNet ancestors, ``num_children`` > 0);
the ground truth gives each val image an ILSVRC2012_ID, whose order is *not* the sorted-wnid order
the recipe's labels use. Reading meta.mat needs scipy, imported here only when it is read.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from engine.data.prepare.errors import PrepareError

META = "data/meta.mat"
GROUND_TRUTH = "data/ILSVRC2012_validation_ground_truth.txt"
SCIPY_HINT = "reading the devkit's meta.mat needs scipy: pip install 'rn50tui[prepare]'"


@dataclass(frozen=True)
class Devkit:
    """The leaf classes by ILSVRC2012_ID, and each val image's ID (image k is ILSVRC2012_val_000000k)."""

    names: dict[str, str]  # wnid -> the synset's words, e.g. "tench, Tinca tinca"
    wnid_of_id: dict[int, str]
    ground_truth: list[int]

    def val_wnids(self, source: Path) -> dict[str, str]:
        """Val file name -> wnid."""
        out = {}
        for k, ident in enumerate(self.ground_truth, 1):
            if ident not in self.wnid_of_id:
                raise PrepareError(f"{source}: ground truth line {k} names ILSVRC2012_ID {ident}, "
                                   "which meta.mat has no leaf class for: download the devkit again")  # fmt: skip
            out[f"ILSVRC2012_val_{k:08d}.JPEG"] = self.wnid_of_id[ident]
        return out


def read_devkit(path: Path) -> Devkit:
    """The devkit from its ``.tar.gz`` or from its extracted folder."""
    if path.is_dir():
        meta, truth = _find_in_dir(path, META), _find_in_dir(path, GROUND_TRUTH)
        return _parse(meta.read_bytes(), truth.read_text(), path)
    try:
        with tarfile.open(path, "r:*") as tar:
            files = {m.name: m for m in tar.getmembers() if m.isfile()}
            meta_b = _member(tar, files, META, path)
            truth_b = _member(tar, files, GROUND_TRUTH, path)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise PrepareError(f"{path} is not a readable tar.gz ({e}): download the devkit again") from e
    return _parse(meta_b, truth_b.decode("ascii", "replace"), path)


def _find_in_dir(root: Path, suffix: str) -> Path:
    hits = sorted(root.glob(f"**/{suffix}"))
    if not hits:
        raise PrepareError(f"{root} has no {suffix}: point at the extracted ILSVRC2012_devkit_t12")
    return hits[0]


def _member(tar: tarfile.TarFile, files: dict[str, tarfile.TarInfo], suffix: str, path: Path) -> bytes:
    for name, info in sorted(files.items()):
        if name == suffix or name.endswith("/" + suffix):
            f = tar.extractfile(info)
            assert f is not None  # a regular file always has contents
            return f.read()
    raise PrepareError(f"{path} has no {suffix}: is it ILSVRC2012_devkit_t12.tar.gz? download it again")


def _parse(meta_bytes: bytes, truth_text: str, source: Path) -> Devkit:
    try:
        from scipy.io import loadmat
    except ImportError as e:
        raise PrepareError(SCIPY_HINT) from e
    try:
        synsets = loadmat(io.BytesIO(meta_bytes), squeeze_me=True)["synsets"]
        rows = [
            (int(s["ILSVRC2012_ID"]), str(s["WNID"]), str(s["words"]), int(s["num_children"]))
            for s in synsets.ravel()
        ]
    except Exception as e:  # scipy raises several types for a damaged file
        raise PrepareError(
            f"{source}: {META} is unreadable ({type(e).__name__}: {e}): download the devkit again"
        ) from e
    leaves = [(i, w, words) for i, w, words, children in rows if children == 0]
    try:
        truth = [int(line) for line in truth_text.split()]
    except ValueError as e:
        raise PrepareError(
            f"{source}: {GROUND_TRUTH} is not one ID per line: download the devkit again"
        ) from e
    return Devkit({w: words for _, w, words in leaves}, {i: w for i, w, _ in leaves}, truth)


def devkit_path(src: Path) -> Union[Path, None]:
    """The devkit under `src`: the official tar.gz, or an extracted folder holding data/meta.mat."""
    archive = src / "ILSVRC2012_devkit_t12.tar.gz"
    if archive.exists():
        return archive
    hits = sorted(src.glob("*/" + META)) + sorted(src.glob(META))
    return hits[0].parent.parent if hits else None
