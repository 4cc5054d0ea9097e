"""The job store's schema: named migrations recorded in the database, and the connection settings.

Opening a store sets `busy_timeout` before anything else, turns WAL on and applies the named migrations
the file lacks (an older database is upgraded on open; a newer one is refused). Every read-then-write runs
in :func:`immediate` (`BEGIN IMMEDIATE`), so two writers never act on the same stale read.

Tables (see MIGRATIONS for the exact columns):
  jobs            one row per job: request (name, kind, preset, engine argv, device, cards, executor), status,
                  the current attempt's number, progress, the latest metrics and the best results (so a list
                  never scans history)
  attempts        one row per attempt of a job (job_id, number): the executor and its handle (JSON), cards
                  granted, supervisor and engine pids with their start times, run token, heartbeat, resume_from,
                  started/finished, exit code, error, how it ended (status), stream offsets, stall and ETA
                  bookkeeping (0010_attempts moved these off `jobs`; the old columns stay there, unread, for a
                  supervisor of an earlier version that still runs: triggers carry its writes over)
  metrics         one row per engine LOG record: job, attempt, time, epoch, iteration, phase, values (JSON)
  claims          (device, card) → job: the cards in use; the primary key makes a double grant impossible
  device_samples  per card and time: utilisation, memory, temperature, power (retention-limited), and the
                  node holding the card (multi-node jobs; NULL for this host)
  job_ids         the highest job id ever given (ids are never reused, even after `jobs rm`)
  job_changes     one counter every change of a job takes (0011): jobs.change_seq holds its last value
  job_tombstones  removed jobs' ids with the counter's value at their removal (what a poll must drop)
  job_search      FTS5 trigram index of the text the app's filter searches, per job (0014; absent where
                  SQLite has no FTS5)
  _migrations     the names of the applied migrations
Later columns of jobs: notify_cmd (JSON argv of the job's hook), on_stall (notify|cancel), wait_reason (why
a queued job is not granted cards, e.g. a card busy outside rn50tui), note; of attempts: last_progress_at
(the last training iteration, validation step or checkpoint), stalled_at (set while flagged stalled), eta_end
(when the supervisor predicts the job ends, from its own timings: rn50tui/jobs/policy/eta.py); of jobs
again: note (the engine's warning, input-bound verdict or reason for ending), time_to_best (JSON: the training
time to each new best top-1, from the engine's STATUS best records; rn50tui/time_to_accuracy.py reads it);
priority (higher first), sweep_id and sweep_values (0012_queue, with the tables `dependencies` (job → the
jobs it waits for) and `sweeps` (id, name, parallel limit)).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import sqlite_utils

from engine.diskspace import MiB, free_bytes
from rn50tui.jobs.core.errors import StoreError, StoreMissing

BUSY_TIMEOUT_S = 30.0
FULL_DISK_BYTES = 4 << 20  # below this, a store that cannot open is blamed on the disk
DB_ENV = "RN50TUI_DB"


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


@migration("0003_executors")
def _m0003_executors(db: sqlite_utils.Database) -> None:
    # Rows written before executors ran under the local supervisor; the handle is the executor's own JSON.
    db["jobs"].add_column("executor", str, not_null_default="local")
    db["jobs"].add_column("executor_handle", str)


@migration("0004_sample_nodes")
def _m0004_sample_nodes(db: sqlite_utils.Database) -> None:
    # The node a card belongs to, for jobs spanning machines (Slurm); NULL: this host's card.
    db["device_samples"].add_column("node", str)


@migration("0005_stall_notify_wait")
def _m0005_stall_notify_wait(db: sqlite_utils.Database) -> None:
    """Issue 14: the per-job notify hook and stall policy, the stall flag, why a queued job waits, the ETA."""
    for column, kind in (("notify_cmd", str), ("on_stall", str), ("last_progress_at", float),
                         ("stalled_at", float), ("wait_reason", str), ("eta_end", float)):  # fmt: skip
        db["jobs"].add_column(column, kind)


@migration("0006_job_note")
def _m0006_job_note(db: sqlite_utils.Database) -> None:
    db["jobs"].add_column("note", str)  # the engine's reason for ending (early stopping), not an error


@migration("0007_hung_notified")
def _m0007_hung_notified(db: sqlite_utils.Database) -> None:
    # The heartbeat of a hung supervisor a client already reported: its hook runs once per hang.
    db["jobs"].add_column("hung_notified", float)


@migration("0008_job_ids")
def _m0008_job_ids(db: sqlite_utils.Database) -> None:
    # The highest id ever given: `jobs rm` of the newest job must not let the next submit reuse its id
    # (and with it runs/<id>/, its checkpoints and its raport.json).
    db["job_ids"].create({"name": str, "last_id": int}, pk="name")
    last = db.execute("SELECT COALESCE(MAX(id), 0) FROM jobs").fetchone()[0]
    db.execute("INSERT INTO job_ids (name, last_id) VALUES ('jobs', ?)", [last])


@migration("0009_time_to_best")
def _m0009_time_to_best(db: sqlite_utils.Database) -> None:
    # JSON [{top1, epoch, train_seconds}, …]: the engine's STATUS best records (time to each new best top-1)
    db["jobs"].add_column("time_to_best", str)


# The columns of one attempt (rn50tui.jobs.core.records.Attempt), moved out of `jobs` by 0010_attempts.
ATTEMPT_COLUMNS: dict[str, type] = {
    "executor": str, "executor_handle": str, "cards_granted": str, "supervisor_pid": int,
    "supervisor_started": float, "engine_pid": int, "engine_started": float, "run_token": str,
    "heartbeat": float, "cancel_requested": float, "resume_from": str, "started_at": float,
    "finished_at": float, "exit_code": int, "error": str, "raport_offset": int, "stderr_offset": int,
    "last_progress_at": float, "stalled_at": float, "eta_end": float, "hung_notified": float,
}  # fmt: skip
# The job columns of earlier versions that 0010 moved; a supervisor of that version still running keeps
# writing them, and a trigger carries its writes to its attempt's row (see _m0010_attempts).
LEGACY_JOB_COLUMNS = tuple(c for c in ATTEMPT_COLUMNS if c != "executor")


@migration("0010_attempts")
def _m0010_attempts(db: sqlite_utils.Database) -> None:
    """Issue 23: one row per attempt of a job (who ran it, where, from which checkpoint, how it ended)."""
    db["attempts"].create(
        {"job_id": int, "number": int, "status": str, "queued_at": float, **ATTEMPT_COLUMNS},
        pk=("job_id", "number"),
        not_null={"executor", "raport_offset", "stderr_offset"},
        defaults={"raport_offset": 0, "stderr_offset": 0},
        foreign_keys=[("job_id", "jobs", "id")],
    )
    moved = ", ".join(ATTEMPT_COLUMNS)
    # The current attempt keeps every column it had; how it ended is the job's status once final.
    db.execute(
        f"INSERT INTO attempts (job_id, number, status, queued_at, {moved}) SELECT id, attempt, CASE WHEN"
        f" status IN ('completed', 'failed', 'cancelled', 'interrupted') THEN status END, queued_at, {moved}"
        " FROM jobs"
    )
    # Earlier attempts left only their metric rows: their span, and no word on how they ended.
    db.execute(
        "INSERT INTO attempts (job_id, number, executor, started_at, finished_at) SELECT m.job_id,"
        " m.attempt, j.executor, min(m.time), max(m.time) FROM metrics m JOIN jobs j ON j.id = m.job_id"
        " WHERE m.attempt < j.attempt GROUP BY m.job_id, m.attempt"
    )
    # The job's totals over its attempts (what `jobs list` shows without reading them): JobStore keeps them.
    db["jobs"].add_column("first_started_at", float)
    db["jobs"].add_column("ran_s", float)
    db.execute(
        "UPDATE jobs SET first_started_at = (SELECT min(started_at) FROM attempts WHERE job_id = jobs.id),"
        " ran_s = (SELECT sum(finished_at - started_at) FROM attempts WHERE job_id = jobs.id)"
    )
    # only the values it changed: the rest of the row is as old as the migration
    sets = ", ".join(
        f"{c} = CASE WHEN NEW.{c} IS NOT OLD.{c} THEN NEW.{c} ELSE {c} END" for c in LEGACY_JOB_COLUMNS
    )
    db.execute(
        f"CREATE TRIGGER jobs_legacy_writer AFTER UPDATE OF {', '.join(LEGACY_JOB_COLUMNS)} ON jobs BEGIN"
        f" UPDATE attempts SET {sets} WHERE job_id = NEW.id AND number = NEW.attempt; END"
    )
    # ...records how its attempt ended on the job's row (jobs of today's code have no supervisor_pid there)...
    db.execute(
        "CREATE TRIGGER jobs_legacy_ending AFTER UPDATE OF status ON jobs WHEN NEW.supervisor_pid IS NOT NULL"
        " AND NEW.status IN ('completed', 'failed', 'cancelled', 'interrupted') BEGIN UPDATE attempts SET"
        " status = NEW.status WHERE job_id = NEW.id AND number = NEW.attempt; END"
    )
    # ...and reads a cancel from its job's row.
    db.execute(
        "CREATE TRIGGER attempts_cancel_to_legacy AFTER UPDATE OF cancel_requested ON attempts BEGIN"
        " UPDATE jobs SET cancel_requested = NEW.cancel_requested WHERE id = NEW.job_id"
        " AND attempt = NEW.number AND supervisor_pid IS NOT NULL; END"
    )


@migration("0011_change_seq")
def _m0011_change_seq(db: sqlite_utils.Database) -> None:
    """Issue 29: the app polls only what changed. Every insert, update or delete of a job (or of one of
    its attempts) takes the next number of one counter; the job's row keeps it (`change_seq`, indexed) and
    a removed job leaves a tombstone, so `changed_since(token)` is one index range read. Also the indexes
    a windowed or filtered list and pruning read through."""
    db["job_changes"].create({"name": str, "seq": int}, pk="name")
    db.execute("INSERT INTO job_changes (name, seq) VALUES ('jobs', 0)")
    db["job_tombstones"].create({"job_id": int, "seq": int}, pk="job_id")
    db["jobs"].add_column("change_seq", int)
    db.execute("UPDATE jobs SET change_seq = 0")
    db.execute("CREATE INDEX jobs_change_seq ON jobs (change_seq)")
    db.execute("CREATE INDEX jobs_status_id ON jobs (status, id)")
    db.execute("CREATE INDEX tombstones_seq ON job_tombstones (seq)")
    bump = "UPDATE job_changes SET seq = seq + 1 WHERE name = 'jobs';"
    seq = "(SELECT seq FROM job_changes WHERE name = 'jobs')"
    db.execute(f"CREATE TRIGGER jobs_change_insert AFTER INSERT ON jobs BEGIN {bump}"
               f" UPDATE jobs SET change_seq = {seq} WHERE id = NEW.id; END")  # fmt: skip
    db.execute(f"CREATE TRIGGER jobs_change_update AFTER UPDATE ON jobs WHEN NEW.change_seq IS OLD.change_seq"
               f" BEGIN {bump} UPDATE jobs SET change_seq = {seq} WHERE id = NEW.id; END")  # fmt: skip
    for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW")):
        db.execute(f"CREATE TRIGGER attempts_change_{event.lower()} AFTER {event} ON attempts BEGIN {bump}"
                   f" UPDATE jobs SET change_seq = {seq} WHERE id = {row}.job_id; END")  # fmt: skip
    db.execute(f"CREATE TRIGGER jobs_change_delete AFTER DELETE ON jobs BEGIN {bump} INSERT OR REPLACE INTO"
               f" job_tombstones (job_id, seq) VALUES (OLD.id, {seq}); END")  # fmt: skip


@migration("0012_queue")
def _m0012_queue(db: sqlite_utils.Database) -> None:
    """Issue 28: dependencies between jobs, sweeps with a parallel limit, priorities."""
    db["sweeps"].create({"id": int, "name": str, "parallel": int, "created_at": float}, pk="id",
                        not_null={"name"})  # fmt: skip
    db["dependencies"].create(
        {"job_id": int, "after_id": int},
        pk=("job_id", "after_id"),
        foreign_keys=[("job_id", "jobs", "id")],
    )
    db["dependencies"].create_index(["after_id"], index_name="dependencies_after")
    db["jobs"].add_column("priority", int, not_null_default=0)
    db["jobs"].add_column("sweep_id", int)
    db["jobs"].add_column("sweep_values", str)  # JSON {key: value} of the job's point in its sweep


@migration("0013_metric_thinning")
def _m0013_metric_thinning(db: sqlite_utils.Database) -> None:
    """Issue 29: a finished job's per-iteration metrics thinned in place for the charts (JobStore.thin_metrics);
    this table says which were, so `export` reads their full resolution from raport.json instead."""
    db["metric_thinning"].create(
        {"job_id": int, "thinned_at": float, "kept": int, "removed": int}, pk="job_id"
    )


def search_text_sql(row: str) -> str:
    """SQL of the text the app's filter searches in a job `row` (an alias or NEW): '#id id name kind status
    device preset', lower-cased. The search index (0014) and the scan without it read this one expression."""
    return (f"lower('#' || {row}.id || ' ' || {row}.id || ' ' || {row}.name || ' ' || {row}.kind || ' ' ||"
            f" {row}.status || ' ' || {row}.device || ' ' || COALESCE({row}.preset, ''))")  # fmt: skip


