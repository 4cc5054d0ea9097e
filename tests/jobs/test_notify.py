"""The notify hook and the user config: real hook processes that record their environment, or hang."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from rn50tui.jobs.core.store import JobStore
from rn50tui.jobs.core.userconfig import NotifyConfig, UserConfigError, load_notify
from rn50tui.jobs.policy import notify

from .conftest import wait_for

RECORDER = """#!/bin/sh
env | grep '^RN50TUI_' | sort > "$1.tmp" && mv "$1.tmp" "$1"
"""


def recorder(tmp_path: Path) -> Path:
    """A hook script that writes its RN50TUI_* environment to the file given as its argument."""
    script = tmp_path / "hook.sh"
    script.write_text(RECORDER)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def recorded(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def configured_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The config file's hook writes each job's RN50TUI_* environment to `<events>/<job id>.env`."""
    events = tmp_path / "events"
    events.mkdir()
    hook = tmp_path / "hook.sh"
    hook.write_text(
        '#!/bin/sh\nenv | grep "^RN50TUI_" > "$1/$RN50TUI_JOB_ID.tmp" && mv "$1/$RN50TUI_JOB_ID.tmp" "$1/$RN50TUI_JOB_ID.env"\n'
    )
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "config.toml").write_text(f'[notify]\ncmd = ["{hook}", "{events}"]\n')
    monkeypatch.setenv("RN50TUI_CONFIG", str(tmp_path / "config.toml"))
    return events


def test_config_reads_notify_and_ignores_other_tables(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[slurm]\npartition = "gpu"\n\n[notify]\ncmd = "notify-send \'rn50 done\'"\ntimeout_s = 5\nbell = true\n'
    )
    assert load_notify(cfg) == NotifyConfig(cmd=["notify-send", "rn50 done"], timeout_s=5.0, bell=True)
    assert load_notify(tmp_path / "missing.toml") == NotifyConfig()
    cfg.write_text("[notify]\ncmd = 3\n")
    with pytest.raises(UserConfigError, match=r"config.toml: \[notify\] cmd must be a string or a list"):
        load_notify(cfg)
    cfg.write_text("[notify\n")
    with pytest.raises(UserConfigError, match="config.toml is not valid TOML"):
        load_notify(cfg)


