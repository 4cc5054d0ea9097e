"""The CLI and the app render one view of a job (rn50tui/jobs/view.py): the same ETA, the same durations
over every attempt, for a running job and for a stalled one."""

from __future__ import annotations

import json
import os
import time

import pytest

from rn50tui.app import fmt
from rn50tui.app.screens.detail import summary_text
from rn50tui.app.widgets.jobs_table import job_cells
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.local import procs
from tests.conftest import run_main as run

NOW = float(int(time.time()))


@pytest.fixture
def store(db, monkeypatch):  # noqa: F811 (the imported fixture, requested by name)
    monkeypatch.setattr(time, "time", lambda: NOW)  # the CLI reads the clock; the app is given it
    s = JobStore(db)
    yield s
    s.close()


def second_attempt_running(store: JobStore, kind: str = "train", **values) -> int:
    """A job whose first attempt ran 100 s and was interrupted, its second running for 62 s."""
    job = store.insert_job(name="two-tries", kind=kind, argv=["-b", "16"], device="cpu", cards_requested=1,
                           workspace=str(store.path.parent / "runs" / "{id}"))  # fmt: skip
    store.transition(job.id, Status.STARTING, started_at=NOW - 300)
    store.transition(job.id, Status.RUNNING)
    store.transition(job.id, Status.INTERRUPTED, finished_at=NOW - 200)
    store.new_attempt(job.id, expect=[Status.INTERRUPTED])
    store.transition(job.id, Status.STARTING, started_at=NOW - 62)
    me = os.getpid()
    store.transition(job.id, Status.RUNNING, supervisor_pid=me, supervisor_started=procs.start_time(me),
                     heartbeat=NOW, epoch=2, epochs=3, iteration=5, iters_per_epoch=10,
                     eta_end=NOW + 125, last_progress_at=NOW - 1, **values)  # fmt: skip
    return job.id


def _cli(capsys, job_id: int) -> tuple[dict, dict]:
    shown = json.loads(run(capsys, "jobs", "show", str(job_id), "--json")[1])
    lines = {ln.split()[0]: ln.split(None, 1)[1] for ln in run(capsys, "jobs", "show", str(job_id))[1].splitlines()
             if ln.strip() and not ln.startswith(" ")}  # fmt: skip
    return shown, lines


def test_cli_and_app_show_the_same_eta_and_durations_over_every_attempt(capsys, store):
    job_id = second_attempt_running(store)
    job = store.get_job(job_id)
    shown, lines = _cli(capsys, job_id)
    assert (
        shown["ran_s"] == fmt.run_time(job, NOW) == 162.0
        and shown["eta_s"] == fmt.eta_seconds(job, NOW) == 125
    )
    assert lines["ran"] == fmt.ran(job, NOW) == "2m42s (2 attempts)"
    assert (
        lines["eta"].startswith(fmt.duration(fmt.eta_seconds(job, NOW)) + " left") and "2m05s" in lines["eta"]
    )
    cells = job_cells(job, NOW, marked=False)
    assert (cells["duration"].plain, cells["eta"].plain) == ("2m42s (2 attempts)", "2m05s")
    header = summary_text(job, NOW)
    assert "ran 2m42s (2 attempts)" in header and "ETA 2m05s" in header
    assert shown["first_started_at"] == NOW - 300  # started: the first attempt's start
    assert cells["started"].sort_key == (False, NOW - 300)


def test_a_stalled_job_has_no_eta_in_the_cli_nor_in_the_app(capsys, store):
    job_id = second_attempt_running(store)
    store.update_job(job_id, stalled_at=NOW - 10, last_progress_at=NOW - 130)
    job = store.get_job(job_id)
    shown, lines = _cli(capsys, job_id)
    assert shown["eta_s"] is None and fmt.eta_seconds(job, NOW) is None
    assert lines["eta"] == "none while it makes no progress" and "ETA —" in summary_text(job, NOW)
    assert job_cells(job, NOW, marked=False)["eta"].plain == "—"
    assert lines["ran"] == fmt.ran(job, NOW) == "2m42s (2 attempts)"
    assert "stalled" in summary_text(job, NOW) and "no training progress for 2m10s" in lines["stalled"]
    listed = run(capsys, "jobs", "list")[1].splitlines()[1]
    assert "running (stalled 2m)" in listed


def test_an_inference_job_shows_no_epoch_of_a_schedule(capsys, store):
    job_id = second_attempt_running(store, kind="infer")
    job = store.get_job(job_id)
    assert fmt.epoch(job) == "—" and "epoch" not in summary_text(job, NOW).splitlines()[1]
    row = run(capsys, "jobs", "list")[1].splitlines()[1].split()
    assert row[5] == "-"  # EPOCH


def test_a_finished_jobs_rate_is_its_last_epochs_not_its_last_window(tmp_path):
    from rn50tui.jobs.report import ReportReader

    raport = tmp_path / "raport.json"
    records = [
        {
            "type": "LOG",
            "timestamp": 1.0,
            "step": [1, 8],
            "data": {"train.loss": 2.0, "train.total_ips": 50.0},
        },
        {"type": "LOG", "timestamp": 2.0, "step": [1], "data": {"train.loss": 2.1, "train.total_ips": 80.0}},
    ]
    raport.write_text("".join(f"DLLL {json.dumps(r)}\n" for r in records))
    batch = ReportReader(1, 1, raport).poll()
    assert batch.updates["ips"] == 80.0


def test_cli_and_app_name_the_same_loss(capsys, store):
    from rn50tui.app.jobdata import JobHistory

    job_id = second_attempt_running(store)
    store.update_job(job_id, loss=2.0)

    def add(phase: str, epoch: int, iteration: int | None, loss: float) -> None:
        with store.transaction():
            store.add_metrics([(job_id, 2, NOW, epoch, iteration, phase, json.dumps({"train.loss": loss}))])

    def both() -> tuple[str, str]:
        history = JobHistory(job_id)
        history.add_points(store.chart_points(job_id), 10)
        return _cli(capsys, job_id)[0]["loss_is"], history.loss_kind

    add("train", 1, 10, 2.1)
    add("epoch", 1, None, 2.0)
    assert both() == ("mean training loss of epoch 1", "epoch 1 mean")
    add("train", 2, 1, 1.9)
    cli_words, app_words = both()
    assert cli_words.startswith("smoothed training loss") and app_words == "smoothed"
