"""`rn50tui export JOB --format tensorboard`: event files from the store, read back with TensorBoard's own
reader and equal to the stored metrics; the run is named after the job."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rn50tui.jobs.core.store import JobStore
from tests.conftest import engine_env

IPE = 3  # iterations per epoch


def fill(store: JobStore) -> tuple[int, float]:
    """A finished job of 2 epochs with -p 1 training windows, validation windows and epoch records."""
    job = store.insert_job(name="tb demo/1", kind="train", argv=[], device="cpu", cards_requested=1,
                           workspace=str(store.path.parent / "runs" / "{id}"), status="completed",
                           iters_per_epoch=IPE, epochs=2)  # fmt: skip
    t0, rows = 1_700_000_000.0, []
    for epoch in (1, 2):
        for it in range(1, IPE + 1):
            data = {"train.loss": 3.0 - epoch - it / 10, "train.lr": 0.1 * it, "train.total_ips": 40.0 + it,
                    "train.data_time": 0.01 * it, "train.compute_time": 0.09, "train.compute_ips": 50.0}  # fmt: skip
            rows.append((job.id, 1, t0 + len(rows), epoch, it, "train", json.dumps(data)))
        rows.append(
            (job.id, 1, t0 + len(rows), epoch, 1, "val", json.dumps({"val.loss": 1.0, "val.top1": 5.0}))
        )
        data = {"train.loss": 2.5 - epoch, "train.total_ips": 41.0, "train.data_time": 0.02,
                "train.compute_time": 0.06, "val.loss": 1.5, "val.top1": 20.0 * epoch, "val.top5": 60.0 + epoch,
                "epoch.time": 7.5 + epoch}  # fmt: skip
        rows.append((job.id, 1, t0 + len(rows), epoch, None, "epoch", json.dumps(data)))
    rows.append((job.id, 1, t0 + len(rows), None, None, "summary", json.dumps({"val.top1": 40.0})))
    with store.transaction():
        store.add_metrics(rows)
    return job.id, t0


def read_run(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def export(db, out) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rn50tui", "--db", str(db), "export", "1", "--format",
                           "tensorboard", "--out", str(out)], capture_output=True, text=True, env=engine_env(),
                          timeout=120)  # fmt: skip


def test_export_writes_the_stored_metrics_as_a_run_named_after_the_job(tmp_path, store):
    pytest.importorskip("tensorboard", reason="reading event files needs the tensorboard package")
    job_id, t0 = fill(store)
    out = export(store.path, tmp_path / "runs")
    assert out.returncode == 0, out.stderr
    logdir = tmp_path / "runs" / "1-tb_demo_1"
    assert out.stdout.strip() == str(logdir)
    read = read_run(logdir)
    train = [r for r in store.metrics(job_id, phase="train")]
    epochs = [r for r in store.metrics(job_id, phase="epoch")]
    steps = [(r.epoch - 1) * IPE + r.iteration for r in train]
    assert [(s, w) for s, _, w in read["train/loss"]] == list(zip(steps, [r.time for r in train]))
    assert [v for _, v, _ in read["train/loss"]] == pytest.approx([r.values["train.loss"] for r in train])
    assert [v for _, v, _ in read["train/lr"]] == pytest.approx([r.values["train.lr"] for r in train])
    assert [v for _, v, _ in read["train/images_per_second"]] == pytest.approx([41.0, 42.0, 43.0] * 2)
    wait = [r.values["train.data_time"] / (r.values["train.data_time"] + 0.09) for r in train]
    assert [v for _, v, _ in read["train/data_wait_ratio"]] == pytest.approx(wait)
    for tag, name in (("epoch/val_top1", "val.top1"), ("epoch/val_top5", "val.top5"),
                      ("epoch/val_loss", "val.loss"), ("epoch/train_loss", "train.loss"),
                      ("epoch/time_seconds", "epoch.time")):  # fmt: skip
        assert [(s, v) for s, v, _ in read[tag]] == [(r.epoch, pytest.approx(r.values[name])) for r in epochs]
    assert [v for _, v, _ in read["epoch/data_wait_ratio"]] == pytest.approx([0.25, 0.25])
    assert not any(tag.startswith("val") for tag in read)  # validation windows stay in the store
    assert read["epoch/val_top1"][0][2] == pytest.approx(t0 + 3)  # each point at its record's wall time


def test_exporting_twice_replaces_the_first_export(tmp_path, store):
    pytest.importorskip("tensorboard", reason="reading event files needs the tensorboard package")
    fill(store)
    for _ in range(2):  # each export's file has its own name (time, host, pid)
        assert export(store.path, tmp_path / "runs").returncode == 0
    logdir = tmp_path / "runs" / "1-tb_demo_1"
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 1
    assert len(read_run(logdir)["train/loss"]) == 2 * IPE
