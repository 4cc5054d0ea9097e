"""Datasets of unreadable images end in a one-line error that says how many and where, never in a
`completed` run or a traceback: every unreadable image counts, in training and in validation."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from engine.data.testing import make_image_folder
from engine.events import iter_records
from tests.conftest import run_engine

pytestmark = pytest.mark.slow

FLAGS = [
    "--device",
    "cpu",
    "--image-size",
    "32",
    "-j",
    "0",
    "--seed",
    "1",
    "--num-classes",
    "2",
    "--epochs",
    "1",
]


def _garbage(root: Path, split: str, count: int) -> None:
    """`count` files that look like images by name and are random bytes, in two class folders."""
    for i in range(count):
        folder = root / split / f"class_{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.JPEG").write_bytes(os.urandom(200 + i))


def _run(tmp_path: Path, data: Path, *flags: str):
    ws = tmp_path / "ws"
    out = run_engine(
        [str(data), *FLAGS, *flags, "--workspace", str(ws), "--raport-file", "raport.json"], cwd=tmp_path
    )
    return out, list(iter_records(ws / "raport.json"))


def _one_line_error(out) -> str:
    """The engine's own last stderr line; no traceback before it."""
    assert out.returncode == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "ZeroDivisionError" not in out.stderr, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), out.stderr[-2000:]
    return last


@pytest.mark.parametrize(
    ("train", "val", "batch"), [(40, 10, 4), (160, 80, 8)], ids=["50 files -b 4", "240 files -b 8"]
)
def test_an_all_garbage_dataset_fails_with_how_many_images_and_where(tmp_path, train, val, batch):
    data = tmp_path / "garbage"
    _garbage(data, "train", train)
    _garbage(data, "val", val)
    out, records = _run(tmp_path, data, "-b", str(batch))
    line = _one_line_error(out)
    assert "could not be read" in line, line
    where = re.search(r"\(train: (\d+) of (\d+) in (\S+)\)", line)
    assert where and where.group(1) == where.group(2) and int(where.group(1)) > 0, line  # all of them bad
    assert where.group(3) == str(data / "train"), line
    ends = [r.data["status"] for r in records if r.event == "run_end"]
    assert ends == ["failed"]  # never `completed`
    assert not (tmp_path / "ws" / "checkpoint.pth.tar").exists()


def test_readable_training_images_and_an_unreadable_validation_set(tmp_path):
    data = make_image_folder(tmp_path / "data", {"train": 8}, num_classes=2, size=(40, 40))
    _garbage(data, "val", 24)
    out, records = _run(tmp_path, data, "-b", "4", "-p", "1", "--max-bad-fraction", "0.5")
    line = _one_line_error(out)
    assert "not one val image was readable" in line and f"val: 24 of 24 in {data / 'val'}" in line, line
    assert "train: 0 of 16" in line
    assert [r.data["status"] for r in records if r.event == "run_end"] == ["failed"]


def test_a_few_unreadable_validation_images_are_counted_against_the_limit(tmp_path):
    data = make_image_folder(tmp_path / "data", {"train": 8, "val": 4}, num_classes=2, size=(40, 40))
    _garbage(data, "val", 2)  # 2 of 26 images: 7.7 %
    out, _ = _run(tmp_path, data, "-b", "4", "--max-bad-fraction", "0.05")
    line = _one_line_error(out)
    assert "2 of 26 images could not be read" in line and "val: 2 of 10" in line, line
    (tmp_path / "lenient").mkdir()
    ok, records = _run(tmp_path / "lenient", data, "-b", "4", "--max-bad-fraction", "0.1")
    assert ok.returncode == 0, ok.stderr[-2000:]
    summary = [r.data for r in records if r.phase == "summary"][0]
    assert summary["data.skipped_images"] == 2
