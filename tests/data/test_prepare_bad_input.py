"""Bad input to `rn50tui data prepare`: one line naming the file and the fix, exit 1, and nothing in DEST
that looks complete (no lists, no manifest)."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from engine.data.prepare import devkit
from engine.data.prepare.errors import PrepareError
from tests.data.conftest import cli

TRAIN, VAL, KIT = "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz"


def refused(src: Path, dest: Path, *names: str, done_before: bool = False) -> str:
    """Run prepare, expect a one-line refusal that names each of `names`; DEST holds nothing complete."""
    code, _, err = cli("data", "prepare", str(src), str(dest), "-j", "1")
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rn50tui: error: "), err
    assert all(n in lines[0] for n in names), lines[0]
    if not done_before:
        assert not any((dest / f).exists() for f in ("manifest.json", "train.txt", "val.txt"))
    return lines[0]


@pytest.fixture
def src(tmp_path, official) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(official, copy)
    return copy


def test_a_missing_archive_is_named(src, tmp_path):
    (src / VAL).unlink()
    refused(src, tmp_path / "dest", str(src / VAL), "put")


def test_a_non_tar_archive_is_named(src, tmp_path):
    (src / VAL).write_bytes(os.urandom(5000))
    refused(src, tmp_path / "dest", str(src / VAL), "download it again")


@pytest.mark.parametrize("where", ["between classes", "inside the last class"])
def test_a_truncated_train_archive_is_refused_before_anything_is_written(src, tmp_path, where):
    with tarfile.open(src / TRAIN) as t:
        members = t.getmembers()
    cut = members[1].offset if where == "between classes" else members[-1].offset_data + 100
    with open(src / TRAIN, "r+b") as f:
        f.truncate(cut)
    refused(src, tmp_path / "dest", str(src / TRAIN), "download it again")
    assert not (tmp_path / "dest").exists()  # the header scan saw it: no class was written


def test_ground_truth_that_does_not_match_the_val_archive(src, tmp_path):
    with tarfile.open(src / KIT) as t:
        files = {m.name: t.extractfile(m).read() for m in t if m.isfile()}
    truth = next(n for n in files if n.endswith("ground_truth.txt"))
    files[truth] += b"1\n"
    with tarfile.open(src / KIT, "w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    refused(src, tmp_path / "dest", str(src / KIT), "9 labels", "8 images")


def test_dest_inside_src(official):
    refused(official, official / "prepared", "inside SRC", "outside")


def test_dest_holding_other_files_or_another_dataset(tmp_path, official, kaggle):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    refused(official, other, "not empty", "notes.txt", "empty folder")
    done = tmp_path / "done"
    assert cli("data", "prepare", str(kaggle), str(done), "-j", "1")[0] == 0
    refused(official, done, "holds", str(kaggle), done_before=True)


def test_an_unwritable_dest(tmp_path, official):
    (tmp_path / "file").write_text("x")
    refused(official, tmp_path / "file" / "dest", "cannot write DEST", "choose a folder")


def test_a_full_dest_says_what_it_needs(official, small_disk):
    disk = small_disk(1)
    free = shutil.disk_usage(disk).free
    (disk / "filler").write_bytes(b"\0" * (free - 16 * 4096))
    refused(official, disk / "dest", "MiB free but this needs about", "free space")


def test_without_scipy_the_error_names_the_pip_command(monkeypatch, official):
    monkeypatch.setitem(__import__("sys").modules, "scipy.io", None)  # import scipy.io → ImportError
    with pytest.raises(PrepareError, match=r"pip install 'rn50tui\[prepare\]'"):
        devkit.read_devkit(official / KIT)


def test_an_archive_cut_after_the_header_scan_never_yields_a_short_class(src):
    from engine.data.prepare.sources import detect
    from engine.data.prepare.write import class_items

    source = detect(src)  # the scan passes; then the file shrinks (a copy still being written)
    with tarfile.open(src / TRAIN) as t:
        last = t.getmembers()[-1]
    with open(src / TRAIN, "r+b") as f:
        f.truncate(last.offset_data + 100)
    with pytest.raises(PrepareError, match=f"ends inside {last.name}"):  # where the worker reads the class
        [class_items(data, wnid) for wnid, data in source.train_classes(set())]
