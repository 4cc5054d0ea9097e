"""The README cannot drift from the code: its set-up and test commands are .ci/run's, and its first-job
steps, taken from the README itself, run as written."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time

import pytest

from rn50tui.jobs.manager import JobManager
from tests.conftest import ROOT, engine_env

README = (ROOT / "README.md").read_text()


def code_blocks(markdown: str, heading: str | None = None) -> list[str]:
    """Fenced bash blocks, only those under `heading` (up to the next ## heading) when given."""
    if heading is not None:
        section = markdown.split(f"\n## {heading}\n", 1)[1]
        markdown = section.split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", markdown, re.DOTALL)


def commands(block: str) -> list[str]:
    return [
        line.split("  #")[0].strip()
        for line in block.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_the_readme_opens_with_the_two_commands_ci_runs():
    setup, tests = commands(code_blocks(README)[0])
    ci = [
        line.strip()
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line.strip()
        and not line.startswith(("#", "set ", "cd ", "bash .ci/"))  # .ci/*: the machine, not the user
    ]
    assert ci == [setup, tests]


def test_the_readme_names_only_cli_commands_that_exist():
    out = subprocess.run(["rn50tui", "--help"], capture_output=True, text=True, env=engine_env(), cwd=ROOT)
    assert out.returncode == 0
    named = set(re.findall(r"^rn50tui (\w+)", README, re.MULTILINE))
    assert named and all(name in out.stdout for name in named), named


STALL_S = 600.0  # the demo job may take as long as the machine needs, but not stand still this long


@pytest.mark.slow
@pytest.mark.timeout(0)  # bounded by progress (STALL_S), not by the machine's speed
def test_first_job_steps_run_as_written(tmp_path):
    steps = commands(code_blocks(README, "Your first job")[0])
    assert steps[0] == "rn50tui submit --preset demo" and steps[-1] == "rn50tui logs -f 1"
    env = engine_env(RN50TUI_DB=str(tmp_path / "jobs.db"))
    for step in steps[:-1]:
        out = subprocess.run(
            shlex.split(step), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
        )
        assert out.returncode == 0, f"{step}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    out_path, err_path = tmp_path / "follow.out", tmp_path / "follow.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:  # files: a full pipe would block logs -f
        follow = subprocess.Popen(shlex.split(steps[-1]), cwd=tmp_path, env=env, stdout=out, stderr=err)
        try:
            _wait_while_the_job_progresses(follow, JobManager(tmp_path / "jobs.db", create=False))
        finally:
            if follow.poll() is None:
                follow.kill()
            follow.wait()
    stdout, stderr = out_path.read_text(), err_path.read_text()
    assert follow.returncode == 0, f"{steps[-1]}:\n{stdout[-2000:]}\n{stderr[-2000:]}"
    assert "Epoch: (" in stdout  # `logs -f` followed the run to its end
    listing = subprocess.run(
        ["rn50tui", "jobs", "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    job = json.loads(listing.stdout)[0]
    assert job["status"] == "completed" and job["name"] == "demo"
    exported = subprocess.run(["rn50tui", "export", "1", "--format", "json"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    epochs = [r for r in json.loads(exported.stdout) if r["phase"] == "epoch"]
    assert job["loss"] == epochs[-1]["train.loss"]  # the list's loss is the curve's last epoch mean
    # a healthy miniature run (label smoothing keeps it above ~0.5); this machine's torch ends at 1.011,
    # the session's first commit too, so the bound is 1.1, far below a diverged run's
    assert epochs[-1]["val.loss"] < 1.1, [e["val.loss"] for e in epochs]


def _wait_while_the_job_progresses(follow: subprocess.Popen, jm: JobManager) -> None:
    """Until `logs -f` returns; fail only if the job shows no progress for STALL_S (a hang, not slowness)."""
    seen, since = None, time.monotonic()
    while follow.poll() is None:
        job = jm.get_job(1)
        now = (job.status, job.attempt, job.epoch, job.iteration, jm.metric_count(1))
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since > STALL_S:
            pytest.fail(f"job 1 made no progress for {STALL_S:.0f} s: {seen}")
        time.sleep(2.0)
