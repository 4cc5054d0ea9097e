"""`rn50tui data check`: a prepared dataset passes; each way a run would fail or mislearn exits 1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.data.conftest import cli


@pytest.fixture(scope="module")
def good(tmp_path_factory, kaggle) -> Path:
    dest = tmp_path_factory.mktemp("check") / "good"
    assert cli("data", "prepare", str(kaggle), str(dest), "-j", "1")[0] == 0
    return dest


def test_a_prepared_dataset_passes(good):
    code, out, _ = cli("data", "check", str(good), "-j", "1")
    assert code == 0, out
    assert "train: 4 class folders, 19 images in them, 19 in train.txt" in out
    assert out.strip().splitlines()[-1] == "OK: 4 classes, 19 train, 7 val images"


def _swap_label(d: Path) -> None:
    lines = (d / "train.txt").read_text().splitlines()
    path, _ = lines[0].rsplit(" ", 1)
    (d / "train.txt").write_text("\n".join([f"{path} 1", *lines[1:]]) + "\n")


def _out_of_range(d: Path) -> None:
    with open(d / "val.txt", "a") as f:
        f.write(f"{(d / 'val.txt').read_text().split()[0]} 7\n")


def _missing(d: Path) -> None:
    next((d / "val").glob("*/*.JPEG")).unlink()


def _val_class_train_lacks(d: Path) -> None:
    shutil.copytree(next((d / "val").iterdir()), d / "val" / "n09999999")


def _many_undecodable(d: Path) -> None:
    for p in list((d / "train").glob("*/*.JPEG"))[:3]:
        p.write_bytes(b"not a jpeg")


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (_swap_label, "disagrees with the folders"),
        (_out_of_range, "label(s) outside 0..3"),
        (_missing, "missing file(s)"),
        (_val_class_train_lacks, "class(es) train lacks: n09999999"),
        (_many_undecodable, "do not decode"),
    ],
    ids=[
        "label not the folder's",
        "label out of range",
        "missing file",
        "val class train lacks",
        "undecodable",
    ],
)
def test_a_damaged_dataset_fails_with_a_one_line_verdict(tmp_path, good, damage, says):
    d = tmp_path / "d"
    shutil.copytree(good, d)
    damage(d)
    code, out, _ = cli("data", "check", str(d), "-j", "1")
    assert code == 1, out
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("FAIL: ") and says in out, out
