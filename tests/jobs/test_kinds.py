"""Jobs that are not training runs (rn50tui/jobs/kinds.py): a prepare and an export, each under a real
detached supervisor with a real SQLite store, through the job manager and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.data.prepare import miniature
from engine.data.prepare.run import SLOW_ENV
from rn50tui.jobs.core.errors import SubmitError
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.local import procs
from rn50tui.jobs.submission import Request
from rn50tui.jobs.view import view
from tests.jobs.conftest import TWO_TINY_EPOCHS, cli_env, run_cli, wait_for


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory) -> Path:
    """A miniature ImageNet as the official archives (4 classes)."""
    data = miniature.images(classes=4, per_class=5, val_per_class=2, size=(48, 40))
    return miniature.make_official(tmp_path_factory.mktemp("imagenet"), data)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def prepare_request(src: Path, dest: Path) -> Request:
    return Request(kind="prepare", kind_options={"source": str(src), "target": str(dest), "jobs": 2})


def straight_run(src: Path, dest: Path) -> None:
    subprocess.run([sys.executable, "-m", "engine.data.prepare", str(src), str(dest), "-j", "2"], check=True,
                   env=cli_env(), capture_output=True, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_a_prepare_job_shows_its_progress_then_completes(jm, imagenet, tmp_path, monkeypatch):
    monkeypatch.setenv(SLOW_ENV, "1.5")  # each class takes a while: a job to watch
    dest = tmp_path / "imagenet"
    job = jm.submit(prepare_request(imagenet, dest))
    assert job.kind == "prepare" and job.device == "cpu"

    def running_with_progress():
        j = jm.get_job(job.id)
        v = view(j, __import__("time").time())
        return j.status is Status.RUNNING and j.iters_per_epoch and v.work and "images" in v.work and (j, v)

    running, seen = wait_for(running_with_progress, 120, message="a running prepare with progress")
    assert " MB" in seen.work and seen.epoch.endswith(" MB")  # images, MB (and the ETA once it has a rate)
    listed = run_cli("jobs", "list", db=jm.db_path)
    assert listed.returncode == 0 and f"job {job.id} prepare: " in listed.stdout, listed.stdout
    shown = json.loads(run_cli("jobs", "show", str(job.id), "--json", db=jm.db_path).stdout)
    assert shown["kind"] == "prepare" and (
        "images" in shown.get("work", "") or shown["status"] == "completed"
    )
    done = wait_for(lambda: (j := jm.get_job(job.id)).status.terminal and j, 180, message="the prepare's end")
    assert done.status is Status.COMPLETED, done.error
    assert done.progress == 1.0 and (dest / "manifest.json").is_file() and (dest / "train.txt").is_file()
    assert "images" in (done.note or "")  # the last progress stays with the finished job
    assert jm.metric_count(job.id) >= 2  # its progress history: `work` rows


@pytest.mark.slow
def test_cancel_stops_a_prepare_with_no_process_left_and_resume_finishes_it(
    jm, imagenet, tmp_path, monkeypatch
):
    monkeypatch.setenv(SLOW_ENV, "3")
    monkeypatch.setenv(
        "RN50TUI_CANCEL_GRACE_S", "20"
    )  # a prepare deaf to SIGTERM would be killed: seen below
    dest = tmp_path / "resumed"
    job = jm.submit(prepare_request(imagenet, dest))
    wait_for(lambda: jm.get_job(job.id).status is Status.RUNNING and any((dest / "train").glob("n*")), 120,
             message="a finished class")  # fmt: skip
    token = jm.get_job(job.id).run_token
    cancelled = jm.cancel(job.id, wait=True, timeout=60)
    assert cancelled.status is Status.CANCELLED, cancelled.error
    assert cancelled.exit_code == 75 and "killed" not in cancelled.error  # it stopped itself, on SIGTERM
    assert procs.tagged_processes(token) == []  # the prepare and its pool workers are gone
    assert not (dest / "manifest.json").exists()  # stopped half-way: nothing looks complete
    kept = {p.name for p in (dest / "train").iterdir() if not p.name.startswith(".")}
    assert kept

    monkeypatch.setenv(SLOW_ENV, "0")
    resumed = jm.resume(job.id)
    assert resumed.attempt == 2
    done = wait_for(
        lambda: (j := jm.get_job(job.id)).status.terminal and j, 180, message="the resumed prepare"
    )
    assert done.status is Status.COMPLETED, done.error
    out = (Path(done.workspace) / "stdout.log").read_text()
    assert f"resuming: {len(kept)} of 4 train classes already written" in out
    straight = tmp_path / "straight"
    straight_run(imagenet, straight)
    assert tree(dest) == tree(straight)


def test_bad_prepare_and_export_requests_are_one_line_refusals_with_no_job_left(imagenet, tmp_path):
    db = tmp_path / "jobs.db"
    cases = [
        (["--kind", "prepare", "--from", str(tmp_path / "absent"), "--to", str(tmp_path / "d")], "does not exist"),
        (["--kind", "prepare", "--from", str(imagenet), "--to", str(imagenet / "inside")], "inside --from"),
        (["--kind", "export", "--from", "99"], "no job 99"),
        (["--kind", "prepare", "--from", str(imagenet), "--to", str(tmp_path / "d"), "--format", "onnx"],
         "--format only applies with --kind export"),
    ]  # fmt: skip
    for args, said in cases:
        r = run_cli("submit", *args, db=db)
        assert r.returncode != 0, (args, r.stdout)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and said in lines[0], (args, r.stderr)
    listed = run_cli("jobs", "list", "--json", db=db)
    assert not db.exists() or json.loads(listed.stdout or "[]") == []


def test_an_unfinished_job_is_not_exported(manager, tmp_path):
    queued = manager.submit(preset="demo", engine_flags=TWO_TINY_EPOCHS, start=False)
    with pytest.raises(SubmitError, match=f"job {queued.id} is queued, not completed"):
        manager.submit_export(queued.id)
    r = run_cli("submit", "--kind", "export", "--from", str(queued.id), db=manager.db_path)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "wait until it completes" in r.stderr or "resume" in r.stderr
    assert [j.id for j in manager.list_jobs()] == [queued.id]  # no export job row


@pytest.mark.slow
def test_an_export_job_of_a_finished_run_records_its_check(jm):
    pytest.importorskip("onnxruntime")
    train = jm.submit(preset="demo", engine_flags=TWO_TINY_EPOCHS)
    trained = wait_for(
        lambda: (j := jm.get_job(train.id)).status.terminal and j, 300, message="the training run"
    )
    assert trained.status is Status.COMPLETED, trained.error
    r = run_cli("submit", "--kind", "export", "--from", str(train.id), db=jm.db_path, RN50TUI_POLL_S="0.3")
    assert r.returncode == 0, r.stderr
    export_id = int(r.stdout.strip())
    done = wait_for(lambda: (j := jm.get_job(export_id)).status.terminal and j, 400, message="the export job")
    assert done.status is Status.COMPLETED, done.error
    assert done.kind == "export"
    model = Path(trained.workspace) / "export" / "resnet50-best-fp32.onnx"
    assert model.is_file() and Path(f"{model}.json").is_file()
    assert done.argv[-2:] == ["--image-size", "32"]  # the size it trained at (the demo's 64, overridden)
    shown = run_cli("jobs", "show", str(export_id), db=jm.db_path)
    assert shown.returncode == 0
    assert str(model) in shown.stdout and "check: max |logit diff|" in shown.stdout, shown.stdout
    assert "top-1 agreement" in shown.stdout
    data = json.loads(run_cli("jobs", "show", str(export_id), "--json", db=jm.db_path).stdout)
    assert data["export"]["check"]["ok"] is True
