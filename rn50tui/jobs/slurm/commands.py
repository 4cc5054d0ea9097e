"""The Slurm commands rn50tui runs, as argv lists (never a shell line), in the caller's environment.

Every command inherits os.environ, so SLURM_CONF (a user with two clusters picks one) and the site's
SLURM_* defaults apply. `QUERIES` counts the calls that reach slurmctld, for the polling budget.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Optional

from rn50tui.jobs.core.errors import JobsError

TIMEOUT_S = 60.0
QUERIES: Counter[str] = Counter()  # command name → calls made by this process


class SlurmError(JobsError):
    """A Slurm command failed; the message is its own first error line."""


def missing() -> Optional[str]:
    """None when sbatch, squeue and scancel are on PATH, else the one line that says what to do."""
    absent = [t for t in ("sbatch", "squeue", "scancel", "scontrol") if shutil.which(t) is None]
    if not absent:
        return None
    return (
        f"--executor slurm needs Slurm's {', '.join(absent)} on PATH, and this machine has none: "
        "run rn50tui on the cluster's login node (or drop --executor slurm to run here)"
    )


def run(argv: Sequence[str], *, input_text: Optional[str] = None, timeout: float = TIMEOUT_S) -> str:
    """Run one Slurm command; its stdout, or SlurmError with its stderr's gist."""
    QUERIES[argv[0]] += 1
    try:
        proc = subprocess.run(list(argv), input=input_text, capture_output=True, text=True, timeout=timeout,
                              stdin=None if input_text is not None else subprocess.DEVNULL)  # fmt: skip
    except FileNotFoundError:
        raise SlurmError(f"{argv[0]} is not on PATH: is this a Slurm login node?") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{argv[0]} did not answer in {timeout:.0f} s (is slurmctld up?)") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()] or [f"exit status {proc.returncode}"]
        raise SlurmError(f"{argv[0]} failed: {lines[-1].strip()}")
    return proc.stdout


def sbatch(script: str, extra: Sequence[str] = (), test_only: bool = False) -> str:
    """Submit a batch script file; the Slurm job id (`--parsable`: `id` or `id;cluster`)."""
    argv = ["sbatch", "--parsable", *extra, script]
    if test_only:
        argv.insert(1, "--test-only")
    out = run(argv)
    return out.strip().split(";")[0]


def scancel(job_id: str, signal: Optional[str] = None, batch_only: bool = False) -> None:
    argv = ["scancel"]
    if signal:
        argv += [f"--signal={signal}"] + (["--batch"] if batch_only else ["--full"])
    run([*argv, job_id])


@dataclass(frozen=True)
class JobState:
    """What Slurm says of one job: its state (base name, e.g. PENDING), reason, nodes and exit code."""

    job_id: str
    state: str
    reason: str = ""
    nodes: str = ""
    exit_code: str = ""


SQUEUE_FORMAT = "%i|%T|%r|%N"


def squeue(job_ids: Iterable[str]) -> dict[str, JobState]:
    """One squeue call for every followed job (the controller is asked once, whatever their number).

    Jobs squeue no longer knows (finished and purged after MinJobAge) are absent from the answer.
    """
    ids = sorted(set(job_ids), key=_id_key)
    if not ids:
        return {}
    try:
        out = run(["squeue", "-h", "-t", "all", "-o", SQUEUE_FORMAT, "-j", ",".join(ids)])
    except SlurmError as exc:
        if "Invalid job id" in str(exc):
            return {}  # every one of them is gone from the controller's memory
        raise
    states = {}
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) >= 4 and parts[0] in ids:
            states[parts[0]] = JobState(parts[0], _base(parts[1]), _reason(parts[2]), parts[3])
    return states


def accounting_enabled() -> bool:
    """True when slurmdbd accounting is configured (then sacct knows finished jobs)."""
    out = run(["scontrol", "show", "config"])
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "AccountingStorageType":
            return value.strip() not in ("", "accounting_storage/none")
    return False


