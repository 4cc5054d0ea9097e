"""raport.json on a full disk: a clear error, and no record lost to a torn line when writing resumes."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from engine.events import EXIT_ERROR, EventWriter, ReportWriteError, iter_records
from tests.conftest import engine_env


def test_a_torn_last_line_of_an_earlier_attempt_does_not_swallow_the_next_record(tmp_path):
    path = tmp_path / "raport.json"
    first = EventWriter(path)
    first.status("epoch_start", epoch=1, train_iters=3, start_iter=0)
    first.close()
    with open(path, "ab") as fh:
        fh.write(b'DLLL {"timestamp": 1, "ty')  # the attempt's last write, cut short
    second = EventWriter(path)
    second.status("epoch_start", epoch=2, train_iters=3, start_iter=0)
    second.close()
    assert [r.data["epoch"] for r in iter_records(path)] == [1, 2]


def test_a_write_the_disk_refuses_is_a_clear_error_and_the_next_one_starts_a_line(small_disk):
    disk = small_disk(1)
    path = disk / "raport.json"
    writer = EventWriter(path)
    writer.status("epoch_start", epoch=1, train_iters=3, start_iter=0)
    filler = disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1k"], capture_output=True, timeout=60)
    with pytest.raises(ReportWriteError, match=rf"could not write the run report {path}: No space left"):
        writer.status("error", message="x" * 20_000)  # more than any free page: the write is cut short
    filler.unlink()
    writer.status("epoch_start", epoch=2, train_iters=3, start_iter=0)
    writer.close()
    assert [r.data["epoch"] for r in iter_records(path) if r.event == "epoch_start"] == [1, 2]


def test_the_engine_whose_report_cannot_grow_exits_1_with_the_file_named_and_no_traceback(tmp_path):
    ws = tmp_path / "ws"
    args = ["--data-backend", "synthetic", "--device", "cpu", "--image-size", "32", "-b", "4", "--num-classes",
            "4", "--epochs", "1", "--synthetic-size", "40", "-p", "1", "-j", "0", "--workspace", str(ws),
            "--raport-file", "raport.json"]  # fmt: skip

    def small_files() -> (
        None
    ):  # files may not grow past 6 kB (the fifth iteration): the report stops growing mid-run
        resource.setrlimit(resource.RLIMIT_FSIZE, (6_000, resource.RLIM_INFINITY))

    proc = subprocess.run([sys.executable, "-m", "engine.train", *args], env=engine_env(), capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, preexec_fn=small_files)  # fmt: skip
    assert proc.returncode == EXIT_ERROR, proc.stderr[-2000:]
    assert f"error: could not write the run report {ws / 'raport.json'}: File too large" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert any(
        r.phase == "train" for r in iter_records(ws / "raport.json")
    )  # what was written stays readable


def test_positions_count_epochs_from_one_and_convert_back_to_what_the_checkpoint_stores():
    from engine.events import readable_position, stored_position

    cases = {(0, 4): (1, 4), (1, 0): (1, 0), (2, 3): (3, 3), (0, 0): (0, 0)}  # stored → readable
    for stored, readable in cases.items():
        assert readable_position(*stored) == readable and stored_position(*readable) == stored
