"""The Slurm executor's parts that need no cluster: quoting through a real bash, the state table, the
config file, the cards each node sees, and the one-line refusal where Slurm is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rn50tui.jobs.core.errors import SubmitError
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.slurm import commands, script
from rn50tui.jobs.slurm.node import visible_cards
from rn50tui.jobs.slurm.options import SlurmOptions, resolve, time_limit_s
from rn50tui.jobs.slurm.outcome import final_status

from .conftest import run_cli

NASTY = "a b;$(touch pwned)`id`'\"*"


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!{sys.executable}\nimport json, sys\n{body}\n")
    path.chmod(0o755)


def test_the_batch_script_passes_nasty_names_and_paths_to_srun_unchanged(tmp_path):
    workspace = tmp_path / NASTY
    workspace.mkdir()
    flags = ["--data", f"/data/{NASTY}", "--workspace", str(workspace)]
    attempt = script.Attempt(3, 1, NASTY, workspace, "cpu", 2, flags)
    path = script.write(attempt, SlurmOptions(nodes=2))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _tool(bin_dir, "srun", f"json.dump(sys.argv[1:], open({str(tmp_path / 'argv.json')!r}, 'w'))")
    _tool(
        bin_dir, "scontrol", "print('NodeName=n1 NodeAddr=10.1.2.3 Port=1' if 'node' in sys.argv else 'n1')"
    )
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_ID="77", SLURM_JOB_NUM_NODES="2",
               SLURM_JOB_NODELIST="n[1-2]")  # fmt: skip
    done = subprocess.run(
        ["bash", str(path)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[argv.index("--workspace") + 1] == str(workspace)
    assert argv[argv.index("--stop-file") + 1] == f"{workspace}/slurm/stop-77"
    endpoint = argv[argv.index("--rdzv-endpoint") + 1]
    assert endpoint.startswith("10.1.2.3:") and argv[argv.index("--rdzv-id") + 1] == "77"
    assert argv[-len(flags) :] == flags and argv[argv.index("--nnodes") + 1] == "2"
    assert not (tmp_path / "pwned").exists()
    assert f"--job-name=rn50tui-3-{script.job_name(attempt).split('-', 2)[2]}" in script.sbatch_argv(
        attempt, SlurmOptions()
    )


def test_a_cpu_job_asks_for_no_gres_and_a_card_job_for_its_cards_per_node():
    cpu = script.Attempt(1, 1, "x", Path("/w"), "cpu", 2, [])
    mlu = script.Attempt(1, 1, "x", Path("/w"), "mlu", 8, [])
    assert not any(a.startswith("--gres") for a in script.sbatch_argv(cpu, SlurmOptions()))
    assert "--gres=mlu:8" in script.sbatch_argv(mlu, SlurmOptions())
    assert "--gres=gpu:mlu370:8" in script.sbatch_argv(mlu, SlurmOptions(gres="gpu:mlu370"))
    assert "--signal=B:TERM@120" in script.sbatch_argv(mlu, SlurmOptions())


@pytest.mark.parametrize(
    "slurm, run_end, cancel, stop, expected",
    [
        ("COMPLETED", "completed", False, None, Status.COMPLETED),
        ("FAILED", None, False, None, Status.FAILED),
        ("NODE_FAIL", None, False, None, Status.FAILED),
        ("OUT_OF_MEMORY", None, False, None, Status.FAILED),
        ("CANCELLED", "stopped", False, "signal", Status.CANCELLED),  # scancel by hand
        ("FAILED", "stopped", True, "cancel", Status.CANCELLED),  # rn50tui cancel: the engine stopped itself
        ("TIMEOUT", "stopped", False, "signal", Status.INTERRUPTED),
        ("PREEMPTED", None, False, None, Status.INTERRUPTED),
        ("FAILED", "stopped", False, "signal", Status.INTERRUPTED),  # stopped before the limit by --signal
    ],
)
def test_slurm_states_map_to_job_statuses(slurm, run_end, cancel, stop, expected):
    assert final_status(slurm, run_end, cancel, stop)[0] is expected


def test_flags_override_the_config_file_which_overrides_the_defaults(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(
        '[slurm]\npartition = "mlu"\naccount = "vision"\ntime = "24:00:00"\ngres = "gpu:mlu370"\n'
    )
    options = resolve({"partition": "debug", "nodes": 4, "account": None}, config)
    assert (options.partition, options.account, options.time, options.nodes) == (
        "debug",
        "vision",
        "24:00:00",
        4,
    )
    assert options.gres == "gpu:mlu370" and options.auto_resume == 0
    with pytest.raises(SubmitError, match="--partition"):
        resolve({"partition": "mlu; rm -rf /"}, config)
    with pytest.raises(SubmitError, match="leaves no time to train"):
        resolve({"time": "2", "grace": 120}, config)
    assert time_limit_s("1-02:03:04") == 93784 and time_limit_s("90") == 5400 and time_limit_s("1:30") == 90
    config.write_text("[slurm]\nparttion = 'x'\n")
    with pytest.raises(SubmitError, match="unknown \\[slurm\\] key"):
        resolve({}, config)


def test_allocated_cards_reach_mlu_visible_devices():
    assert visible_cards("mlu", {"SLURM_STEP_GPUS": "2,3"}) == {"MLU_VISIBLE_DEVICES": "2,3"}
    assert visible_cards("mlu", {"CUDA_VISIBLE_DEVICES": "0,1"}) == {"MLU_VISIBLE_DEVICES": "0,1"}
    assert visible_cards("mlu", {"MLU_VISIBLE_DEVICES": "1", "SLURM_STEP_GPUS": "2"}) == {}  # the site's own
    assert visible_cards("mlu", {}) == {}  # count-only gres: the whole node's cards
    assert visible_cards("cpu", {}) == {"MLU_VISIBLE_DEVICES": "", "CUDA_VISIBLE_DEVICES": ""}


def test_sinfo_gres_counts():
    node = commands.NodeInfo("mlu", "n1", "mix", "mlu:8", "mlu:6(IDX:0-5)", "6/58/0/64")
    assert node.cards() == (6, 8)
    assert commands.NodeInfo("p", "n", "idle", "(null)", "gpu:a100:0", "0/1/0/1").cards() == (0, 0)


# Recorded from Debian's Slurm 22.05 with slurmdbd (tests/slurm/accounting.py): `sacct -X -n -P -o
# JobID,State,NodeList,ExitCode -j ...`; the last job was cancelled while it was pending.
SACCT_LINES = "3|FAILED|node[1-2]|3:0\n4|COMPLETED|node1|0:0\n5|CANCELLED by 0|None assigned|0:0\n"


def test_sacct_lines_become_job_states(tmp_path, monkeypatch):
    _tool(tmp_path, "sacct", f"sys.stdout.write({SACCT_LINES!r})")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert commands.sacct(["5", "3", "4"]) == {
        "3": commands.JobState("3", "FAILED", "", "node[1-2]", "3:0"),
        "4": commands.JobState("4", "COMPLETED", "", "node1", "0:0"),
        "5": commands.JobState("5", "CANCELLED", "", "", "0:0"),  # "None assigned": it never ran
    }


@pytest.mark.parametrize(
    ("storage", "enabled"), [("accounting_storage/slurmdbd", True), ("accounting_storage/none", False)]
)
def test_accounting_is_enabled_by_slurmdbd_storage_only(tmp_path, monkeypatch, storage, enabled):
    config = f"AccountingStorageHost   = localhost\nAccountingStorageType   = {storage}\n"
    _tool(tmp_path, "scontrol", f"sys.stdout.write({config!r})")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert commands.accounting_enabled() is enabled


def test_without_sbatch_the_slurm_executor_says_so_in_one_line_and_queues_nothing(db_path, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    path = ":".join(p for p in os.environ["PATH"].split(":") if not (Path(p) / "sbatch").exists())
    done = run_cli("submit", "--preset", "demo", "--executor", "slurm", "--nodes", "2", db=db_path, PATH=path)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "sbatch" in done.stderr and "login node" in done.stderr
    listed = run_cli("jobs", "list", "--json", db=db_path, PATH=path)
    assert json.loads(listed.stdout) == []


def test_a_follower_whose_store_was_deleted_exits(tmp_path):
    # A queued Slurm job whose controller cannot be reached: the follower keeps trying (the cluster may
    # come back), until the store itself is gone.
    from rn50tui.jobs.core.store import JobStore

    db = tmp_path / "jobs.db"
    store = JobStore(db)
    job = store.insert_job(name="j", kind="train", argv=[], device="cpu", cards_requested=1,
                           workspace=str(tmp_path / "runs" / "{id}"), preset=None, executor="slurm")  # fmt: skip
    store.set_executor_handle(job.id, {"slurm_job_id": "7"})
    store.close()
    env = {**os.environ, "SLURM_CONF": str(tmp_path / "no-such-slurm.conf"), "PATH": str(tmp_path / "bin")}
    follower = subprocess.Popen([sys.executable, "-m", "rn50tui.jobs.slurm.watcher", "--db", str(db)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            follower.wait(4)  # it follows the job while the store is there
        for path in tmp_path.glob("jobs.db*"):
            if not path.name.endswith(".lock"):
                path.unlink()
        assert follower.wait(30) == 1
    finally:
        follower.kill()
    out = follower.stdout.read()
    assert "cannot ask Slurm" in out and "is gone: exiting" in out, out


def test_a_resumed_slurm_jobs_stall_watch_starts_from_this_attempt_not_the_last_ones_progress(tmp_path):
    import time

    from rn50tui.jobs.core.store import JobStore
    from rn50tui.jobs.slurm.watcher import SlurmWatcher

    store = JobStore(tmp_path / "jobs.db")
    job = store.insert_job(name="j", kind="train", argv=[], device="cpu", cards_requested=1,
                           workspace=str(tmp_path / "runs" / "{id}"), preset=None, executor="slurm")  # fmt: skip
    now = time.time()
    # The previous attempt's last progress is two hours old; this attempt began a minute ago.
    store.transition(job.id, Status.STARTING)
    store.transition(job.id, Status.RUNNING, started_at=now - 7300, last_progress_at=now - 7200)
    store.transition(job.id, Status.INTERRUPTED, finished_at=now - 7000)
    store.new_attempt(job.id, expect=[Status.INTERRUPTED])
    store.transition(job.id, Status.STARTING, executor_handle={"slurm_job_id": "7"})
    job = store.transition(job.id, Status.RUNNING, started_at=now - 60)
    assert job.last_progress_at is None  # the new attempt's own row: nothing of the last one
    follower = SlurmWatcher(store.path)
    follower._commit(job, follower._tracked(job), {"slurm_job_id": "7"}, now, force=False)
    watch = follower.tracked[job.id].report.watch
    assert watch is not None and watch.last_progress == now - 60 and not watch.stalled
