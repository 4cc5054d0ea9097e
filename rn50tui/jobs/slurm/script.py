"""The batch script of one attempt, kept in the job's workspace (`slurm/attempt-N.sbatch`).

srun starts one `rn50tui.jobs.slurm.node` per node, which runs that node's torchrun with the c10d
rendezvous on the first node of the allocation: its `NodeAddr` from `scontrol show node` (names need not
resolve on the compute network), a port free there, `--rdzv-id` = the Slurm job id. Slurm's
`--signal=B:TERM@grace` reaches only this script, which writes the stop file every node runner
watches, so the engine checkpoints before the limit. Every value from the user is shlex-quoted; sbatch
options go on sbatch's argv (see `sbatch_argv`) and are repeated in the header, for a rerun by hand.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rn50tui import PROJECT_ROOT
from rn50tui.jobs.slurm.options import SlurmOptions


@dataclass(frozen=True)
class Attempt:
    """What one batch script needs to know about the job."""

    job_id: int
    attempt: int
    name: str
    workspace: Path
    device: str
    cards: int  # per node: torchrun's --nproc-per-node
    engine_flags: Sequence[str]  # engine argv after `-m engine.train`, --workspace etc. included

    @property
    def folder(self) -> Path:
        return self.workspace / "slurm"

    @property
    def script(self) -> Path:
        return self.folder / f"attempt-{self.attempt}.sbatch"

    def stop_file(self, slurm_id: str = "$SLURM_JOB_ID") -> str:
        return f"{self.folder}/stop-{slurm_id}"


def job_name(attempt: Attempt) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in attempt.name)[:40]
    return f"rn50tui-{attempt.job_id}-{safe}"


def sbatch_argv(attempt: Attempt, options: SlurmOptions) -> list[str]:
    """sbatch's options (before the script) as an argv list; nothing here goes through a shell."""
    # stdout.log / stderr.log as for a local job, so `rn50tui logs` and the failure tail read them.
    argv = [f"--job-name={job_name(attempt)}", f"--nodes={options.nodes}", "--ntasks-per-node=1",
            f"--chdir={attempt.workspace}", f"--output={attempt.workspace}/stdout.log",
            f"--error={attempt.workspace}/stderr.log", "--open-mode=append",
            f"--signal=B:TERM@{options.grace}"]  # fmt: skip
    if options.partition:
        argv.append(f"--partition={options.partition}")
    if options.account:
        argv.append(f"--account={options.account}")
    if options.time:
        argv.append(f"--time={options.time}")
    if attempt.device == "cpu":
        argv.append(f"--cpus-per-task={attempt.cards}")
    else:
        argv.append(f"--gres={options.gres}:{attempt.cards}")
    return argv + list(options.sbatch_args)


def node_command(attempt: Attempt, options: SlurmOptions, python: str = sys.executable) -> str:
    """The line srun runs on each node (shell-quoted, with the rendezvous variables left to the script)."""
    runner = [python, "-m", "rn50tui.jobs.slurm.node", "--workspace", str(attempt.workspace),
              "--device", attempt.device, "--sample-interval", str(options.sample_interval)]  # fmt: skip
    torchrun = [python, "-m", "engine.launch", "--nproc-per-node", str(attempt.cards),  # torchrun, our exit codes
                "--rdzv-backend", "c10d", "--max-restarts", "0"]  # fmt: skip
    engine = ["-m", "engine.train", *attempt.engine_flags]
    return (
        f'{shlex.join(runner)} --stop-file "$STOP_FILE" -- {shlex.join(torchrun)}'
        f' --nnodes "$SLURM_JOB_NUM_NODES" --rdzv-endpoint "$RDZV_ADDR:$RDZV_PORT"'
        f' --rdzv-id "$SLURM_JOB_ID" {shlex.join(engine)}'
    )


def render(attempt: Attempt, options: SlurmOptions, python: str = sys.executable) -> str:
    q = shlex.quote
    rerun = shlex.join(["sbatch", *sbatch_argv(attempt, options), str(attempt.script)])
    return f"""#!/bin/bash
# rn50tui job {attempt.job_id}, attempt {attempt.attempt}: written and submitted by rn50tui with
#   {rerun}
# (rn50tui follows the job it submitted; a rerun by hand is yours to follow with squeue)
set -u
export PYTHONPATH={q(str(PROJECT_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}
export PYTHONUNBUFFERED=1 RN50TUI_JOB_ID={attempt.job_id}
cd -- {q(str(attempt.workspace))}
STOP_FILE={q(str(attempt.folder))}/stop-"$SLURM_JOB_ID"
# Slurm's --signal=B:TERM@grace (time limit) and scancel --batch land here: every node runner sees the
# stop file and sends SIGTERM to its torchrun, the engine checkpoints mid-epoch and stops.
trap 'echo "[rn50tui] SIGTERM: asking the engine to checkpoint and stop"; echo signal > "$STOP_FILE"' TERM
FIRST_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
RDZV_ADDR=$(scontrol show node -o "$FIRST_NODE" | tr ' ' '\\n' | sed -n 's/^NodeAddr=//p')
RDZV_PORT=$({q(python)} -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
echo "[rn50tui] $SLURM_JOB_NUM_NODES node(s) $SLURM_JOB_NODELIST; rendezvous $RDZV_ADDR:$RDZV_PORT"
srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --kill-on-bad-exit=0 \\
    {node_command(attempt, options, python)} &
SRUN_PID=$!
while true; do
    wait "$SRUN_PID"
    RC=$?
    kill -0 "$SRUN_PID" 2>/dev/null || break  # a trapped signal ends `wait` early: keep waiting
done
echo "[rn50tui] srun exited with $RC"
exit "$RC"
"""


def write(attempt: Attempt, options: SlurmOptions, python: str = sys.executable) -> Path:
    """Write the attempt's script into the workspace (kept there) and return its path."""
    attempt.folder.mkdir(parents=True, exist_ok=True)
    attempt.script.write_text(render(attempt, options, python))
    attempt.script.chmod(0o755)
    return attempt.script
