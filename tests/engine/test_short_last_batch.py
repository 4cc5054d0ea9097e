"""A training set whose size mod (batch × cards) is 1 trains: the recipe drops the short last batch (a
one-image batch cannot be batch-normalised on a 1×1 feature map), and the bad-image verdict still holds."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from engine.data.testing import make_image_folder
from engine.events import iter_records
from tests.conftest import run_engine

pytestmark = pytest.mark.slow

FLAGS = ["--device", "cpu", "--image-size", "32", "-j", "0", "--seed", "1", "--num-classes", "2",
         "--epochs", "1", "-b", "8", "-p", "1"]  # fmt: skip


def _seventeen(root: Path) -> Path:
    data = make_image_folder(root, {"train": 8, "val": 2}, num_classes=2, size=(40, 40))
    shutil.copy(data / "train" / "class_0" / "0_0.JPEG", data / "train" / "class_0" / "extra.JPEG")
    return data


def _run(tmp_path: Path, data: Path, *flags: str):
    ws = tmp_path / "ws"
    out = run_engine(
        [str(data), *FLAGS, *flags, "--workspace", str(ws), "--raport-file", "raport.json"], cwd=tmp_path
    )
    return out, list(iter_records(ws / "raport.json"))


def test_seventeen_images_at_batch_eight_train_two_full_batches(tmp_path):
    out, records = _run(tmp_path, _seventeen(tmp_path / "data"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Expected more than 1 value per channel" not in out.stderr
    train = [r for r in records if r.phase == "train"]
    assert [r.step[-1] for r in train] == [1, 2]  # the 17th image's batch is not played
    assert [r.data["status"] for r in records if r.event == "run_end"] == ["completed"]


def test_an_unreadable_dataset_of_seventeen_still_fails_with_the_verdict(tmp_path):
    data = tmp_path / "garbage"
    for i in range(17):
        folder = data / "train" / f"class_{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.JPEG").write_bytes(os.urandom(300 + i))
    make_image_folder(data, {"val": 2}, num_classes=2, size=(40, 40))
    out, records = _run(tmp_path, data)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "could not be read" in out.stderr.strip().splitlines()[-1]
    assert [r.data["status"] for r in records if r.event == "run_end"] == ["failed"]


def test_fewer_images_than_one_batch_is_a_one_line_error(tmp_path):
    data = make_image_folder(tmp_path / "data", {"train": 3, "val": 2}, num_classes=2, size=(40, 40))
    out, _ = _run(tmp_path, data)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "fewer than one batch (-b 8)" in out.stderr.strip().splitlines()[-1]
