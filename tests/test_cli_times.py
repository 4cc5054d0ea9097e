"""Honest times in the CLI: `jobs show` in local date-times, the list's IN-STATUS column, `jobs rm --purge`."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from rn50tui.jobs.core.store import JobStore
from rn50tui.timefmt import duration, local_time
from tests.conftest import run_main as run
from tests.jobs.conftest import occupy


@pytest.fixture
def store(db):  # noqa: F811 (the imported fixture, requested by name)
    """The CLI's store (test_cli's `db`: one CPU slot, the working directory a temp dir)."""
    s = JobStore(db)
    yield s
    s.close()


def finished_job(store: JobStore, name: str = "done", files: bool = True):
    ws = store.path.parent / "runs" / name
    job = store.insert_job(
        name=name, kind="train", argv=[], device="cpu", cards_requested=1, workspace=str(ws)
    )
    now = time.time()
    store.update_job(
        job.id, status="completed", queued_at=now - 3700, started_at=now - 3600, finished_at=now - 60
    )
    if files:
        (ws / "checkpoints").mkdir(parents=True)
        (ws / "stdout.log").write_text("log\n")
        (ws / "checkpoints" / "last.pt").write_bytes(b"\0" * 3 * 1024 * 1024)
    return store.get_job(job.id), ws


def test_durations_and_local_times():
    # the view's one format, the app's too
    assert [duration(s) for s in (5, 65, 3725, 90000)] == ["5s", "1m05s", "1h02m", "1d01h"]
    ts = time.time() - 125
    assert local_time(ts).startswith(datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S"))
    assert local_time(ts).endswith("(2m05s ago)")


def test_show_prints_local_times_and_durations_json_keeps_epoch_seconds(capsys, store):
    job, _ = finished_job(store)
    code, out, _ = run(capsys, "jobs", "show", str(job.id))
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    started = datetime.fromtimestamp(job.started_at).strftime("%Y-%m-%d %H:%M:%S")
    assert code == 0 and started in lines["started_at"] and "(1h00m ago)" in lines["started_at"]
    assert lines["ran"].split()[1:] == ["59m00s"] and lines["waited"].split()[1:] == ["1m40s"]
    shown = json.loads(run(capsys, "jobs", "show", str(job.id), "--json")[1])
    assert shown["started_at"] == job.started_at and "ran" not in shown


def test_list_in_status_measures_time_in_the_status_not_since_the_last_heartbeat(capsys, store):
    holder = occupy(store)
    store.update_job(holder.id, started_at=time.time() - 150, heartbeat=time.time())  # updated_at: now
    _, out, _ = run(capsys, "jobs", "list")
    header, row = out.splitlines()[0].split(), out.splitlines()[1].split()
    assert header[-2:] == ["IN-STATUS", "WHERE"] and row[-2:] == ["2m", "local"]


def test_rm_purge_deletes_the_workspace_after_naming_its_size(capsys, store, monkeypatch):
    job, ws = finished_job(store)
    code, _, err = run(capsys, "jobs", "rm", "--purge", str(job.id))  # no terminal, no --yes
    assert code == 1 and "3.0 MiB" in err and "--yes" in err and ws.exists() and store.find_job(job.id)

    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: (prompts.append(prompt), "n")[1])
    prompts: list[str] = []
    assert run(capsys, "jobs", "rm", "--purge", str(job.id))[0] == 1
    assert str(ws) in prompts[0] and "3.0 MiB" in prompts[0] and ws.exists() and store.find_job(job.id)

    code, out, _ = run(capsys, "jobs", "rm", "--purge", "--yes", str(job.id))
    assert code == 0 and "3.0 MiB" in out and not ws.exists() and store.find_job(job.id) is None


def test_rm_purge_refuses_an_active_job_and_a_workspace_that_is_not_a_jobs(capsys, store, tmp_path):
    holder = occupy(store)
    (tmp_path / "runs" / str(holder.id)).mkdir(parents=True)
    (tmp_path / "runs" / str(holder.id) / "stdout.log").write_text("x")
    code, _, err = run(capsys, "jobs", "rm", "--purge", "--yes", str(holder.id))
    assert code == 1 and "cancel it first" in err and (tmp_path / "runs" / str(holder.id)).exists()

    job, ws = finished_job(store, "home", files=False)
    store.update_job(job.id, workspace=str(tmp_path))  # the directory holding the store itself
    code, _, err = run(capsys, "jobs", "rm", "--purge", "--yes", str(job.id))
    assert (
        code == 1 and "delete by hand" in err and (tmp_path / "jobs.db").exists() and store.find_job(job.id)
    )


def test_submit_stores_the_hook_and_stall_policy_and_list_marks_a_stalled_job(capsys, store):
    holder = occupy(store)  # the one CPU slot: the submitted job stays queued
    code, out, _ = run(capsys, "submit", "--preset", "demo", "--notify-cmd", "echo 'two words'", "--on-stall",
                       "cancel", "--json")  # fmt: skip
    job = json.loads(out)
    assert code == 0 and job["notify_cmd"] == ["echo", "two words"] and job["on_stall"] == "cancel"
    code, _, err = run(capsys, "submit", "--preset", "demo", "--notify-cmd", "'unclosed")
    assert code == 1 and "--notify-cmd" in err

    now = time.time()
    store.update_job(holder.id, stalled_at=now - 5, last_progress_at=now - 130, heartbeat=now)
    _, out, _ = run(capsys, "jobs", "list")
    assert "running (stalled 2m)" in out.splitlines()[1]
    shown = json.loads(run(capsys, "jobs", "show", str(holder.id), "--json")[1])
    assert shown["stalled"]["kind"] == "stalled" and shown["stalled"]["for_s"] >= 130
    shown = {
        ln.split()[0]: ln for ln in run(capsys, "jobs", "show", str(holder.id))[1].splitlines() if ln.strip()
    }
    assert "no training progress for 2m1" in shown["stalled"]
    listed = json.loads(run(capsys, "jobs", "list", "--json")[1])
    assert listed[0]["stalled"]["kind"] == "stalled" and listed[1]["stalled"] is None


def test_jobs_list_says_why_a_queued_job_waits_for_the_cpu_slot(capsys, store):
    holder = occupy(store)  # the one CPU slot
    code, out, _ = run(capsys, "submit", "--preset", "demo", "--json")
    queued = json.loads(out)
    assert code == 0 and queued["status"] == "queued"
    _, out, _ = run(capsys, "jobs", "list")
    assert f"job {queued['id']} waits for 1 free cpu slot(s) of 1: held by job {holder.id}" in out
    assert f"{'cpu×1':<6}" in out  # as the app writes a job not granted yet
