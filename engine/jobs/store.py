"""The job store: one SQLite file (`jobs.db`) through sqlite-utils, shared by every client and supervisor.

Opening a store sets `busy_timeout` before anything else, turns WAL on and applies the named migrations
the file lacks (an older database is upgraded on open; a newer one is refused). Every read-then-write runs
in :func:`immediate` (`BEGIN IMMEDIATE`), so two writers never act on the same stale read; transactions
are kept short: no process is started or signalled inside one.

Tables (see MIGRATIONS for the exact columns):
  jobs            one row per job: request (name, kind, preset, engine argv, device, cards), status, attempt,
                  supervisor and engine pids with their start times, heartbeat, exit, progress and the
                  latest metrics (so a list never scans history)
  metrics         one row per engine LOG record: job, attempt, time, epoch, iteration, phase, values (JSON)
  claims          (device, card) → job: the cards in use; the primary key makes a double grant impossible
  device_samples  per card and time: utilisation, memory, temperature, power (retention-limited)
  _migrations     the names of the applied migrations
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    import sqlite_utils

from engine.jobs.errors import JobNotFound, StoreError, StoreMissing, TransitionError
from engine.jobs.states import Status, check_transition

BUSY_TIMEOUT_S = 30.0
DB_ENV = "RN50TUI_DB"
DEFAULT_DB = "jobs.db"


def default_db_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--db PATH, else $RN50TUI_DB, else ./jobs.db."""
    return Path(explicit or os.environ.get(DB_ENV) or DEFAULT_DB)


# ---------------------------------------------------------------------------------------------- migrations