def sacct(job_ids: Iterable[str]) -> dict[str, JobState]:
    """Final states of finished jobs from accounting, in one call.

    With `-j`, sacct looks back to any date (no `--starttime` needed) and gives the most recent job of
    each id (ids reused after a controller reset: see sacct --duplicates). Lines look like
    `12|CANCELLED by 0|None assigned|0:0` (cancelled while pending) or `13|FAILED|node[1-2]|3:0`.
    """
    ids = sorted(set(job_ids), key=_id_key)
    if not ids:
        return {}
    out = run(["sacct", "-X", "-n", "-P", "-o", "JobID,State,NodeList,ExitCode", "-j", ",".join(ids)])
    states = {}
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) >= 4 and parts[0] in ids:
            nodes = "" if parts[2] == "None assigned" else parts[2]  # a job that never ran
            states[parts[0]] = JobState(parts[0], _base(parts[1]), "", nodes, parts[3])
    return states


def scontrol_job(job_id: str) -> Optional[JobState]:
    """One job from `scontrol show job` (no accounting); None when the controller forgot it too."""
    try:
        out = run(["scontrol", "show", "job", "-o", job_id])
    except SlurmError as exc:
        if "Invalid job id" in str(exc):
            return None
        raise
    fields = parse_pairs(out)
    if "JobState" not in fields:
        return None
    return JobState(job_id, _base(fields["JobState"]), _reason(fields.get("Reason", "")),
                    fields.get("NodeList", ""), fields.get("ExitCode", ""))  # fmt: skip


def parse_pairs(text: str) -> dict[str, str]:
    """`Key=Value Key=Value` (scontrol -o) as a dict; values hold no spaces in the fields used here."""
    out = {}
    for token in text.split():
        key, eq, value = token.partition("=")
        if eq and key not in out:
            out[key] = value
    return out


def _base(state: str) -> str:
    """`CANCELLED by 0` → CANCELLED; `COMPLETING+` → COMPLETING."""
    return state.split()[0].rstrip("+").upper() if state.strip() else ""


def _reason(reason: str) -> str:
    return "" if reason.strip() in ("None", "(null)") else reason.strip()


def _id_key(job_id: str) -> tuple[int, str]:
    head = job_id.split("_")[0]
    return (int(head) if head.isdigit() else 0, job_id)


@dataclass(frozen=True)
class NodeInfo:
    """One node of one partition, from sinfo."""

    partition: str
    node: str
    state: str
    gres: str  # configured, e.g. mlu:8
    gres_used: str  # e.g. mlu:6(IDX:0-5) or mlu:6
    cpus: str  # allocated/idle/other/total

    def cards(self) -> tuple[int, int]:
        """(cards in use, cards in all) over every gres of the node."""
        return _gres_count(self.gres_used), _gres_count(self.gres)

    def row(self) -> tuple[str, ...]:
        """The node's cells under CLUSTER_COLUMNS (`rn50tui devices --cluster` and the app's table)."""
        used, total = self.cards()
        return (self.partition, self.node, self.state, str(used), str(total - used), self.gres, self.cpus)


CLUSTER_COLUMNS = ("PARTITION", "NODE", "STATE", "CARDS USED", "CARDS FREE", "GRES", "CPUS A/I/O/T")


SINFO_FIELDS = ("Partition", "NodeList", "StateCompact", "Gres", "GresUsed", "CPUsState")


def sinfo() -> list[NodeInfo]:
    """Every node of every partition: one sinfo call."""
    out = run(["sinfo", "-h", "-N", "-O", ",".join(f"{f}:|" for f in SINFO_FIELDS)])
    nodes = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= len(SINFO_FIELDS):
            nodes.append(NodeInfo(*parts[: len(SINFO_FIELDS)]))
    return nodes


def _gres_count(text: str) -> int:
    """`mlu:4,gpu:a100:2(S:0)` → 6; `(null)` → 0."""
    total = 0
    for item in text.split(","):
        item = item.split("(")[0]
        tail = item.rsplit(":", 1)[-1]
        if ":" in item and tail.isdigit():
            total += int(tail)
    return total