def has_fts5(conn: sqlite3.Connection) -> bool:
    """Whether this SQLite has FTS5 with the trigram tokenizer (3.34+; some builds leave FTS5 out)."""
    try:
        conn.execute("CREATE VIRTUAL TABLE temp._fts5_probe USING fts5(x, tokenize='trigram')")
    except sqlite3.OperationalError:
        return False
    conn.execute("DROP TABLE temp._fts5_probe")
    return True


@migration("0014_job_search")
def _m0014_job_search(db: sqlite_utils.Database) -> None:
    """Issue 29: the filter's words found through an FTS5 trigram index (substring matches of 3+ characters)
    instead of a scan of every job: `job_search` holds search_text_sql() of each job under its id, kept by
    triggers on the columns it reads (a supervisor of an earlier version keeps it too). Where this SQLite
    has no FTS5 the table is not made and the filter scans, as before."""
    if not has_fts5(db.conn):
        return
    db.execute("CREATE VIRTUAL TABLE job_search USING fts5(hay, tokenize='trigram')")
    db.execute(f"INSERT INTO job_search (rowid, hay) SELECT j.id, {search_text_sql('j')} FROM jobs j")
    db.execute(f"CREATE TRIGGER job_search_insert AFTER INSERT ON jobs BEGIN INSERT INTO job_search"
               f" (rowid, hay) VALUES (NEW.id, {search_text_sql('NEW')}); END")  # fmt: skip
    db.execute(f"CREATE TRIGGER job_search_update AFTER UPDATE OF id, name, kind, status, device, preset ON jobs"
               f" BEGIN UPDATE job_search SET hay = {search_text_sql('NEW')} WHERE rowid = NEW.id; END")  # fmt: skip
    db.execute(
        "CREATE TRIGGER job_search_delete AFTER DELETE ON jobs BEGIN"
        " DELETE FROM job_search WHERE rowid = OLD.id; END"
    )


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations this database lacks, in one IMMEDIATE transaction; return their names."""
    known = [name for name, _ in MIGRATIONS]
    if "_migrations" in table_names(conn) and set(applied_migrations(conn)) == set(known):
        return []  # fast path: every open of an up-to-date store, without importing sqlite-utils
    import sqlite_utils  # only when the schema changes: it costs ~0.1 s of start-up

    db = sqlite_utils.Database(conn, execute_plugins=False)
    with immediate(conn):
        if "_migrations" not in table_names(conn):
            db["_migrations"].create({"name": str, "applied_at": float}, pk="name")
        applied = applied_migrations(conn)
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


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """The names of the migrations this database has, in name order ([] for a fresh file)."""
    if "_migrations" not in table_names(conn):
        return []
    return [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY name").fetchall()]


def migrations_of(path: str | os.PathLike[str]) -> list[str]:
    """The migrations a store file has, read without upgrading it (a read-only connection)."""
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        return applied_migrations(conn)
    finally:
        conn.close()


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
        raise StoreError(f"cannot open job store {path}: {exc}{full_disk_hint(path)}") from exc
    return conn


def full_disk_hint(path: str | os.PathLike[str], then: str = "then try again: no job is lost") -> str:
    """The words " (the disk holding it is full …)" when the disk of file `path` is nearly full, else "".

    SQLite says "disk I/O error" when a full disk leaves no room for the WAL index, and an engine that
    failed on a full disk may have had no room to say why.
    """
    free = free_bytes(Path(path).parent)
    if free is None or free >= FULL_DISK_BYTES:
        return ""
    return (f" (the disk holding it is full: {free // MiB} MiB free; free space there, e.g. old checkpoints "
            f"in the jobs' runs/ folders, {then})")  # fmt: skip


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