def test_the_hook_gets_the_jobs_facts_in_its_environment_and_no_shell(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    name = "$(touch pwned); `touch pwned2`"  # job text must never reach a shell
    job = store.insert_job(
        name=name, kind="train", argv=[], device="cpu", cards_requested=1, workspace=str(tmp_path / "w")
    )
    store.update_job(
        job.id, status="failed", best_top1=71.25, error="the engine exited with 1\nTraceback ..."
    )
    out = tmp_path / "env.txt"
    with open(tmp_path / "hook.log", "w") as log:
        proc = notify.fire(
            store.get_job(job.id),
            notify.FINAL,
            log,
            config=NotifyConfig(cmd=[str(recorder(tmp_path)), str(out)]),
        )
    assert proc is not None
    wait_for(out.exists, 60, message="the hook to record its environment")
    env = recorded(out)
    assert env["RN50TUI_JOB_ID"] == str(job.id) and env["RN50TUI_JOB_NAME"] == name
    assert env["RN50TUI_JOB_STATUS"] == "failed" and env["RN50TUI_EVENT"] == "final"
    assert env["RN50TUI_JOB_TOP1"] == "71.250" and env["RN50TUI_JOB_ERROR"] == "the engine exited with 1"
    assert env["RN50TUI_JOB_WORKSPACE"] == str(tmp_path / "w")
    assert proc.wait(timeout=60) == 0
    assert not any(tmp_path.glob("pwned*")) and not any(Path.cwd().glob("pwned*"))


def test_a_hanging_hook_is_killed_after_its_timeout_and_never_blocks(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    job = store.insert_job(
        name="j", kind="train", argv=[], device="cpu", cards_requested=1, workspace=str(tmp_path)
    )
    pidfile = tmp_path / "hook.pid"
    hang = ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 600"]
    log_path = tmp_path / "hook.log"
    with open(log_path, "w") as log:
        proc = notify.fire(
            store.get_job(job.id), notify.STALLED, log, config=NotifyConfig(cmd=hang, timeout_s=3)
        )
    assert proc.poll() is None and "killed" not in log_path.read_text()  # fire returned while the hook runs
    wait_for(pidfile.exists, 60, message="the hook to start")
    assert proc.wait(timeout=120) == 1
    assert "still running after 3 s: killed" in log_path.read_text()
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_failing_hook_is_logged(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    job = store.insert_job(
        name="j", kind="train", argv=[], device="cpu", cards_requested=1, workspace=str(tmp_path)
    )
    log_path = tmp_path / "hook.log"
    with open(log_path, "w") as log:
        for cmd in (["sh", "-c", "exit 7"], [str(tmp_path / "no-such-hook")]):
            notify.fire(store.get_job(job.id), notify.FINAL, log, config=NotifyConfig(cmd=cmd)).wait(
                timeout=60
            )
    text = log_path.read_text()
    assert "failed with exit status 7" in text and "no-such-hook' could not start" in text


def test_a_job_without_a_hook_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("RN50TUI_CONFIG", str(tmp_path / "none.toml"))
    store = JobStore(tmp_path / "jobs.db")
    job = store.insert_job(name="j", kind="train", argv=[], device="cpu", cards_requested=1, workspace=str(tmp_path),
                           notify_cmd=json.dumps(["true"]))  # fmt: skip
    assert notify.hook_argv(store.get_job(job.id), NotifyConfig(cmd=["other"])) == ["true"]  # its own wins
    store.update_job(job.id, notify_cmd=None)
    with open(tmp_path / "log", "w") as log:
        assert notify.fire(store.get_job(job.id), notify.FINAL, log) is None


def test_final_states_set_by_clients_run_the_hook_too(tmp_path, monkeypatch):
    """A queued job's cancel and reconcile's `interrupted` have no supervisor to run the hook."""
    import subprocess
    import sys

    from rn50tui.jobs.core.store import JobStore
    from rn50tui.jobs.local import procs
    from rn50tui.jobs.manager import JobManager
    from tests.jobs.conftest import occupy

    events = configured_hook(tmp_path, monkeypatch)
    store = JobStore(tmp_path / "jobs.db")
    jm = JobManager(tmp_path / "jobs.db", capacity={"mlu": 0, "cuda": 0, "cpu": 1})
    holder = occupy(store)
    queued = jm.submit(preset="demo")
    jm.cancel(queued.id)
    wait_for((events / f"{queued.id}.env").exists, 60, message="the cancel's hook")
    assert recorded(events / f"{queued.id}.env")["RN50TUI_JOB_STATUS"] == "cancelled"

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    started = procs.start_time(gone.pid)
    gone.wait()
    store.update_job(holder.id, supervisor_pid=gone.pid, supervisor_started=started)
    assert jm.reconcile().interrupted == [holder.id]
    wait_for((events / f"{holder.id}.env").exists, 60, message="reconcile's hook")
    env = recorded(events / f"{holder.id}.env")
    assert env["RN50TUI_JOB_STATUS"] == "interrupted" and "is gone" in env["RN50TUI_JOB_ERROR"]
    jm.close()
    store.close()


def test_a_relative_hook_is_made_absolute_at_submit_and_a_missing_one_refused(manager, tmp_path, monkeypatch):
    from rn50tui.jobs.core.errors import SubmitError

    monkeypatch.chdir(tmp_path)
    hook = tmp_path / "hooks" / "done.sh"
    hook.parent.mkdir()
    hook.write_text("#!/bin/sh\ntrue\n")
    hook.chmod(0o755)
    job = manager.submit(preset="demo", notify_cmd=["./hooks/done.sh", "--quiet"], start=False)
    assert job.notify_cmd == [str(hook), "--quiet"]  # runs from the job's workspace all the same
    with pytest.raises(SubmitError, match=r"--notify-cmd ./hooks/gone.sh: no such file \(looked in "):
        manager.submit(preset="demo", notify_cmd=["./hooks/gone.sh"], start=False)
    with pytest.raises(SubmitError, match="not found on PATH"):
        manager.submit(preset="demo", notify_cmd=["no-such-hook-anywhere"], start=False)
    assert [j.id for j in manager.list_jobs()] == [job.id]


def test_a_job_cancelled_because_its_dependency_failed_runs_the_hook(tmp_path, monkeypatch):
    """Issue 28: the scheduler ends it without a supervisor, so the client that settled it runs the hook."""
    from rn50tui.jobs.manager import JobManager
    from tests.jobs.conftest import occupy

    events = configured_hook(tmp_path, monkeypatch)
    store = JobStore(tmp_path / "jobs.db")
    jm = JobManager(tmp_path / "jobs.db", capacity={"mlu": 0, "cuda": 0, "cpu": 1})
    occupy(store)
    first = jm.submit(preset="demo")
    second = jm.submit(preset="demo", after=[first.id])
    jm.cancel(first.id)
    wait_for((events / f"{second.id}.env").exists, 60, message="the dependent's hook")
    env = recorded(events / f"{second.id}.env")
    assert env["RN50TUI_JOB_STATUS"] == "cancelled" and f"job {first.id}" in env["RN50TUI_JOB_ERROR"]
    jm.close()
    store.close()
