"""The job manager's side of issue 27: the engine's best / input_bound records become the job's
time_to_best and note, `jobs show` prints time to accuracy, `jobs list --json` carries it."""

from __future__ import annotations

import json
import time

from engine.events import EventWriter
from engine.progress import input_bound_message
from rn50tui import cli
from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.report import ReportReader, commit
from rn50tui.time_to_accuracy import history_of, lines, time_to


def _write(path, bound_epochs=(1,), reason=None):
    """Three epochs; a new best at 1 and 3; input-bound in `bound_epochs`."""
    w = EventWriter(path)
    w.status("run_start", config={}, start_epoch=0, start_iter=0, epochs=3, train_iters=2, val_iters=1,
             world_size=1, device="cpu")  # fmt: skip
    history = []
    for e, top1, seconds in ((1, 52.0, 600.0), (2, 40.0, 1200.0), (3, 76.0, 13320.0)):
        w.status("epoch_start", epoch=e, train_iters=2, start_iter=0)
        w.metrics([e], {"train.loss": 1.0, "val.top1": top1, "run.train_seconds": seconds})
        if top1 > max((h["top1"] for h in history), default=0):
            history.append({"top1": top1, "epoch": e, "train_seconds": seconds})
            w.status("best", **history[-1], history=history)
        if e in bound_epochs:
            w.status("input_bound", epoch=e, ratio=0.38, workers=5, threshold=0.1,
                     message=input_bound_message(0.38, 5))  # fmt: skip
        elif e - 1 in bound_epochs:
            w.status("compute_bound", epoch=e, ratio=0.02, threshold=0.1)
    w.status("run_end", status="completed", epoch=3, **({"reason": reason} if reason else {}))
    w.close()


def _job(store: JobStore, tmp_path):
    return store.insert_job(
        name="t", kind="train", argv=[], device="cpu", cards_requested=1, workspace=str(tmp_path)
    )


def test_the_follower_stores_the_time_to_each_best_and_the_input_bound_note_comes_and_goes(store, tmp_path):
    job = _job(store, tmp_path)
    _write(job.files.raport, bound_epochs=(1,))
    lines_ = job.files.raport.read_text().splitlines(keepends=True)
    upto = next(i for i, line in enumerate(lines_) if '"input_bound"' in line) + 1
    partial = tmp_path / "partial.json"  # the file as the follower saw it while epoch 2 ran
    partial.write_text("".join(lines_[:upto]))
    assert ReportReader(job.id, 1, partial).poll().updates["note"] == input_bound_message(0.38, 5)
    commit(store, job.id, ReportReader(job.id, 1, job.files.raport).poll(), [], time.time())
    assert store.get_job(job.id).note is None  # cleared by the compute-bound epoch 2; no reason at the end
    history = history_of(store.get_job(job.id).to_dict()["time_to_best"])
    assert [(h["epoch"], h["top1"]) for h in history] == [(1, 52.0), (3, 76.0)]
    summary = store.job_summaries()[0]
    assert summary.time_to_best == history and summary.to_dict()["time_to_best"] == history


def test_an_input_bound_last_epoch_keeps_its_note_after_the_run(store, tmp_path):
    job = _job(store, tmp_path)
    _write(job.files.raport, bound_epochs=(3,))
    commit(store, job.id, ReportReader(job.id, 1, job.files.raport).poll(), [], time.time())
    assert store.get_job(job.id).note == input_bound_message(0.38, 5)


def test_time_to_accuracy_reads_as_round_thresholds_then_the_best():
    history = [
        {"top1": 52.0, "epoch": 1, "train_seconds": 600.0},
        {"top1": 76.0, "epoch": 3, "train_seconds": 13320.0},
    ]
    text = lines(history)
    assert text[0] == "time to 5%: 10m00s (epoch 1, 52.00% top-1)"
    assert "time to 75%: 3h42m (epoch 3, 76.00% top-1)" in text
    assert text[-1] == "best 76.00% top-1 after 3h42m (epoch 3)"
    assert len(text) == 16  # 5 … 75%, then the best
    assert time_to(history, 60.0)["epoch"] == 3 and time_to(history, 80.0) is None


def test_jobs_show_prints_time_to_accuracy_and_list_json_carries_it(store, db_path, tmp_path, capsys):
    job = _job(store, tmp_path)
    _write(job.files.raport, reason="reached 76.0% top-1 at epoch 3 after 3h42m of training")
    commit(store, job.id, ReportReader(job.id, 1, job.files.raport).poll(), [], time.time())
    assert cli.main(["jobs", "show", str(job.id), "--db", str(db_path)]) == 0
    out = capsys.readouterr().out
    assert "time to 75%: 3h42m (epoch 3, 76.00% top-1)" in out
    assert "reached 76.0% top-1 at epoch 3 after 3h42m of training" in out
    assert cli.main(["jobs", "show", str(job.id), "--db", str(db_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["time_to_best"][-1]["train_seconds"] == 13320.0
    assert cli.main(["jobs", "list", "--json", "--db", str(db_path)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["time_to_best"][0]["epoch"] == 1
