"""A private two-node Slurm cluster on this host, for the `slurm` tests.

Its own munged (own key and socket), one slurmctld and two `slurmd -N nodeX` daemons (Debian's Slurm is
built with multiple-slurmd support), each on a free port at 127.0.0.1, with state, spool, logs and
`slurm.conf` + count-only `gres.conf` under one folder. No cgroups (proctrack/linuxproc, task/none): it
works in a container. No accounting by default; `accounting=True` adds a private MariaDB + slurmdbd
(accounting.py). Every client finds it through SLURM_CONF.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

from .accounting import Accounting

NODES = ("node1", "node2")
MLU_PER_NODE = 4
PARTITION = "debug"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scontrol", "scancel", "sinfo")


def missing_tools() -> list[str]:
    """The Slurm/munge programs this host lacks (an empty list: a cluster can start)."""
    return [t for t in DAEMONS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class Cluster:
    """Start with start(), stop with stop(); `env` is the environment a client of it needs."""

    def __init__(self, root: Path, name: str = "rn50t", accounting: bool = False) -> None:
        self.root, self.name = root, name
        self.conf = root / "etc" / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        for var in [v for v in self.env if v.startswith(("SLURM_", "SBATCH_", "SRUN_", "SQUEUE_"))]:
            if var != "SLURM_CONF":
                del self.env[var]
        self.accounting = Accounting(self, *free_ports(2)) if accounting else None

    # -- configuration

    def write_config(self) -> None:
        for sub in ("etc", "munge", "state", "log", "spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        ctld_port, *node_ports = free_ports(1 + len(NODES))
        host = socket.gethostname()
        cpus = os.cpu_count() or 1
        nodes = "\n".join(
            f"NodeName={n} NodeHostname={host} NodeAddr=127.0.0.1 Port={p} CPUs={cpus} "
            f"Gres=mlu:{MLU_PER_NODE} State=UNKNOWN"
            for n, p in zip(NODES, node_ports)
        )
        r = self.root
        self.conf.write_text(f"""\
ClusterName={self.name}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool/%n
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.%n.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
{self._accounting_conf()}JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=mlu
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
OverTimeLimit=0
MessageTimeout=20
SchedulerParameters=sched_interval=2
{nodes}
PartitionName={PARTITION} Nodes={",".join(NODES)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
""")
        (self.conf.parent / "gres.conf").write_text(
            f"NodeName={','.join(NODES)} Name=mlu Count={MLU_PER_NODE}\n"
        )
        if self.accounting:
            self.accounting.write_config()

    def _accounting_conf(self) -> str:
        if self.accounting:
            return self.accounting.slurm_conf()
        return "AccountingStorageType=accounting_storage/none\nMinJobAge=300\n"

    # -- daemons

    def start(self, timeout: float = 120.0) -> None:
        self.write_config()
        self._start_munge()
        if self.accounting:  # slurmdbd before slurmctld, which sends it the cluster's jobs
            self.accounting.start_database(timeout)
            self.accounting.start_slurmdbd(timeout)
        self.spawn("slurmctld", [_tool("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self.wait(lambda: self.run("scontrol", "ping", check=False).returncode == 0, timeout, "slurmctld")
        if self.accounting:
            self.accounting.register()
        for node in NODES:
            self.spawn(f"slurmd.{node}", [_tool("slurmd"), "-D", "-N", node, "-f", str(self.conf)])
        self.wait(self._nodes_idle, timeout, "both slurmd nodes idle")

    def _start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        m = self.root / "munge"
        m.chmod(0o700)
        self.spawn("munged", [_tool("munged"), "-F", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={key}", f"--pid-file={m}/munged.pid", f"--log-file={m}/munged.log",
                               f"--seed-file={m}/munged.seed"])  # fmt: skip
        self.wait(self.munge_socket.exists, 30, "munged's socket")

    def spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")  # noqa: SIM115 - lives as long as the daemon
        self.procs[name] = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                            start_new_session=True)  # fmt: skip
        log.close()

    def _nodes_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-o", "%N %t", check=False).stdout
        states = dict(line.split() for line in out.splitlines() if line.strip())
        return all(states.get(n, "").startswith("idle") for n in NODES)

    def wait(self, ready, timeout: float, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited ({proc.returncode}) while waiting for {what}: {self.logs()}"
                    )
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}: {self.logs()}")

    def run(
        self, tool: str, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        return subprocess.run([_tool(tool), *args], env=self.env, capture_output=True, text=True, check=check,
                              timeout=timeout)  # fmt: skip

    def logs(self, lines: int = 15) -> str:
        out = []
        for path in sorted((self.root / "log").glob("*")) + [self.root / "munge" / "munged.log"]:
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def stop(self) -> None:
        """Cancel what is left, stop the daemons (slurmd first) and any step process they left behind."""
        with contextlib.suppress(Exception):
            self.run("scancel", "--full", "-u", "root", check=False, timeout=20)
        order = [n for n in self.procs if n.startswith("slurmd.")] + [
            "slurmctld",
            "slurmdbd",
            "mariadbd",
            "munged",
        ]
        for name in order:
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in stepd_pids(self.root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def stepd_pids(root: Path) -> list[int]:
    """slurmstepd processes of this cluster (they name its spool folder on their command line or in cwd)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if "slurmstepd" in cmd and str(root) in cwd:
            out.append(int(entry.name))
    return out


def start_cluster(root: Path) -> Optional[Cluster]:
    cluster = Cluster(root)
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    return cluster