Migration = Callable[["sqlite_utils.Database"], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(name: str) -> Callable[[Migration], Migration]:
    """Register a schema step; names are applied once each, in the order they are declared."""

    def register(fn: Migration) -> Migration:
        MIGRATIONS.append((name, fn))
        return fn

    return register


@migration("0001_initial")
def _m0001_initial(db: sqlite_utils.Database) -> None:
    db["jobs"].create(
        {
            "id": int,
            "name": str,
            "kind": str,
            "preset": str,
            "argv": str,
            "device": str,
            "cards_requested": int,
            "cards_granted": str,
            "workspace": str,
            "status": str,
            "attempt": int,
            "created_at": float,
            "queued_at": float,
            "started_at": float,
            "finished_at": float,
            "updated_at": float,
            "supervisor_pid": int,
            "supervisor_started": float,
            "engine_pid": int,
            "engine_started": float,
            "run_token": str,
            "heartbeat": float,
            "cancel_requested": float,
            "exit_code": int,
            "error": str,
            "resume_from": str,
            "epoch": int,
            "epochs": int,
            "iteration": int,
            "iters_per_epoch": int,
            "val_iters": int,
            "world_size": int,
            "raport_offset": int,
            "stderr_offset": int,
            "last_checkpoint": str,
            "checkpoint_epoch": int,
            "checkpoint_iteration": int,
            "loss": float,
            "lr": float,
            "ips": float,
            "top1": float,
            "top5": float,
            "val_loss": float,
            "best_top1": float,
        },
        pk="id",
        not_null={"name", "kind", "argv", "device", "cards_requested", "workspace", "status", "attempt"},
        defaults={"attempt": 1, "raport_offset": 0, "stderr_offset": 0},
    )
    db["jobs"].create_index(["status"], index_name="jobs_status")
    db["metrics"].create(
        {
            "id": int,
            "job_id": int,
            "attempt": int,
            "time": float,
            "epoch": int,
            "iteration": int,
            "phase": str,
            "data": str,
        },
        pk="id",
        not_null={"job_id", "attempt", "time", "phase", "data"},
        foreign_keys=[("job_id", "jobs", "id")],
    )
    db["metrics"].create_index(["job_id", "attempt", "id"], index_name="metrics_job")
    db["claims"].create(
        {"device": str, "card": int, "job_id": int, "claimed_at": float},
        pk=("device", "card"),
        not_null={"job_id", "claimed_at"},
        foreign_keys=[("job_id", "jobs", "id")],
    )
    db["claims"].create_index(["job_id"], index_name="claims_job")


@migration("0002_device_samples")
def _m0002_device_samples(db: sqlite_utils.Database) -> None:
    db["device_samples"].create(
        {
            "id": int,
            "job_id": int,
            "time": float,
            "device": str,
            "card": int,
            "name": str,
            "util_percent": float,
            "mem_used_mib": float,
            "mem_total_mib": float,
            "temp_c": float,
            "power_w": float,
            "power_cap_w": float,
        },
        pk="id",
        not_null={"job_id", "time", "device", "card"},
        foreign_keys=[("job_id", "jobs", "id")],
    )
    db["device_samples"].create_index(["job_id", "time"], index_name="device_samples_job")


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations this database lacks, in one IMMEDIATE transaction; return their names."""
    known = [name for name, _ in MIGRATIONS]
    if "_migrations" in table_names(conn) and set(_applied(conn)) == set(known):
        return []  # fast path: every open of an up-to-date store, without importing sqlite-utils
    import sqlite_utils  # only when the schema changes: it costs ~0.1 s of start-up

    db = sqlite_utils.Database(conn, execute_plugins=False)
    with immediate(conn):
        if "_migrations" not in table_names(conn):
            db["_migrations"].create({"name": str, "applied_at": float}, pk="name")
        applied = _applied(conn)
        unknown = [name for name in applied if name not in known]
        if unknown:
            raise StoreError(
                f"this job store was written by a newer rn50tui (migrations {', '.join(unknown)}); "
                "upgrade rn50tui or pass another --db"
            )
        done = []
        for name, fn in MIGRATIONS:
            if name not in applied:
                fn(db)
                conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", [name, time.time()])
                done.append(name)
        return done


def _applied(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY name").fetchall()]


def table_names(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()]


# --------------------------------------------------------------------------------------------- connection


def connect(
    path: str | os.PathLike[str], *, create: bool = True, timeout: float = BUSY_TIMEOUT_S
) -> sqlite3.Connection:
    """Open (or create) the store at `path`: busy_timeout first, then WAL, then migrations.

    The connection is in autocommit mode (isolation_level=None): a lone statement commits at once, and
    every multi-statement write is an explicit :func:`immediate` transaction.
    """
    path = Path(path)
    if not create and not path.exists():
        raise StoreMissing(f"no job store at {path} (submit a job first, or pass --db / set {DB_ENV})")
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")  # before anything that may lock
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, fast commits
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open job store {path}: {exc}") from exc
    return conn


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A `BEGIN IMMEDIATE` transaction: the write lock is taken before the first read."""
    if conn.in_transaction:
        raise StoreError("immediate() cannot nest inside an open transaction")
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# ------------------------------------------------------------------------------------------------- rows


@dataclass
class Job:
    """One row of `jobs`, with JSON columns decoded and the status as a Status."""

    id: int
    name: str
    kind: str
    argv: list[str]
    device: str
    cards_requested: int
    workspace: str
    status: Status
    attempt: int = 1
    preset: Optional[str] = None
    cards_granted: Optional[list[int]] = None
    created_at: Optional[float] = None
    queued_at: Optional[float] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    updated_at: Optional[float] = None
    supervisor_pid: Optional[int] = None
    supervisor_started: Optional[float] = None
    engine_pid: Optional[int] = None
    engine_started: Optional[float] = None
    run_token: Optional[str] = None
    heartbeat: Optional[float] = None
    cancel_requested: Optional[float] = None
    exit_code: Optional[int] = None
    error: Optional[str] = None
    resume_from: Optional[str] = None
    epoch: Optional[int] = None
    epochs: Optional[int] = None
    iteration: Optional[int] = None
    iters_per_epoch: Optional[int] = None
    val_iters: Optional[int] = None
    world_size: Optional[int] = None
    raport_offset: int = 0
    stderr_offset: int = 0
    last_checkpoint: Optional[str] = None
    checkpoint_epoch: Optional[int] = None
    checkpoint_iteration: Optional[int] = None
    loss: Optional[float] = None
    lr: Optional[float] = None
    ips: Optional[float] = None
    top1: Optional[float] = None
    top5: Optional[float] = None
    val_loss: Optional[float] = None
    best_top1: Optional[float] = None
    extra: dict[str, Any] = field(default_factory=dict)  # columns of later migrations this class lacks

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        """A Job from a `SELECT * FROM jobs` row (consumed); unknown columns go to `extra`."""
        extra = (
            {k: row.pop(k) for k in [k for k in row if k not in _JOB_FIELDS]}
            if len(row) != len(_JOB_FIELDS)
            else {}
        )
        row["argv"] = json.loads(row["argv"])
        granted = row["cards_granted"]
        row["cards_granted"] = json.loads(granted) if granted else None
        row["status"] = Status(row["status"])
        return cls(**row, extra=extra)

    @property
    def raport_path(self) -> Path:
        return Path(self.workspace) / "raport.json"

    @property
    def progress(self) -> Optional[float]:
        """Fraction of the schedule's training iterations done (1.0 once completed), None if unknown."""
        return progress_of(self.status.value, self.epoch, self.epochs, self.iteration, self.iters_per_epoch)

    def label(self) -> str:
        """How other views name the job: `job 12 (demo)`."""
        return f"job {self.id} ({self.name})"

    def to_dict(self) -> dict[str, Any]:
        """Everything the store knows, JSON-ready (status as its string)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out["status"] = self.status.value
        out["progress"] = self.progress
        out.update(self.extra)
        return out


_JOB_FIELDS = frozenset(f.name for f in fields(Job)) - {"extra"}

# What a list shows: everything but the engine argv and the internals; cheap to read for 10,000 jobs.
SUMMARY_COLUMNS = (
    "id", "name", "kind", "preset", "device", "cards_requested", "cards_granted", "status", "attempt",
    "created_at", "started_at", "finished_at", "updated_at", "heartbeat", "epoch", "epochs", "iteration",
    "iters_per_epoch", "loss", "lr", "ips", "top1", "top5", "best_top1", "exit_code", "error",
)  # fmt: skip


def progress_of(status: str, epoch: Optional[int], epochs: Optional[int], iteration: Optional[int],
                iters_per_epoch: Optional[int]) -> Optional[float]:  # fmt: skip
    """Fraction of the training iterations done (1.0 once completed), None while unknown."""
    if status == "completed":
        return 1.0
    if not epochs or not iters_per_epoch or not epoch:
        return None
    done = (epoch - 1) * iters_per_epoch + (iteration or 0)
    return max(0.0, min(1.0, done / (epochs * iters_per_epoch)))


@dataclass(frozen=True)
class MetricRow:
    """One engine LOG record as stored: `values` maps metric names (train.loss, val.top1, …) to numbers."""

    id: int
    job_id: int
    attempt: int
    time: float
    epoch: Optional[int]
    iteration: Optional[int]
    phase: str
    values: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "attempt": self.attempt,
            "time": self.time,
            "epoch": self.epoch,
            "iteration": self.iteration,
            "phase": self.phase,
            **self.values,
        }


@dataclass(frozen=True)
class DeviceSample:
    """One card at one time; a value the device does not report is None."""

    time: float
    device: str
    card: int
    name: Optional[str] = None
    util_percent: Optional[float] = None
    mem_used_mib: Optional[float] = None
    mem_total_mib: Optional[float] = None
    temp_c: Optional[float] = None
    power_w: Optional[float] = None
    power_cap_w: Optional[float] = None

    def as_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Claim:
    device: str
    card: int
    job_id: int
    claimed_at: float


# ------------------------------------------------------------------------------------------------- store


class JobStore:
    """Typed access to the tables; every multi-step write in one short IMMEDIATE transaction.

    A JobStore holds one connection; give each thread its own (JobManager does).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = True, timeout: float = BUSY_TIMEOUT_S
    ) -> None:
        self.path = Path(path).resolve()
        self.db = connect(self.path, create=create, timeout=timeout)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts (column name → value)."""
        cur = self.db.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """`with store.transaction():` — BEGIN IMMEDIATE … COMMIT."""
        return immediate(self.db)

    # ----- jobs

    def insert_job(self, **values: Any) -> Job:
        """Insert a queued job; `workspace` may use `{id}`, filled in once the id is known."""
        now = time.time()
        row = {
            "status": Status.QUEUED.value,
            "attempt": 1,
            "created_at": now,
            "queued_at": now,
            "updated_at": now,
            **values,
        }
        row["argv"] = json.dumps(list(row["argv"]))
        with self.transaction():
            cur = self.db.execute(
                f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
            job_id = int(cur.lastrowid)
            if "{id}" in row["workspace"]:
                self.db.execute(
                    "UPDATE jobs SET workspace = ? WHERE id = ?", [row["workspace"].format(id=job_id), job_id]
                )
        return self.get_job(job_id)

    def find_job(self, job_id: int) -> Optional[Job]:
        rows = list(self.query("SELECT * FROM jobs WHERE id = ?", [job_id]))
        return Job.from_row(rows[0]) if rows else None

    def get_job(self, job_id: int) -> Job:
        job = self.find_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list_jobs(
        self, statuses: Optional[Iterable[Status]] = None, limit: Optional[int] = None
    ) -> list[Job]:
        """Jobs in id order (newest last), optionally only those with the given statuses."""
        sql, params = "SELECT * FROM jobs", []
        if statuses is not None:
            wanted = [Status(s).value for s in statuses]
            sql += f" WHERE status IN ({', '.join('?' * len(wanted))})"
            params += wanted
        sql += " ORDER BY id"
        if limit is not None:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(limit)}) ORDER BY id"
        return [Job.from_row(r) for r in self.query(sql, params)]

    def job_summaries(
        self, statuses: Optional[Iterable[Status]] = None, limit: Optional[int] = None
    ) -> list[dict[str, Any]]:
        """list_jobs() for big lists: SUMMARY_COLUMNS as JSON-ready dicts, plus `progress`."""
        sql, params = f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM jobs", []
        if statuses is not None:
            wanted = [Status(s).value for s in statuses]
            sql += f" WHERE status IN ({', '.join('?' * len(wanted))})"
            params += wanted
        sql += " ORDER BY id"
        if limit is not None:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(limit)}) ORDER BY id"
        out = []
        for row in self.db.execute(sql, params).fetchall():
            d = dict(zip(SUMMARY_COLUMNS, row))
            d["cards_granted"] = json.loads(d["cards_granted"]) if d["cards_granted"] else None
            d["progress"] = progress_of(
                d["status"], d["epoch"], d["epochs"], d["iteration"], d["iters_per_epoch"]
            )
            out.append(d)
        return out

    def update_job(self, job_id: int, **values: Any) -> None:
        """Set columns of one job (no status check; for the owner of those columns)."""
        values["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*_encode(values).values(), job_id])

    def transition(
        self, job_id: int, new: Status, *, expect: Optional[Sequence[Status]] = None, **values: Any
    ) -> Job:
        """Move a job to `new` (checked against TRANSITIONS) and set `values`, atomically.

        `expect` narrows the statuses the caller believes the job is in; a job found elsewhere raises
        TransitionError, so a stale caller never overwrites a newer state.
        """
        with self.transaction():
            self.transition_locked(job_id, new, expect, values)
        return self.get_job(job_id)

    def transition_locked(
        self, job_id: int, new: Status, expect: Optional[Sequence[Status]], values: dict[str, Any]
    ) -> Job:
        """transition() for a caller already inside store.transaction(); returns the job as it was."""
        job = self.get_job(job_id)
        if expect is not None and job.status not in expect:
            check_transition(job_id, job.status, new)  # the clearer message when the move itself is wrong
            raise TransitionError(f"job {job_id} is {job.status} now, not {'/'.join(map(str, expect))}")
        check_transition(job_id, job.status, new)
        self.update_job(job_id, status=new.value, **values)
        return job

    def delete_job(self, job_id: int) -> None:
        """Remove a job with its metrics and samples (the caller checked it may go)."""
        with self.transaction():
            for table in self.child_tables():
                self.db.execute(f"DELETE FROM {table} WHERE job_id = ?", [job_id])
            self.db.execute("DELETE FROM jobs WHERE id = ?", [job_id])

    def child_tables(self) -> list[str]:
        return [t for t in ("metrics", "claims", "device_samples") if t in table_names(self.db)]

    # ----- claims

    def claims(self) -> list[Claim]:
        return [Claim(**r) for r in self.query("SELECT * FROM claims ORDER BY device, card")]

    def claims_of(self, job_id: int) -> list[Claim]:
        return [
            Claim(**r) for r in self.query("SELECT * FROM claims WHERE job_id = ? ORDER BY card", [job_id])
        ]

    def release_claims(self, job_id: int) -> None:
        self.db.execute("DELETE FROM claims WHERE job_id = ?", [job_id])

    # ----- metrics

    def add_metrics(
        self, rows: Sequence[tuple[int, int, float, Optional[int], Optional[int], str, str]]
    ) -> None:
        """Insert (job_id, attempt, time, epoch, iteration, phase, values-json) rows; call inside a transaction."""
        self.db.executemany(
            "INSERT INTO metrics (job_id, attempt, time, epoch, iteration, phase, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def metrics(
        self,
        job_id: int,
        attempt: Optional[int] = None,
        since_id: Optional[int] = None,
        phase: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> list[MetricRow]:
        """A job's metric records in write order; `since_id` returns only newer rows (for live views)."""
        sql, params = "SELECT * FROM metrics WHERE job_id = ?", [job_id]
        for column, op, value in (("attempt", "=", attempt), ("id", ">", since_id), ("phase", "=", phase)):
            if value is not None:
                sql += f" AND {column} {op} ?"
                params.append(value)
        sql += " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [
            MetricRow(
                r["id"],
                r["job_id"],
                r["attempt"],
                r["time"],
                r["epoch"],
                r["iteration"],
                r["phase"],
                json.loads(r["data"]),
            )
            for r in self.query(sql, params)
        ]

    def metric_count(self, job_id: int, attempt: Optional[int] = None) -> int:
        sql, params = "SELECT count(*) FROM metrics WHERE job_id = ?", [job_id]
        if attempt is not None:
            sql += " AND attempt = ?"
            params.append(attempt)
        return int(self.db.execute(sql, params).fetchone()[0])

    # ----- device samples

    def add_samples(self, job_id: int, samples: Sequence[DeviceSample]) -> None:
        """Insert one round of card samples (call inside a transaction with the heartbeat)."""
        self.db.executemany(
            "INSERT INTO device_samples (job_id, time, device, card, name, util_percent, mem_used_mib,"
            " mem_total_mib, temp_c, power_w, power_cap_w) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(job_id, *s.as_tuple()) for s in samples],
        )

    def prune_samples(self, job_id: int, keep: int) -> None:
        """Keep only the newest `keep` samples of a job (the retention limit)."""
        self.db.execute(
            "DELETE FROM device_samples WHERE job_id = ? AND id <= (SELECT id FROM device_samples"
            " WHERE job_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            [job_id, job_id, int(keep)],
        )

    def device_samples(
        self, job_id: int, since: Optional[float] = None, card: Optional[int] = None
    ) -> list[DeviceSample]:
        """A job's card samples in time order; `since` (a time) returns only newer ones."""
        sql, params = "SELECT * FROM device_samples WHERE job_id = ?", [job_id]
        if since is not None:
            sql += " AND time > ?"
            params.append(since)
        if card is not None:
            sql += " AND card = ?"
            params.append(card)
        cols = [f.name for f in fields(DeviceSample)]
        return [DeviceSample(**{c: r[c] for c in cols}) for r in self.query(sql + " ORDER BY id", params)]


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    """Python values → column values (Status → text, lists → JSON)."""
    out = {}
    for k, v in values.items():
        if isinstance(v, Status):
            v = v.value
        elif isinstance(v, (list, tuple)):
            v = json.dumps(list(v))
        out[k] = v
    return out
