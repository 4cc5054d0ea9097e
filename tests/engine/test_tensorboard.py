"""TensorBoard event files of a run: written as it trains, read back with TensorBoard's own reader and equal
to raport.json; a stop on SIGTERM leaves them complete; a missing package or a failing write never stops
training."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from engine.events import EXIT_STOPPED, Record, iter_records
from engine.tensorboard import TENSORBOARD_DIR, TensorBoardSink, data_wait_ratio, global_step, scalars
from tests.conftest import run_engine

NEEDS_TB = "reading the files back needs the tensorboard package (rn50tui[tensorboard])"

TINY = ["--data-backend", "synthetic", "--device", "cpu", "--image-size", "32", "-b", "4", "--synthetic-size",
        "16", "--num-classes", "4", "-p", "1", "-j", "0", "--seed", "1", "--warmup", "0",
        "--raport-file", "raport.json"]  # fmt: skip


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar under `logdir` as TensorBoard itself reads it: tag → [(step, value)] in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def expected_from_raport(raport: Path) -> dict[str, list[tuple[int, float]]]:
    """The scalars raport.json's records call for, independently of the sink's bookkeeping."""
    records = list(iter_records(raport))
    iters = next(r.data["train_iters"] for r in records if r.event == "run_start")
    out: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        for tag, value, x in scalars(r.phase, r.step, r.data or {}, iters):
            out.setdefault(tag, []).append((x, value))
    return out


def assert_same(read: dict, expected: dict) -> None:
    assert sorted(read) == sorted(expected)
    for tag, points in expected.items():
        assert [s for s, _ in read[tag]] == [s for s, _ in points], tag
        assert [v for _, v in read[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag  # float32


def test_a_window_and_an_epoch_record_become_these_scalars():
    window = {"train.loss": 2.0, "train.lr": 0.1, "train.total_ips": 50.0, "train.data_time": 0.1,
              "train.compute_time": 0.3, "train.compute_ips": 60.0}  # fmt: skip
    assert list(scalars("train", [2, 3], window, 10)) == [
        ("train/loss", 2.0, 13), ("train/lr", 0.1, 13), ("train/images_per_second", 50.0, 13),
        ("train/data_wait_ratio", pytest.approx(0.25), 13)]  # fmt: skip
    epoch = {"train.loss": 1.5, "val.loss": 1.2, "val.top1": 40.0, "val.top5": 90.0, "val_ema.top1": 41.0,
             "epoch.time": 12.5}  # fmt: skip
    tags = {tag: (value, x) for tag, value, x in scalars("epoch", [2], epoch, 10)}
    assert tags == {"epoch/train_loss": (1.5, 2), "epoch/val_loss": (1.2, 2), "epoch/val_top1": (40.0, 2),
                    "epoch/val_top5": (90.0, 2), "epoch/val_ema_top1": (41.0, 2), "epoch/time_seconds": (12.5, 2)}  # fmt: skip
    assert list(scalars("val", [1, 4, 2], {"val.loss": 1.0}, 10)) == []  # validation windows: raport only
    assert data_wait_ratio({"train.loss": 1.0}) is None and global_step(3, 5, None) == 5


@pytest.mark.slow
def test_a_run_writes_event_files_equal_to_its_raport(tmp_path):
    pytest.importorskip("tensorboard", reason=NEEDS_TB)
    ws = tmp_path / "ws"
    out = run_engine([*TINY, "--epochs", "2", "--workspace", str(ws)], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    read = read_scalars(ws / TENSORBOARD_DIR)
    assert_same(read, expected_from_raport(ws / "raport.json"))
    assert [s for s, _ in read["epoch/val_top1"]] == [1, 2]
    assert [s for s, _ in read["train/loss"]] == [1, 2, 3, 4, 5, 6, 7, 8]  # 4 iterations per epoch, -p 1
    assert all(0 <= v <= 1 for _, v in read["epoch/data_wait_ratio"])
    assert "TensorBoard" not in out.stderr  # no note: the package is here


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_leaves_complete_event_files(tmp_path):
    pytest.importorskip("tensorboard", reason=NEEDS_TB)
    ws = tmp_path / "ws"
    out = run_engine(
        [*TINY, "--epochs", "3", "--workspace", str(ws)], cwd=tmp_path, RN50TUI_STOP_AFTER_ITERS="6"
    )
    assert out.returncode == EXIT_STOPPED, out.stderr[-3000:]
    read = read_scalars(ws / TENSORBOARD_DIR)
    assert_same(read, expected_from_raport(ws / "raport.json"))
    assert read["train/loss"][-1][0] == 6 and [s for s, _ in read["epoch/train_loss"]] == [1]


def test_without_the_tensorboard_package_one_line_says_how_to_get_the_files(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # an import of it raises ImportError
    err = io.StringIO()
    assert TensorBoardSink.open(tmp_path, err=err) is None
    assert err.getvalue().count("\n") == 1 and "pip install 'rn50tui[tensorboard]'" in err.getvalue()


class BrokenWriter:
    def __init__(self) -> None:
        self.calls = 0

    def add_scalar(self, *args: object, **kwargs: object) -> None:
        self.calls += 1
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        raise AssertionError("a failed sink is not closed again")


def test_a_failing_write_warns_once_and_training_goes_on(tmp_path):
    err, writer = io.StringIO(), BrokenWriter()
    sink = TensorBoardSink(tmp_path, writer, err)
    rec = Record("LOG", 1.0, [1, 1], {"train.loss": 2.0})
    for _ in range(3):
        sink.record(rec)  # never raises
    sink.close()
    assert writer.calls == 1 and err.getvalue().count("\n") == 1 and "No space left" in err.getvalue()
