"""The job store: one SQLite file (`jobs.db`), shared by every client and supervisor.

:class:`JobStore` gives typed access to the tables of :mod:`rn50tui.jobs.core.schema` as the records of
:mod:`rn50tui.jobs.core.records`; every multi-step write runs in one short IMMEDIATE transaction, and no process
is started or signalled inside one.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Optional

from rn50tui.jobs.core.errors import JobNotFound, ReadInterrupted, SubmitError, TransitionError
from rn50tui.jobs.core.records import (
    ATTEMPT_COLUMNS,
    CHART_METRICS,
    SUMMARY_COLUMNS,
    SUMMARY_FROM,
    SUMMARY_SQL,
    Attempt,
    ChartPoint,
    Claim,
    DeviceSample,
    Job,
    JobSummary,
    MetricRow,
    progress_of,
)
from rn50tui.jobs.core.schema import (
    BUSY_TIMEOUT_S,
    DB_ENV,
    MIGRATIONS,
    applied_migrations,
    connect,
    immediate,
    search_text_sql,
    table_names,
)
from rn50tui.jobs.core.states import Status, check_transition

__all__ = ["Attempt", "ChartPoint", "Claim", "DeviceSample", "Job", "JobStore", "JobSummary", "MetricRow", "MIGRATIONS", "default_db_path",
           "progress_of", "table_names"]  # fmt: skip

DEFAULT_DB = "jobs.db"
# The jobs an unfinished job still waits for (--after): pruning must keep them, or the waiting job
# would read its dependency as removed and be cancelled.
NEEDED_BY_WAITING = (
    "SELECT d.after_id FROM dependencies d JOIN jobs w ON w.id = d.job_id"
    " WHERE w.status IN ('queued', 'starting', 'running')"
)
MAX_TAKEN_SKIPS = 1000  # runs/<id>/ folders of removed jobs an insert steps over before it gives up


def default_db_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--db PATH, else $RN50TUI_DB, else ./jobs.db."""
    return Path(explicit or os.environ.get(DB_ENV) or DEFAULT_DB)


# ------------------------------------------------------------------------------------------------- store


THIN_POINTS = 2000  # records per series a thinned finished job keeps in the store, for its charts


