from __future__ import annotations

import time

from engine.events import EventWriter
from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.report import ReportReader, commit


def _write_attempt(path, epochs=2, iters=3, stop_at=None):
    w = EventWriter(path)
    w.parameters({"lr": 0.1})
    w.status("run_start", config={}, start_epoch=0, start_iter=0, epochs=epochs, train_iters=iters, val_iters=1,
             world_size=1, device="cpu")  # fmt: skip
    for e in range(1, epochs + 1):
        w.status("epoch_start", epoch=e, train_iters=iters, start_iter=0)
        for it in range(1, iters + 1):
            w.metrics([e, it], {"train.loss": 3.0 - it / 10, "train.total_ips": 10.0 * it, "train.lr": 0.1})
            if (e, it) == stop_at:
                w.status("checkpoint", path="c.pth.tar", epoch=e - 1, iteration=it, is_best=False)
                w.status("stopping", signal="SIGTERM", epoch=e - 1, iteration=it)
                w.status("run_end", status="stopped", epoch=e - 1, iteration=it)
                w.close()
                return
        w.metrics([e, iters, 1], {"val.loss": 1.0, "val.top1": 10.0})
        w.metrics([e], {"train.loss": 2.5, "val.top1": 20.0 * e, "val.top5": 50.0 + e, "val.loss": 1.5})
        w.status("checkpoint", path="c.pth.tar", epoch=e, iteration=0, is_best=True)
    w.metrics([], {"val.top1": 40.0})
    w.status("run_end", status="completed", epoch=epochs)
    w.close()


def _job(store: JobStore, tmp_path):
    return store.insert_job(
        name="f", kind="train", argv=[], device="cpu", cards_requested=1, workspace=str(tmp_path)
    )


def test_records_become_metric_rows_progress_and_latest_values(store, tmp_path):
    job = _job(store, tmp_path)
    _write_attempt(job.files.raport)
    f = ReportReader(job.id, 1, job.files.raport)
    commit(store, job.id, f.poll(), [], time.time())
    j = store.get_job(job.id)
    assert (j.epoch, j.epochs, j.iteration, j.iters_per_epoch, j.val_iters) == (2, 2, 3, 3, 1)
    # a finished job shows its last epoch's mean training loss (2.5), not its last window's (2.7)
    assert (j.loss, j.ips, j.top1, j.top5, j.best_top1) == (2.5, 30.0, 40.0, 52.0, 40.0)
    assert j.last_checkpoint == "c.pth.tar" and j.checkpoint_epoch == 2 and j.progress == 1.0
    assert j.raport_offset == job.files.raport.stat().st_size and j.heartbeat
    phases = [r.phase for r in store.metrics(job.id)]
    assert phases.count("train") == 6 and phases.count("val") == 2 and phases.count("epoch") == 2
    assert phases[-1] == "summary" and f.state.run_end == "completed"


def test_a_torn_last_line_waits_for_the_next_poll(store, tmp_path):
    job = _job(store, tmp_path)
    _write_attempt(job.files.raport, epochs=1)
    data = job.files.raport.read_bytes()
    job.files.raport.write_bytes(data[:-20])
    f = ReportReader(job.id, 1, job.files.raport)
    first = f.poll()
    job.files.raport.write_bytes(data)
    second = f.poll()
    assert len(first.rows) + len(second.rows) == 6 and second.offset == len(data)


def test_the_late_tail_of_a_previous_attempt_stays_with_that_attempt(store, tmp_path):
    job = _job(store, tmp_path)
    _write_attempt(job.files.raport, stop_at=(1, 2))
    second_start = time.time() + 0.01
    time.sleep(0.02)
    _write_attempt(job.files.raport, epochs=1)
    f = ReportReader(job.id, 2, job.files.raport, attempt_started=second_start)
    commit(store, job.id, f.poll(), [], time.time())
    assert store.metric_count(job.id, attempt=1) == 2
    assert store.metric_count(job.id, attempt=2) == 6
    assert f.state.run_end == "completed" and f.state.stopping_signal is None


def test_a_failed_commit_rewinds_so_no_record_is_lost(store, tmp_path):
    job = _job(store, tmp_path)
    _write_attempt(job.files.raport, epochs=1)
    f = ReportReader(job.id, 1, job.files.raport)
    lost = f.poll()
    f.rewind(lost)  # as the supervisor does when the store stayed busy
    again = f.poll()
    assert again.rows == lost.rows and again.offset == lost.offset


def _windows(path, losses, iters=None):
    """One running epoch whose windows (one iteration each) have these losses."""
    w = EventWriter(path)
    iters = iters or len(losses)
    w.status("run_start", config={}, start_epoch=0, start_iter=0, epochs=1, train_iters=iters, val_iters=1,
             world_size=1, device="cpu")  # fmt: skip
    for it, loss in enumerate(losses, 1):
        w.metrics([1, it], {"train.loss": loss})
    w.close()


def test_a_running_job_shows_a_smoothed_loss_that_one_spiking_window_barely_moves(store, tmp_path):
    job = _job(store, tmp_path)
    _windows(job.files.raport, [1.0] * 19 + [80.0], iters=40)
    commit(store, job.id, ReportReader(job.id, 1, job.files.raport).poll(), [], time.time())
    raw = [r.values["train.loss"] for r in store.metrics(job.id, phase="train")]
    shown = store.get_job(job.id).loss
    assert raw[-1] == 80.0 and 1.0 < shown < 1.0 + 80.0 * 0.2  # a quarter-epoch average: ~8.5
    assert shown == ReportReader(job.id, 1, job.files.raport).poll().updates["loss"]  # deterministic


def test_a_rewound_batch_smooths_its_windows_once(store, tmp_path):
    job = _job(store, tmp_path)
    _windows(job.files.raport, [2.0, 1.0, 4.0, 3.0])
    f = ReportReader(job.id, 1, job.files.raport)
    first = f.poll()
    f.rewind(first)
    assert f.poll().updates["loss"] == first.updates["loss"]


def test_a_restarted_supervisor_goes_on_from_the_stored_loss(store, tmp_path):
    job = _job(store, tmp_path)
    _windows(job.files.raport, [3.0] * 10)
    resumed = ReportReader(job.id, 1, job.files.raport, loss=1.0, iters_per_epoch=10).poll().updates["loss"]
    fresh = ReportReader(job.id, 1, job.files.raport).poll().updates["loss"]
    assert fresh == 3.0 and 1.0 < resumed < 3.0


def test_an_engine_warning_shows_with_the_running_job_and_ends_with_the_run(store, tmp_path):
    job = _job(store, tmp_path)
    w = EventWriter(job.files.raport)
    w.status("run_start", config={}, start_epoch=0, start_iter=0, epochs=1, train_iters=3, val_iters=1,
             world_size=1, device="cpu")  # fmt: skip
    w.status("warning", message="/ws has 60 MiB free, but this run's checkpoints need about 539 MiB")
    w.metrics([1, 1], {"train.loss": 3.0})
    w.close()
    f = ReportReader(job.id, 1, job.files.raport)
    commit(store, job.id, f.poll(), [], time.time())
    warning = "warning: /ws has 60 MiB free, but this run's checkpoints need about 539 MiB"
    assert store.get_job(job.id).note == warning
    w = EventWriter(job.files.raport)
    w.status("run_end", status="completed", epoch=1)
    w.close()
    commit(store, job.id, f.poll(), [], time.time())
    assert store.get_job(job.id).note is None  # the run ended well: the warning no longer applies
