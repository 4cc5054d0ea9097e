"""A miniature ImageNet in the forms people download, for tests and the prepare benchmark (no downloads).

Official: the outer train tar of per-class tars, the flat val tar, and the devkit with a real meta.mat
(ILSVRC2012_IDs out of wnid order, one non-leaf synset) and its ground truth. Kaggle: the CLS-LOC tree,
LOC_val_solution.csv and LOC_synset_mapping.txt. Both hold the same images, traps included: a CMYK JPEG
and a PNG named .JPEG in train, and an undecodable file in train and in val.
"""

from __future__ import annotations

import io
import os
import random
import tarfile
from pathlib import Path

import numpy as np

from engine.data.testing import render_image

WNIDS = [
    "n01440764",
    "n01443537",
    "n01484850",
    "n01491361",
    "n01494475",
    "n01496331",
    "n01498041",
    "n01514668",
]
NAMES = ["tench, Tinca tinca", "goldfish, Carassius auratus", "great white shark", "tiger shark",
         "hammerhead, hammerhead shark", "electric ray, crampfish", "stingray", "cock"]  # fmt: skip
NON_LEAF = ("n01440000", "fish")  # an ancestor synset, as meta.mat lists 860 of them


def images(
    classes: int, per_class: int, val_per_class: int, size: tuple[int, int], grain: float = 8.0
) -> dict:
    """{"train": {wnid: [(name, bytes)]}, "val": [(name, wnid, bytes)]}, with the traps."""
    wnids = _wnids(classes)
    train: dict[str, list[tuple[str, bytes]]] = {}
    for k, w in enumerate(wnids):
        train[w] = [
            (f"{w}_{i}.JPEG", _jpeg(render_image(k, i, *size, grain=grain))) for i in range(per_class)
        ]
    first = train[wnids[0]]
    first[0] = (first[0][0], _jpeg(render_image(0, 0, *size).convert("CMYK")))
    second = train[wnids[1 % classes]]
    second[0] = (second[0][0], _png(render_image(1, 0, *size)))
    last = train[wnids[-1]]
    last[-1] = (last[-1][0], os.urandom(300))
    rng = random.Random(7)
    val = []
    for n in range(1, classes * val_per_class + 1):
        k = rng.randrange(classes)
        val.append(
            (f"ILSVRC2012_val_{n:08d}.JPEG", wnids[k], _jpeg(render_image(k, 1000 + n, *size, grain=grain)))
        )
    val[-1] = (val[-1][0], val[-1][1], os.urandom(200))
    return {"train": train, "val": val}


def make_official(root: Path, data: dict) -> Path:
    """ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and ILSVRC2012_devkit_t12.tar.gz under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / "ILSVRC2012_img_train.tar", "w", format=tarfile.GNU_FORMAT) as outer:
        for w, files in data["train"].items():
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as t:
                for name, b in files:
                    _add(t, name, b)
            _add(outer, f"{w}.tar", inner.getvalue())
    with tarfile.open(root / "ILSVRC2012_img_val.tar", "w") as t:
        for name, _, b in data["val"]:
            _add(t, name, b)
    wnids = list(data["train"])
    ids = {w: i for i, w in enumerate(reversed(wnids), 1)}  # IDs out of sorted-wnid order, as the devkit's
    with tarfile.open(root / "ILSVRC2012_devkit_t12.tar.gz", "w:gz") as t:
        _add(t, "ILSVRC2012_devkit_t12/data/meta.mat", _meta_mat(ids))
        truth = "".join(f"{ids[w]}\n" for _, w, _ in data["val"])
        _add(t, "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt", truth.encode())
    return root


def make_kaggle(root: Path, data: dict) -> Path:
    """Kaggle's imagenet-object-localization-challenge folder under `root`."""
    cls_loc = root / "ILSVRC" / "Data" / "CLS-LOC"
    for w, files in data["train"].items():
        (cls_loc / "train" / w).mkdir(parents=True)
        for name, b in files:
            (cls_loc / "train" / w / name).write_bytes(b)
    (cls_loc / "val").mkdir(parents=True)
    rows = ["ImageId,PredictionString\n"]
    for name, w, b in data["val"]:
        (cls_loc / "val" / name).write_bytes(b)
        rows.append(f"{name[: -len('.JPEG')]},{w} 1 2 30 40 {w} 5 6 20 30 \n")
    (root / "LOC_val_solution.csv").write_text("".join(rows))
    names = dict(zip(WNIDS, NAMES))
    (root / "LOC_synset_mapping.txt").write_text(
        "".join(f"{w} {names.get(w, w)}\n" for w in sorted(data["train"]))
    )
    return root


def _wnids(classes: int) -> list[str]:
    return (WNIDS + [f"n0{2000000 + k:07d}" for k in range(max(0, classes - len(WNIDS)))])[:classes]


def _meta_mat(ids: dict[str, int]) -> bytes:
    from scipy.io import savemat

    names = dict(zip(WNIDS, NAMES))
    rows = [(i, w, names.get(w, w), 0) for w, i in ids.items()]
    rows.insert(len(rows) // 2, (len(ids) + 1, NON_LEAF[0], NON_LEAF[1], len(ids)))
    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")]
    synsets = np.empty((len(rows), 1), dtype=dtype)
    for k, (i, w, words, children) in enumerate(rows):
        synsets[k, 0] = (np.array([[i]], dtype=np.uint16), w, words, np.array([[children]], dtype=np.uint8))
    out = io.BytesIO()
    savemat(out, {"synsets": synsets})
    return out.getvalue()


def _jpeg(img: object) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)  # type: ignore[attr-defined]
    return out.getvalue()


def _png(img: object) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")  # type: ignore[attr-defined]
    return out.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 1_330_000_000, 0o644  # fixed: the same archive every time
    tar.addfile(info, io.BytesIO(data))
