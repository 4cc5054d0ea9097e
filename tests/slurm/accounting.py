"""Slurm accounting for the private test cluster: its own MariaDB and slurmdbd, under the cluster's root.

MariaDB (Debian's `mariadb-server`) gets a fresh datadir, a socket, a pid file and a free TCP port at
127.0.0.1; it runs as root (`--user=root`) and reads no system option file (`--no-defaults`). Root
reaches it through its socket to create the database user slurmdbd logs in as, over TCP. slurmdbd
(Debian's `slurmdbd`) reads `slurmdbd.conf` from the folder of SLURM_CONF (mode 600: it holds the
database password) and authenticates through the cluster's own munged. slurmctld then sends every
job's record to it, so `sacct` knows a job after slurmctld has forgotten it (MinJobAge).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cluster import Cluster

TOOLS = ("mariadbd", "mariadb-install-db", "mariadb", "slurmdbd", "sacct", "sacctmgr")
DB_USER, DB_NAME = "slurm", "slurm_acct_db"
MIN_JOB_AGE_S = 5  # slurmctld forgets a finished job this soon (a real site: 300 s or more)


def missing_tools() -> list[str]:
    """The accounting programs this host lacks (`apt-get install slurmdbd mariadb-server`)."""
    return [t for t in TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class Accounting:
    """The MariaDB + slurmdbd pair of one cluster; the cluster starts and stops them around its own daemons."""

    def __init__(self, cluster: Cluster, db_port: int, dbd_port: int) -> None:
        self.cluster, self.db_port, self.dbd_port = cluster, db_port, dbd_port
        self.dir = cluster.root / "acct"
        self.socket = self.dir / "mysqld.sock"
        self.password = secrets.token_hex(12)  # '#' is not allowed in StoragePass: hex never has one

    def slurm_conf(self) -> str:
        """The lines of slurm.conf that send job records to this slurmdbd."""
        # Clients reach slurmdbd through the munge socket named by AccountingStoragePass (slurm.conf(5)),
        # not AuthInfo's: without it they would look for the system munged.
        return (
            "AccountingStorageType=accounting_storage/slurmdbd\n"
            f"AccountingStorageHost=127.0.0.1\nAccountingStoragePort={self.dbd_port}\n"
            f"AccountingStoragePass={self.cluster.munge_socket}\nMinJobAge={MIN_JOB_AGE_S}\n"
        )

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.cluster.conf.parent / "slurmdbd.conf"  # slurmdbd looks beside SLURM_CONF
        conf.write_text(f"""\
AuthType=auth/munge
AuthInfo=socket={self.cluster.munge_socket}
DbdHost={socket.gethostname()}
DbdAddr=127.0.0.1
DbdPort={self.dbd_port}
SlurmUser=root
DebugLevel=info
LogFile={self.cluster.root}/log/slurmdbd.log
PidFile={self.dir}/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.db_port}
StorageUser={DB_USER}
StoragePass={self.password}
StorageLoc={DB_NAME}
""")
        conf.chmod(0o600)  # slurmdbd refuses a config others can read

    def start_database(self, timeout: float) -> None:
        datadir = self.dir / "data"
        subprocess.run([_tool("mariadb-install-db"), "--no-defaults", "--user=root", f"--datadir={datadir}",
                        "--auth-root-authentication-method=socket", "--skip-test-db"],
                       check=True, capture_output=True, timeout=timeout)  # fmt: skip
        self.cluster.spawn("mariadbd", [
            _tool("mariadbd"), "--no-defaults", "--user=root", f"--datadir={datadir}", f"--socket={self.socket}",
            f"--pid-file={self.dir}/mariadbd.pid", f"--port={self.db_port}", "--bind-address=127.0.0.1",
            "--skip-name-resolve", f"--log-error={self.cluster.root}/log/mariadbd.log",
            # A throw-away test database: small buffers, no binary log, no fsync per commit.
            "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--skip-log-bin",
            "--innodb-flush-log-at-trx-commit=0"])  # fmt: skip
        self.cluster.wait(lambda: self._sql("SELECT 1", check=False).returncode == 0, timeout, "mariadbd")
        self._sql(
            f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{self.password}';"
            f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'127.0.0.1';"
        )

    def start_slurmdbd(self, timeout: float) -> None:
        self.cluster.spawn("slurmdbd", [_tool("slurmdbd"), "-D"])
        self.cluster.wait(self._dbd_answers, timeout, "slurmdbd")

    def register(self) -> None:
        """Add the cluster to the database unless slurmctld has registered it (22.05 does, on start)."""
        if self.cluster.name not in self.clusters():
            self.cluster.run("sacctmgr", "-i", "add", "cluster", self.cluster.name)

    def clusters(self) -> list[str]:
        return self.cluster.run("sacctmgr", "-n", "-P", "list", "cluster", "format=Cluster").stdout.split()

    def _dbd_answers(self) -> bool:
        return self.cluster.run("sacctmgr", "-n", "list", "cluster", check=False, timeout=20).returncode == 0

    def _sql(self, statement: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([_tool("mariadb"), "--no-defaults", f"--socket={self.socket}", "-u", "root",
                               "-e", statement], capture_output=True, text=True, check=check, timeout=30)  # fmt: skip