def _interruptible(read: Callable[..., Any]) -> Callable[..., Any]:
    """A read that `JobStore.interrupt()` stops with ReadInterrupted (SQLite's own error says only
    "interrupted", which a caller could not tell from a broken store)."""

    @functools.wraps(read)
    def wrapper(self: JobStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return read(self, *args, **kwargs)
        except sqlite3.OperationalError as e:
            if str(e) == "interrupted":
                raise ReadInterrupted(f"{read.__name__} interrupted") from e
            raise

    return wrapper


class JobStore:
    """Typed access to the tables; every multi-step write in one short IMMEDIATE transaction.

    A JobStore holds one connection; give each thread its own (JobManager does).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = True, timeout: float = BUSY_TIMEOUT_S
    ) -> None:
        self.path = Path(path).resolve()
        self._db = connect(self.path, create=create, timeout=timeout)
        self._width: Optional[int] = None  # columns of `jobs`
        self._indexed: Optional[bool] = None  # whether the filter's search index (0014) exists

    def close(self) -> None:
        self._db.close()

    def interrupt(self) -> None:
        """Stop the read this store's connection runs now (from any thread): it raises ReadInterrupted. A
        no-op when none runs (SQLite forgets it), so a late call stops nothing after it."""
        self._db.interrupt()

    def settings(self) -> dict[str, Any]:
        """The connection's journal mode and busy timeout (ms), as opened."""
        return {
            "journal_mode": self._db.execute("PRAGMA journal_mode").fetchone()[0],
            "busy_timeout": self._db.execute("PRAGMA busy_timeout").fetchone()[0],
        }

    def applied_migrations(self) -> list[str]:
        return applied_migrations(self._db)

    def tables(self) -> list[str]:
        return table_names(self._db)

    def checkpoint_wal(self) -> None:
        """Fold the write-ahead log into the database file (after a bulk load)."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts (column name → value)."""
        cur = self._db.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """`with store.transaction():` — BEGIN IMMEDIATE … COMMIT."""
        return immediate(self._db)

    # ----- jobs

    def insert_job(self, *, workspace_taken: Callable[[str], bool] = lambda _: False,
                   after: Sequence[int] = (), **values: Any) -> Job:  # fmt: skip
        """Insert a queued job under an id never given before; `workspace` may use `{id}`.

        `after`: the jobs it waits for (each must exist and not have ended failed or cancelled: a
        SubmitError naming --after otherwise, and nothing is inserted).

        `workspace_taken(path)` says whether a folder already holds another run's files: an `{id}` folder
        that does is skipped (the next id is taken), a chosen folder that does, or that another job of the
        store names, is refused with a SubmitError naming it.
        """
        now = time.time()
        row = {
            "status": Status.QUEUED.value,
            "attempt": 1,
            "created_at": now,
            "queued_at": now,
            "updated_at": now,
            **values,
        }
        row = _encode({**row, "argv": list(row["argv"])})  # argv, notify_cmd: JSON
        row, first = _split(row)
        template = row["workspace"]
        with self.transaction():
            self._check_dependencies(after)
            job_id = self._next_job_id()
            if "{id}" in template:
                for _ in range(MAX_TAKEN_SKIPS):
                    if not workspace_taken(template.format(id=job_id)):
                        break
                    job_id += 1
                else:
                    raise SubmitError(
                        f"every folder from {template.format(id=job_id)} down holds another run's files"
                    )
            else:
                self._check_workspace_free(template, workspace_taken)
            row = {**row, "id": job_id, "workspace": template.format(id=job_id)}
            self._db.execute(
                f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
            self._db.execute("UPDATE job_ids SET last_id = ? WHERE name = 'jobs'", [job_id])
            self._db.executemany(
                "INSERT INTO dependencies (job_id, after_id) VALUES (?, ?)", [(job_id, a) for a in set(after)]
            )
            self._insert_attempt(
                job_id, row["attempt"], row.get("executor", "local"), row["queued_at"], first
            )
        return self.get_job(job_id)

    def check_dependencies(self, after: Sequence[int]) -> None:
        """insert_job's check of `after`, before anything is written (a sweep checks once for all)."""
        self._check_dependencies(after)

    def _check_dependencies(self, after: Sequence[int], job_id: Optional[int] = None) -> None:
        """SubmitError (field `after`) for an unknown job, one that ended failed or cancelled, or a cycle
        (a job waiting, through others, for `job_id` itself)."""
        for dep in after:
            row = self._db.execute("SELECT status FROM jobs WHERE id = ?", [dep]).fetchone()
            if row is None:
                raise SubmitError(f"--after {dep}: there is no job {dep}", field="after")
            if row[0] in (Status.FAILED.value, Status.CANCELLED.value):
                raise SubmitError(
                    f"--after {dep}: job {dep} ended {row[0]}; it will never complete", field="after"
                )
        seen, todo = set(), list(after)
        while todo:  # every job the new one waits for, through others
            dep = todo.pop()
            if dep == job_id:
                raise SubmitError(f"--after {', '.join(map(str, after))}: a cycle (job {job_id} would wait for "
                                  "itself)", field="after")  # fmt: skip
            if dep not in seen:
                seen.add(dep)
                todo += [r[0] for r in self._db.execute(
                    "SELECT after_id FROM dependencies WHERE job_id = ?", [dep]).fetchall()]  # fmt: skip

    def dependencies(self, job_id: int) -> list[tuple[int, Optional[Status]]]:
        """The jobs a job waits for, with their status (None: removed since), in id order."""
        rows = self._db.execute(
            "SELECT d.after_id, j.status FROM dependencies d LEFT JOIN jobs j ON j.id = d.after_id"
            " WHERE d.job_id = ? ORDER BY d.after_id",
            [job_id],
        ).fetchall()
        return [(dep, None if status is None else Status(status)) for dep, status in rows]

    def dependents(self, job_id: int) -> list[int]:
        """The jobs that wait for this one."""
        rows = self._db.execute(
            "SELECT job_id FROM dependencies WHERE after_id = ? ORDER BY job_id", [job_id]
        )
        return [r[0] for r in rows.fetchall()]

    def dependencies_to_settle(self) -> bool:
        """True if a queued job's dependencies changed since the scheduler last looked: one of them ended
        failed or cancelled or was removed, or every one completed while it still says it waits (a cheap
        read: reconcile runs the scheduler on it, since a cluster job's follower does not)."""
        sql = (
            "SELECT 1 FROM jobs j WHERE j.status = 'queued' AND EXISTS (SELECT 1 FROM dependencies d"
            " LEFT JOIN jobs a ON a.id = d.after_id WHERE d.job_id = j.id AND (a.id IS NULL OR a.status IN"
            " ('failed', 'cancelled') OR (j.wait_reason LIKE 'waits for%' AND NOT EXISTS (SELECT 1 FROM"
            " dependencies e JOIN jobs b ON b.id = e.after_id WHERE e.job_id = j.id AND b.status != 'completed'))))"
            " LIMIT 1"
        )
        return self._db.execute(sql).fetchone() is not None

    def all_dependencies(self) -> dict[int, list[int]]:
        """{job: [the jobs it waits for]} of every queued job that waits for any (one read)."""
        out: dict[int, list[int]] = {}
        for job_id, dep in self._db.execute(
            "SELECT d.job_id, d.after_id FROM dependencies d JOIN jobs j ON j.id = d.job_id"
            " WHERE j.status = ? ORDER BY d.job_id, d.after_id",
            [Status.QUEUED.value],
        ).fetchall():
            out.setdefault(job_id, []).append(dep)
        return out

    # ----- sweeps and priorities

    def insert_sweep(self, name: str, parallel: Optional[int]) -> int:
        """A new sweep's id."""
        cur = self._db.execute(
            "INSERT INTO sweeps (name, parallel, created_at) VALUES (?, ?, ?)", [name, parallel, time.time()]
        )
        return int(cur.lastrowid)

    def get_sweep(self, sweep_id: int) -> Optional[dict[str, Any]]:
        """{id, name, parallel, created_at} of a sweep, None if there is none."""
        rows = self._query("SELECT * FROM sweeps WHERE id = ?", [sweep_id])
        return rows[0] if rows else None

    def sweep_limits(self) -> dict[int, int]:
        """{sweep: its parallel limit} of the sweeps that have one."""
        return dict(self._db.execute("SELECT id, parallel FROM sweeps WHERE parallel IS NOT NULL").fetchall())

    def sweep_active(self) -> dict[int, int]:
        """{sweep: how many of its jobs are starting or running}."""
        return dict(self._db.execute(
            "SELECT sweep_id, count(*) FROM jobs WHERE sweep_id IS NOT NULL AND status IN (?, ?) GROUP BY sweep_id",
            [Status.STARTING.value, Status.RUNNING.value]).fetchall())  # fmt: skip

    def sweep_job_ids(self, sweep_id: int) -> list[int]:
        return [
            r[0] for r in self._db.execute("SELECT id FROM jobs WHERE sweep_id = ? ORDER BY id", [sweep_id])
        ]

    def set_priority(self, job_id: int, priority: int) -> Job:
        """Change a queued job's priority (TransitionError once it left the queue)."""
        with self.transaction():
            job = self.get_job(job_id)
            if job.status is not Status.QUEUED:
                raise TransitionError(
                    f"job {job_id} is {job.status}: only a queued job's priority can change"
                )
            self._db.execute("UPDATE jobs SET priority = ?, updated_at = ? WHERE id = ?",
                             [int(priority), time.time(), job_id])  # fmt: skip
        return self.get_job(job_id)

    def _insert_attempt(self, job_id: int, number: int, executor: str, queued_at: Optional[float],
                        values: dict[str, Any]) -> None:  # fmt: skip
        row = {"job_id": job_id, "number": number, "executor": executor, "queued_at": queued_at, **values}
        self._db.execute(
            f"INSERT INTO attempts ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )

    def new_attempt(self, job_id: int, *, expect: Sequence[Status], **values: Any) -> Job:
        """Queue the job's next attempt: one new `attempts` row (it starts clean: nothing of the last try
        carries over but where the job's raport.json was read to) and the job `queued` under its number.
        `values`: the new attempt's own columns (and the job's)."""
        now = time.time()
        with self.transaction():
            job = self.get_job(job_id)
            self.transition_locked(
                job_id, Status.QUEUED, expect, {"attempt": job.attempt + 1, "queued_at": now}
            )
            own, first = _split(_encode(values))
            first.setdefault("raport_offset", job.raport_offset)  # the file appends across attempts
            self._insert_attempt(job_id, job.attempt + 1, job.executor, now, first)
            if own:
                self.update_job(job_id, **own)
        return self.get_job(job_id)

    def attempts(self, job_id: int) -> list[Attempt]:
        """Every attempt of a job, the first first."""
        return [Attempt.from_row(r)
                for r in self._query("SELECT * FROM attempts WHERE job_id = ? ORDER BY number", [job_id])]  # fmt: skip

    def _next_job_id(self) -> int:
        """One above the highest id ever given (the table's high-water mark, or a bulk-loaded row's)."""
        (given,) = self._db.execute("SELECT last_id FROM job_ids WHERE name = 'jobs'").fetchone()
        (present,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM jobs").fetchone()
        return max(given, present) + 1

    def _check_workspace_free(self, workspace: str, workspace_taken: Callable[[str], bool]) -> None:
        owner = self._db.execute("SELECT id FROM jobs WHERE workspace = ? LIMIT 1", [workspace]).fetchone()
        if owner is not None:
            raise SubmitError(
                f"workspace {workspace} is job {owner[0]}'s: pass another --workspace "
                f"(or `rn50tui resume {owner[0]}` to continue that job)",
                field="engine_flags",
            )
        if workspace_taken(workspace):
            raise SubmitError(
                f"workspace {workspace} already holds another run's files (raport.json, checkpoints or "
                "logs): pass another --workspace, or move those files away",
                field="engine_flags",
            )

    def insert_jobs(self, rows: Sequence[dict[str, Any]]) -> None:
        """Bulk-load finished rows of `jobs` as they are (benchmarks, imports): one transaction, no checks."""
        split = [_split(_encode(r)) for r in rows]
        columns, own = list(split[0][0]), list(split[0][1])
        with self.transaction():
            self._db.executemany(
                f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                [list(job.values()) for job, _ in split],
            )
            ids = [r[0] for r in self._db.execute(f"SELECT id FROM jobs ORDER BY id DESC LIMIT {len(rows)}")]
            names = ["job_id", "number", "executor", *own]
            self._db.executemany(
                f"INSERT INTO attempts ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [[job_id, job.get("attempt", 1), job.get("executor", "local"), *a.values()]
                 for job_id, (job, a) in zip(sorted(ids), split)],
            )  # fmt: skip

    def count_jobs(self, statuses: Optional[Iterable[Status]] = None) -> int:
        """How many jobs (with these statuses): a range of the jobs_status_id index per status."""
        if statuses is None:
            return int(self._db.execute("SELECT count(*) FROM jobs").fetchone()[0])
        wanted = [Status(s).value for s in statuses]
        sql = f"SELECT count(*) FROM jobs WHERE status IN ({', '.join('?' * len(wanted))})"
        return int(self._db.execute(sql, wanted).fetchone()[0])

    def cancel_requested(self, job_id: int) -> bool:
        """True once a cancel was asked for the job (a cheap read for the supervisor's poll)."""
        row = self._db.execute(
            f"SELECT a.cancel_requested FROM {SUMMARY_FROM} WHERE j.id = ?", [job_id]
        ).fetchone()
        return bool(row and row[0])

    def find_job(self, job_id: int) -> Optional[Job]:
        jobs = self._jobs(f"SELECT j.*, a.* FROM {SUMMARY_FROM} WHERE j.id = ?", [job_id])
        return jobs[0] if jobs else None

    def _jobs(self, sql: str, params: Sequence[Any]) -> list[Job]:
        """Jobs of a `SELECT j.*, a.*` (the job's columns, then its current attempt's)."""
        cur = self._db.execute(sql, params)
        names = [d[0] for d in cur.description]
        n = self._job_width()
        return [
            Job.from_row(dict(zip(names[:n], r[:n])), dict(zip(names[n:], r[n:]))) for r in cur.fetchall()
        ]

    def _job_width(self) -> int:
        if self._width is None:
            self._width = len(self._db.execute("SELECT * FROM jobs LIMIT 0").description)
        return self._width

    def get_job(self, job_id: int) -> Job:
        job = self.find_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list_jobs(
        self, statuses: Optional[Iterable[Status]] = None, limit: Optional[int] = None
    ) -> list[Job]:
        """Jobs in id order (newest last), optionally only those with the given statuses."""
        sql, params = _jobs_query("j.*, a.*", statuses, limit)
        return self._jobs(sql, params)

    def job_summaries(
        self,
        statuses: Optional[Iterable[Status]] = None,
        limit: Optional[int] = None,
        recent: Optional[int] = None,
        sweep: Optional[int] = None,
    ) -> list[JobSummary]:
        """list_jobs() for big lists, as JobSummary tuples in id order.

        `recent`: every active job (queued, starting, running) plus the newest `recent` of the rest, as
        `docker ps -a` would show by default; None lists every job (or those with `statuses`).
        `sweep`: only that sweep's jobs (all of them).
        """
        if sweep is not None:
            sql = f"SELECT {', '.join(SUMMARY_SQL)} FROM {SUMMARY_FROM} WHERE j.sweep_id = ? ORDER BY j.id"
            rows = [JobSummary.from_row(r) for r in self._db.execute(sql, [int(sweep)]).fetchall()]
            return [r for r in rows if statuses is None or r.status in set(statuses)]
        if recent is not None:
            active = [s.value for s in (Status.QUEUED, Status.STARTING, Status.RUNNING)]
            sql = (
                f"SELECT {', '.join(SUMMARY_SQL)} FROM {SUMMARY_FROM} WHERE j.id IN (SELECT id FROM jobs"
                " WHERE status IN (?, ?, ?) UNION ALL SELECT * FROM (SELECT id FROM jobs ORDER BY id DESC LIMIT ?))"
                " ORDER BY j.id"  # two index reads: no scan of every finished job
            )
            params: list[Any] = [*active, int(recent)]
        else:
            sql, params = _jobs_query(", ".join(SUMMARY_SQL), statuses, limit)
        return [JobSummary.from_row(row) for row in self._db.execute(sql, params).fetchall()]

    # ----- windows and changes (issue 29: a list reads only what it shows, a poll only what changed)

    @_interruptible
    def change_token(self) -> int:
        """The store's change counter now (0011_change_seq): pass it to changed_since() later."""
        return int(self._db.execute("SELECT seq FROM job_changes WHERE name = 'jobs'").fetchone()[0])

    @_interruptible
    def changed_since(self, token: int) -> tuple[int, list[Job], list[int]]:
        """(the token now, the jobs changed after `token`, the ids removed after it): two index range reads
        (jobs_change_seq, tombstones_seq), however many jobs the store holds."""
        now = self.change_token()
        if now == token:
            return now, [], []
        jobs = self._jobs(  # the ids through the jobs_change_seq index (`j.change_seq > ? ORDER BY j.id` made
            # SQLite walk every row in id order instead: 25 ms a poll at 100,000 jobs)
            f"SELECT j.*, a.* FROM {SUMMARY_FROM} WHERE j.id IN (SELECT id FROM jobs WHERE change_seq > ?)"
            " ORDER BY j.id",
            [int(token)],
        )
        gone = [
            r[0] for r in self._db.execute("SELECT job_id FROM job_tombstones WHERE seq > ?", [int(token)])
        ]
        return now, jobs, [jid for jid in gone if all(j.id != jid for j in jobs)]

    @_interruptible
    def job_window(self, *, query: str = "", sort: str = "id", reverse: bool = False, offset: int = 0,
                   limit: int = 200, active: bool = True) -> tuple[list[Job], int]:  # fmt: skip
        """One page of the jobs a table shows, filtered and ordered here, and how many match in all.

        `query`: words that must each appear in the job's id, name, kind, status, device or preset (the
        app's filter). `sort`: a JOB_SORT key. The page is the first `limit` jobs after `offset` in that
        order — for the default order (id ascending) the newest, so a page is always the recent end —
        plus, with `active`, every queued, starting or running job that matches.
        """
        where, params = self._filter_sql(query)
        key = JOB_SORT.get(sort, "j.id")
        direction = "DESC" if reverse or key == "j.id" else "ASC"  # by id, either way: the newest first
        # by id: the rowid's own order (no sort, no scan); by another column: unknown values last
        order = (
            f"j.id {direction}"
            if key == "j.id"
            else f"({key}) IS NULL, ({key}) {direction}, j.id {direction}"
        )
        # the order is found over ids alone (a narrow sort, 2-3x faster than over whole rows), joined to
        # the attempts only when the sort reads them; then the page's rows are read by id
        source = SUMMARY_FROM if "a." in key else "jobs j"
        if where:  # a filter: its matches' ids in order, so their count comes too
            ids = [
                r[0] for r in self._db.execute(f"SELECT j.id FROM {source}{where} ORDER BY {order}", params)
            ]
            total: Optional[int] = len(ids)
            chosen = ids[int(offset) : int(offset) + int(limit)]
        else:
            total = None
            chosen = [r[0] for r in self._db.execute(f"SELECT j.id FROM {source} ORDER BY {order} LIMIT ? OFFSET ?",
                                                     [int(limit), int(offset)])]  # fmt: skip
        page = self._jobs_by_id(chosen)
        if active:
            seen = {j.id for j in page}
            statuses = ", ".join(f"'{s.value}'" for s in ACTIVE_STATUSES)
            glue = " AND" if where else " WHERE"
            page += [j for j in self._jobs(f"SELECT j.*, a.* FROM {SUMMARY_FROM}{where}{glue} j.status IN"
                                           f" ({statuses}) ORDER BY j.id", params) if j.id not in seen]  # fmt: skip
        return page, self.count_matching(query) if total is None else total

    def _jobs_by_id(self, ids: Sequence[int]) -> list[Job]:
        """The jobs of these ids, in this order."""
        if not ids:
            return []
        rank = {jid: i for i, jid in enumerate(ids)}
        jobs = self._jobs(
            f"SELECT j.*, a.* FROM {SUMMARY_FROM} WHERE j.id IN ({', '.join('?' * len(ids))})", ids
        )
        return sorted(jobs, key=lambda j: rank[j.id])

    def _filter_sql(self, query: str) -> tuple[str, list[Any]]:
        """` WHERE …` keeping the jobs whose id, name, kind, status, device or preset hold every word."""
        return _search_sql(query.lower().split(), self._has_search_index())

    def _has_search_index(self) -> bool:
        """Whether the filter's search index (0014) exists: asked once (no SQLite without FTS5 gains it)."""
        if self._indexed is None:
            self._indexed = "job_search" in table_names(self._db)
        return self._indexed

    @_interruptible
    def count_matching(self, query: str = "") -> int:
        """How many jobs hold every word of `query` (see job_window); all of them for ""."""
        where, params = self._filter_sql(query)
        return int(self._db.execute(f"SELECT count(*) FROM jobs j{where}", params).fetchone()[0])

    def iter_summaries(
        self, statuses: Optional[Iterable[Status]] = None, batch: int = 1000
    ) -> Iterator[JobSummary]:
        """Every job (or those with `statuses`) as JobSummary in id order, read in batches as it is used
        (`jobs list --all --json` writes each before reading the next)."""
        where, params = "", []
        if statuses is not None:
            wanted = [Status(s).value for s in statuses]
            where, params = f" AND j.status IN ({', '.join('?' * len(wanted))})", wanted
        cur = self._db.execute(f"SELECT {', '.join(SUMMARY_SQL)} FROM {SUMMARY_FROM} WHERE 1{where} ORDER BY j.id",
                               params)  # fmt: skip
        while rows := cur.fetchmany(batch):
            yield from map(JobSummary.from_row, rows)

    def prunable_jobs(self, older_than: float, statuses: Optional[Iterable[Status]] = None) -> list[int]:
        """Ids of the finished jobs (never an active one) that ended — or, never started, were created —
        before the time `older_than`, optionally only those with `statuses`; the oldest first."""
        finished = [s.value for s in Status if s.terminal]
        if statuses is not None:
            finished = [Status(s).value for s in statuses if Status(s).terminal]
        if not finished:
            return []
        rows = self._db.execute(
            f"SELECT j.id FROM {SUMMARY_FROM} WHERE j.status IN ({', '.join('?' * len(finished))})"
            " AND COALESCE(a.finished_at, j.finished_at, j.updated_at, j.created_at) < ?"
            f" AND j.id NOT IN ({NEEDED_BY_WAITING}) ORDER BY j.id",
            [*finished, float(older_than)],
        ).fetchall()
        return [r[0] for r in rows]

    def delete_jobs(self, job_ids: Sequence[int], batch: int = 500) -> int:
        """Remove finished jobs with their rows, a batch per short transaction (others may write between);
        a job found active by then is kept. Returns how many went."""
        removed = 0
        finished = ", ".join(f"'{s.value}'" for s in Status if s.terminal)
        tables = self.child_tables()
        for start in range(0, len(job_ids), batch):
            chunk = [int(j) for j in job_ids[start : start + batch]]
            with self.transaction():
                marks = ", ".join("?" * len(chunk))
                ids = [r[0] for r in self._db.execute(
                    f"SELECT id FROM jobs WHERE id IN ({marks}) AND status IN ({finished})"
                    f" AND id NOT IN (SELECT job_id FROM claims) AND id NOT IN ({NEEDED_BY_WAITING})", chunk)]  # fmt: skip
                if not ids:
                    continue
                marks = ", ".join("?" * len(ids))
                for table in tables:
                    self._db.execute(f"DELETE FROM {table} WHERE job_id IN ({marks})", ids)
                self._db.execute(f"DELETE FROM jobs WHERE id IN ({marks})", ids)
                removed += len(ids)
        return removed

    def vacuum(self) -> tuple[int, int]:
        """Give the space of removed rows back to the disk (VACUUM, the WAL folded in before and after);
        (bytes before, bytes after). Other clients wait on the lock while it runs."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file's size with every commit in it
        before = self.path.stat().st_size
        if self._has_search_index():  # removed jobs' index entries are merged away, not kept
            self._db.execute("INSERT INTO job_search (job_search) VALUES ('optimize')")
        self._db.execute("VACUUM")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return before, self.path.stat().st_size

    def update_job(self, job_id: int, **values: Any) -> None:
        """Set columns of one job and of its current attempt (its own columns: Attempt's) — no status
        check; for the owner of those columns."""
        values["updated_at"] = time.time()
        own, attempt = _split(_encode(values))
        if attempt:
            sets = ", ".join(f"{k} = ?" for k in attempt)
            self._db.execute(
                f"UPDATE attempts SET {sets} WHERE job_id = ? AND number = (SELECT attempt FROM jobs WHERE id = ?)",
                [*attempt.values(), job_id, job_id],
            )
        sets = ", ".join(f"{k} = ?" for k in own)
        self._db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*own.values(), job_id])

    def update_attempt(self, job_id: int, number: int, **values: Any) -> None:
        """Set columns of one attempt (its owner's: a stale writer cannot touch a newer attempt)."""
        values = _encode(values)
        sets = ", ".join(f"{k} = ?" for k in values)
        self._db.execute(
            f"UPDATE attempts SET {sets} WHERE job_id = ? AND number = ?", [*values.values(), job_id, number]
        )

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
        if new.terminal:  # how this attempt ended; a resumed job's earlier attempts keep theirs
            self.update_attempt(job_id, job.attempt, status=new.value)
        self.update_job(job_id, status=new.value, **values)
        if new.terminal or new is Status.RUNNING:
            self._db.execute(  # the totals over every attempt, kept on the job for the lists
                "UPDATE jobs SET first_started_at = (SELECT min(started_at) FROM attempts WHERE job_id = ?),"
                " ran_s = (SELECT sum(finished_at - started_at) FROM attempts WHERE job_id = ?) WHERE id = ?",
                [job_id, job_id, job_id],
            )
        return job

    def set_executor_handle(self, job_id: int, handle: dict[str, Any]) -> None:
        """Record the executor's own handle of the job's attempt (opaque JSON to everyone else)."""
        self.update_job(job_id, executor_handle=handle)

    def has_queued(self) -> bool:
        """True if any job waits in the queue (cheap: the scheduler's common case is "nothing")."""
        sql = "SELECT 1 FROM jobs WHERE status = ? LIMIT 1"  # jobs_status index
        return self._db.execute(sql, [Status.QUEUED.value]).fetchone() is not None

    def delete_job(self, job_id: int) -> None:
        """Remove a job with its metrics and samples (the caller checked it may go)."""
        with self.transaction():
            for table in self.child_tables():
                self._db.execute(f"DELETE FROM {table} WHERE job_id = ?", [job_id])
            self._db.execute("DELETE FROM jobs WHERE id = ?", [job_id])

    def child_tables(self) -> list[str]:
        tables = ("metrics", "claims", "device_samples", "attempts", "dependencies", "metric_thinning")
        return [t for t in tables if t in table_names(self._db)]

    def integrity_check(self) -> list[str]:
        """SQLite's own check of the file: ["ok"] when the store is intact."""
        return [row[0] for row in self._db.execute("PRAGMA integrity_check").fetchall()]

    # ----- claims

    def claims(self) -> list[Claim]:
        return [Claim(**r) for r in self._query("SELECT * FROM claims ORDER BY device, card")]

    def claims_of(self, job_id: int) -> list[Claim]:
        return [
            Claim(**r) for r in self._query("SELECT * FROM claims WHERE job_id = ? ORDER BY card", [job_id])
        ]

    def add_claims(self, job_id: int, device: str, cards: Iterable[int], now: float) -> None:
        """Claim these cards for the job (call inside a transaction; a card already held raises)."""
        self._db.executemany(
            "INSERT INTO claims (device, card, job_id, claimed_at) VALUES (?, ?, ?, ?)",
            [(device, card, job_id, now) for card in cards],
        )

    def holders(self) -> dict[tuple[str, int], str]:
        """Which job holds each claimed card: {(kind, index): "job 12 (demo)"}, in one read."""
        rows = self._db.execute(
            "SELECT c.device, c.card, c.job_id, j.name FROM claims c LEFT JOIN jobs j ON j.id = c.job_id"
            " ORDER BY c.device, c.card"
        ).fetchall()
        return {(device, card): f"job {job_id}" + (f" ({name})" if name is not None else "")
                for device, card, job_id, name in rows}  # fmt: skip

    def release_claims(self, job_id: int) -> None:
        self._db.execute("DELETE FROM claims WHERE job_id = ?", [job_id])

    # ----- metrics

    def add_metrics(
        self, rows: Sequence[tuple[int, int, float, Optional[int], Optional[int], str, str]]
    ) -> None:
        """Insert (job_id, attempt, time, epoch, iteration, phase, values-json) rows; call inside a transaction."""
        self._db.executemany(
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
            for r in self._query(sql, params)
        ]

    def chart_points(self, job_id: int, since_id: int = 0, limit: int = 250_000) -> list[ChartPoint]:
        """Train and epoch records newer than `since_id` with the CHART_METRICS, oldest first, at most `limit`."""
        columns = ", ".join(f"json_extract(data, '$.\"{name}\"')" for name in CHART_METRICS)
        rows = self._db.execute(
            f"SELECT id, attempt, time, epoch, iteration, phase, {columns} FROM metrics"
            " WHERE job_id = ? AND id > ? AND phase IN ('train', 'epoch') ORDER BY id LIMIT ?",
            [job_id, since_id, limit],
        ).fetchall()
        return list(map(ChartPoint._make, rows))

    def chart_record_count(self, job_id: int) -> int:
        """How many train and epoch records the job has (what chart_points_sampled stands for)."""
        sql = "SELECT count(*) FROM metrics WHERE job_id = ? AND phase IN ('train', 'epoch')"
        return int(self._db.execute(sql, [job_id]).fetchone()[0])

    def chart_points_sampled(self, job_id: int, points: int = 2000) -> list[ChartPoint]:
        """A job's chart records downsampled for display, oldest first: every epoch record and at most about
        `points` training records, evenly spaced in order (the first of each bucket, the newest always),
        bucketed here so only the kept rows' JSON is read. Full resolution stays in the store (metrics(),
        `rn50tui export`) and in the job's raport.json."""
        columns = ", ".join(f"json_extract(data, '$.\"{name}\"')" for name in CHART_METRICS)
        k = max(1, int(points))
        rows = self._db.execute(
            f"SELECT id, attempt, time, epoch, iteration, phase, {columns} FROM metrics WHERE id IN ("
            " SELECT id FROM (SELECT id, phase, row_number() OVER (PARTITION BY phase ORDER BY id) AS rn,"
            " count(*) OVER (PARTITION BY phase) AS n FROM metrics WHERE job_id = ? AND phase IN ('train', 'epoch'))"
            " WHERE phase = 'epoch' OR rn = n OR (rn - 1) % ((n + ? - 1) / ?) = 0) ORDER BY id",
            [job_id, k, k],
        ).fetchall()
        return list(map(ChartPoint._make, rows))

    THIN_PHASES = ("train", "val")  # the per-iteration records (-p): epoch and run records always stay

    def thin_metrics(self, job_id: int, points: int = THIN_POINTS) -> int:
        """Thin a finished job's per-iteration records in place to about `points` per phase (train, val):
        each attempt's first and last, the lowest training loss and an even spread stay; epoch and summary
        records all stay. Recorded in `metric_thinning` (export reads the full resolution from the run's
        raport.json). Returns the rows removed (0: the job is active, or has no more than ~points)."""
        k = max(2, int(points))
        with self.transaction():
            job = self.find_job(job_id)
            if job is None or not job.status.terminal:
                return 0
            marks = ", ".join("?" * len(self.THIN_PHASES))
            kept = (
                f"SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY phase ORDER BY id) AS rn,"
                f" count(*) OVER (PARTITION BY phase) AS n,"
                f" row_number() OVER (PARTITION BY phase, attempt ORDER BY id) AS arn,"
                f" count(*) OVER (PARTITION BY phase, attempt) AS an FROM metrics WHERE job_id = ? AND phase IN ({marks}))"
                f" WHERE arn = 1 OR arn = an OR n <= ? OR (rn - 1) % ((n + ? - 1) / ?) = 0"
                f" UNION SELECT * FROM (SELECT id FROM metrics WHERE job_id = ? AND phase = 'train'"
                f" AND json_extract(data, '$.\"train.loss\"') IS NOT NULL"
                f" ORDER BY json_extract(data, '$.\"train.loss\"'), id LIMIT 1)"
            )
            params = [job_id, *self.THIN_PHASES, k, k, k, job_id]
            cur = self._db.execute(
                f"DELETE FROM metrics WHERE job_id = ? AND phase IN ({marks}) AND id NOT IN ({kept})",
                [job_id, *self.THIN_PHASES, *params],
            )
            removed = int(cur.rowcount or 0)
            if removed:
                left = self.metric_count(job_id)
                before = self.thinned(job_id)
                total_removed = removed + (before["removed"] if before else 0)
                self._db.execute(
                    "INSERT OR REPLACE INTO metric_thinning (job_id, thinned_at, kept, removed) VALUES (?, ?, ?, ?)",
                    [job_id, time.time(), left, total_removed],
                )
            return removed

    def thinned(self, job_id: int) -> Optional[dict[str, Any]]:
        """{thinned_at, kept, removed} when the job's metrics were thinned (thin_metrics), else None."""
        row = self._db.execute(
            "SELECT thinned_at, kept, removed FROM metric_thinning WHERE job_id = ?", [job_id]
        ).fetchone()
        return None if row is None else {"thinned_at": row[0], "kept": row[1], "removed": row[2]}

    def thinnable_jobs(self, points: int = THIN_POINTS) -> list[int]:
        """Finished jobs with more than 2 × `points` metric records, not thinned yet: one count per job through
        the metrics_job index (never a scan of every metric row)."""
        finished = [s.value for s in Status if s.terminal]
        rows = self._db.execute(
            f"SELECT j.id FROM jobs j WHERE j.status IN ({', '.join('?' * len(finished))})"
            " AND j.id NOT IN (SELECT job_id FROM metric_thinning)"
            " AND (SELECT count(*) FROM metrics m WHERE m.job_id = j.id) > ? ORDER BY j.id",
            [*finished, 2 * int(points)],
        ).fetchall()
        return [r[0] for r in rows]

    def last_metric(self, job_id: int, phase: str) -> Optional[MetricRow]:
        """The job's newest metric record of `phase` ('train': its raw last -p window), None if none."""
        rows = self._query(
            "SELECT * FROM metrics WHERE job_id = ? AND phase = ? ORDER BY id DESC LIMIT 1", [job_id, phase]
        )
        if not rows:
            return None
        r = rows[0]
        return MetricRow(r["id"], r["job_id"], r["attempt"], r["time"], r["epoch"], r["iteration"], r["phase"],
                         json.loads(r["data"]))  # fmt: skip

    def metric_count(self, job_id: int, attempt: Optional[int] = None) -> int:
        sql, params = "SELECT count(*) FROM metrics WHERE job_id = ?", [job_id]
        if attempt is not None:
            sql += " AND attempt = ?"
            params.append(attempt)
        return int(self._db.execute(sql, params).fetchone()[0])

    # ----- device samples

    def add_samples(self, job_id: int, samples: Sequence[DeviceSample]) -> None:
        """Insert one round of card samples (call inside a transaction with the heartbeat)."""
        self._db.executemany(
            "INSERT INTO device_samples (job_id, time, device, card, name, util_percent, mem_used_mib,"
            " mem_total_mib, temp_c, power_w, power_cap_w, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(job_id, *s.as_tuple()) for s in samples],
        )

    def prune_samples(self, job_id: int, keep: int) -> None:
        """Keep only the newest `keep` samples of a job (the retention limit)."""
        self._db.execute(
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
        return [DeviceSample(**{c: r[c] for c in cols}) for r in self._query(sql + " ORDER BY id", params)]

    # ----- the Prometheus endpoint (rn50tui/metrics_server.py): three indexed reads per scrape, no cache

    @_interruptible
    def status_counts(self) -> dict[str, int]:
        """Jobs per status, from the jobs_status index alone (10,000 finished jobs cost one index scan)."""
        return dict(self._db.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())

    def running_with_data_times(self) -> list[tuple[JobSummary, Optional[float], Optional[float]]]:
        """Running jobs, each with train.data_time and train.compute_time of its attempt's last training
        window (None before its first); one row per job through the metrics_job index, newest row first."""
        columns = ", ".join(SUMMARY_SQL)
        rows = self._db.execute(
            f"SELECT {columns}, json_extract(m.data, '$.\"train.data_time\"'),"
            f" json_extract(m.data, '$.\"train.compute_time\"') FROM {SUMMARY_FROM} LEFT JOIN metrics m ON m.id ="
            " (SELECT id FROM metrics WHERE job_id = j.id AND attempt = j.attempt AND phase = 'train'"
            " ORDER BY id DESC LIMIT 1) WHERE j.status = ? ORDER BY j.id",
            [Status.RUNNING.value],
        ).fetchall()
        n = len(SUMMARY_COLUMNS)
        return [(JobSummary.from_row(r[:n]), r[n], r[n + 1]) for r in rows]

    def latest_running_samples(self, window_s: float) -> list[tuple[int, DeviceSample]]:
        """(job id, newest sample) of each card of each running job, among the job's samples no older than
        `window_s` before its newest one (the last rounds on every node); the device_samples_job index
        bounds each job's range, and SQLite's max() picks each card's newest row."""
        cols = ", ".join(f"s.{f.name}" for f in fields(DeviceSample))
        rows = self._db.execute(
            f"SELECT s.job_id, {cols}, max(s.id) FROM jobs j JOIN device_samples s ON s.job_id = j.id"
            " AND s.time >= (SELECT max(time) FROM device_samples WHERE job_id = j.id) - ?"
            " WHERE j.status = ? GROUP BY s.job_id, s.node, s.device, s.card ORDER BY s.job_id, s.card",
            [window_s, Status.RUNNING.value],
        ).fetchall()
        return [(r[0], DeviceSample(*r[1:-1])) for r in rows]


def _jobs_query(
    columns: str, statuses: Optional[Iterable[Status]], limit: Optional[int]
) -> tuple[str, list[Any]]:
    """SELECT `columns` of the jobs with these statuses (all when None), the last `limit`, in id order."""
    sql, params = f"SELECT {columns} FROM {SUMMARY_FROM}", []
    if statuses is not None:
        wanted = [Status(s).value for s in statuses]
        sql += f" WHERE j.status IN ({', '.join('?' * len(wanted))})"
        params += wanted
    if limit is not None:  # the last `limit` ids, in id order
        sql += f"{' AND' if statuses is not None else ' WHERE'} j.id IN (SELECT id FROM jobs"
        sql += f"{' WHERE status IN (' + ', '.join('?' * len(wanted)) + ')' if statuses is not None else ''}"
        sql += f" ORDER BY id DESC LIMIT {int(limit)})"
        params += wanted if statuses is not None else []
    return sql + " ORDER BY j.id", params


ACTIVE_STATUSES = (Status.QUEUED, Status.STARTING, Status.RUNNING)
# The app's sortable columns as SQL over `SUMMARY_FROM` (a table re-sorts the rows it holds the same way).
_PROGRESS = ("CASE WHEN j.status = 'completed' THEN 1.0 WHEN j.epochs > 0 AND j.iters_per_epoch > 0 AND j.epoch > 0"
             " THEN ((j.epoch - 1) * j.iters_per_epoch + COALESCE(j.iteration, 0)) * 1.0 / (j.epochs * j.iters_per_epoch)"
             " END")  # fmt: skip
JOB_SORT = {
    "id": "j.id", "name": "lower(j.name)", "kind": "j.kind", "status": "j.status", "cards": "j.cards_granted",
    "epoch": _PROGRESS, "progress": _PROGRESS, "loss": "j.loss", "top1": "j.top1", "ips": "j.ips",
    "eta": "a.eta_end", "started": "COALESCE(j.first_started_at, a.started_at)", "duration": "j.ran_s",
}  # fmt: skip
SEARCH_MIN = 3  # the trigram index finds words of 3+ characters; shorter ones are scanned for


def _search_sql(words: list[str], indexed: bool) -> tuple[str, list[Any]]:
    """` WHERE …` keeping the jobs whose search text (schema.search_text_sql) holds every word: the long
    ones through the trigram index when there is one, in one MATCH, the rest by a scan of the text."""
    if not words:
        return "", []
    found = [w for w in words if indexed and len(w) >= SEARCH_MIN]
    scanned = [w for w in words if w not in found]
    terms = [f"instr({search_text_sql('j')}, ?) > 0" for _ in scanned]
    params: list[Any] = list(scanned)
    if found:  # each word a quoted phrase: its trigrams in order, i.e. a substring
        terms.insert(0, "j.id IN (SELECT rowid FROM job_search WHERE job_search MATCH ?)")
        params.insert(0, " AND ".join('"' + w.replace('"', '""') + '"' for w in found))
    return " WHERE " + " AND ".join(terms), params


def _split(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Column values → (the job's, its current attempt's)."""
    own = {k: v for k, v in values.items() if k not in ATTEMPT_COLUMNS}
    return own, {k: v for k, v in values.items() if k in ATTEMPT_COLUMNS}


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    """Python values → column values (Status → text, lists and dicts → JSON)."""
    out = {}
    for k, v in values.items():
        if isinstance(v, Status):
            v = v.value
        elif isinstance(v, (list, tuple)):
            v = json.dumps(list(v))
        elif isinstance(v, dict):
            v = json.dumps(v)
        out[k] = v
    return out
