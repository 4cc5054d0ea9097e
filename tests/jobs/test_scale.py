"""Issue 29: a store of many jobs is read a page and a change at a time, pruned safely, listed as a stream."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from rn50tui.jobs.core.errors import ReadInterrupted
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore
from tests.conftest import run_main as run
from tests.jobs.conftest import occupy

NOW = 1_780_000_000.0
DAY = 86400.0


def finished(n: int, *, status: str = "completed", ended: float = NOW, name: str = "old") -> list[dict]:
    return [dict(name=f"{name}{i}", kind="train", argv=[], device="cpu", cards_requested=1, workspace=f"runs/{name}{i}",
                 status=status, attempt=1, created_at=ended - 60, updated_at=ended, finished_at=ended, started_at=ended - 50)
            for i in range(n)]  # fmt: skip


def sqlite_steps(store: JobStore, read: Callable[[], Any]) -> tuple[int, Any]:
    """How much SQLite work `read` did (progress-handler calls, one per 50 VM instructions), and its result."""
    calls = 0

    def count() -> int:
        nonlocal calls
        calls += 1
        return 0

    store._db.set_progress_handler(count, 50)
    try:
        result = read()
    finally:
        store._db.set_progress_handler(None, 50)
    return calls, result


@pytest.fixture
def big(db_path) -> JobStore:
    store = JobStore(db_path)
    store.insert_jobs(finished(300))  # ids 1..300
    yield store
    store.close()


def test_changed_since_reads_a_change_to_an_old_job_beyond_the_first_page(big):
    page, total = big.job_window(limit=50)
    assert total == 300 and [j.id for j in page] == list(range(300, 250, -1))  # the newest page
    token = big.change_token()
    assert big.changed_since(token) == (token, [], [])  # nothing changed: nothing read
    with big.transaction():
        big.update_job(3, note="re-examined")  # far beyond the first page
    token2, changed, removed = big.changed_since(token)
    assert (
        token2 > token
        and [j.id for j in changed] == [3]
        and changed[0].note == "re-examined"
        and removed == []
    )
    big.delete_job(7)
    token3, changed, removed = big.changed_since(token2)
    assert changed == [] and removed == [7] and token3 > token2


def test_a_poll_reads_the_change_index_not_every_job(db_path):
    """changed_since walks the jobs_change_seq index: its SQLite work does not grow with the store (it
    once walked every job in id order: 25 ms a poll at 100,000 jobs)."""
    store = JobStore(db_path)
    steps = {}
    for n in (300, 6000):
        store.insert_jobs(finished(n - store.count_jobs()))
        token = store.change_token()
        with store.transaction():
            store.update_job(5, note="changed")
        steps[n], (_, changed, _) = sqlite_steps(store, lambda t=token: store.changed_since(t))
        assert [j.id for j in changed] == [5]
    assert steps[6000] <= steps[300] + 5, steps  # 20 times the jobs, the same work
    store.close()


def test_window_filters_and_sorts_in_the_store_and_reaches_every_job_by_pages(big):
    with big.transaction():
        big.update_job(42, name="needle", loss=0.5)
    page, total = big.job_window(query="needle", limit=10)
    assert total == 1 and [j.id for j in page] == [42]
    page, total = big.job_window(query="#4", limit=500)  # words match the id as the app's filter does
    assert {j.id for j in page} == {j for j in range(1, 301) if str(j).startswith("4")}
    seen: list[int] = []
    while len(seen) < 300:
        page, _ = big.job_window(sort="name", offset=len(seen), limit=64, active=False)
        assert page
        seen += [j.id for j in page]
    assert sorted(seen) == list(range(1, 301))
    by_loss, _ = big.job_window(sort="loss", limit=1)
    assert by_loss[0].id == 42  # the only loss; unknown ones sort last
    with big.transaction():  # a sort on the current attempt's columns (the order joins the attempts)
        big.update_job(7, started_at=NOW - 10_000)
    by_start, total = big.job_window(sort="started", limit=3, active=False)
    assert total == 300 and by_start[0].id == 7 and [j.id for j in by_start[1:]] == [1, 2]


def test_a_read_interrupted_from_another_thread_raises_read_interrupted_and_the_next_read_runs(big):
    stops = []

    def interrupt() -> int:  # SQLite calls this inside the read: as another thread's interrupt() lands
        if not stops:
            stops.append(1)
            big.interrupt()
        return 0

    big._db.set_progress_handler(interrupt, 100)
    try:
        with pytest.raises(ReadInterrupted, match="job_window interrupted"):
            big.job_window(query="old", limit=50)
    finally:
        big._db.set_progress_handler(None, 100)
    big.interrupt()  # no read runs: forgotten, not held for the next read
    page, total = big.job_window(query="old", limit=50)
    assert stops == [1] and total == 300 and len(page) == 50


def test_window_always_holds_the_active_jobs(big):
    holder = occupy(big)  # running, id 301
    with big.transaction():
        big.update_job(holder.id, name="zzz")
    page, _ = big.job_window(sort="name", limit=5)  # 'zzz' sorts last, yet it is shown
    assert holder.id in [j.id for j in page]


def test_pruning_never_removes_an_active_job(db_path):
    store = JobStore(db_path)
    store.insert_jobs(finished(5, ended=NOW - 100 * DAY) + finished(3, ended=NOW - DAY, name="new"))  # 1..8
    store.insert_jobs(finished(2, status="queued", ended=NOW - 200 * DAY, name="waiting"))  # 9, 10: active
    holder = occupy(store)  # running, 11
    with store.transaction():  # an old running job: started long ago
        store.update_job(holder.id, created_at=NOW - 300 * DAY, updated_at=NOW - 300 * DAY)
    with store.transaction():  # the old jobs' history: what pruning gives back to the disk
        store.add_metrics(
            [(j, 1, NOW, 1, i, "train", '{"train.loss": 1.0}') for j in range(1, 6) for i in range(400)]
        )
    old = store.prunable_jobs(NOW - 90 * DAY)
    assert old == [1, 2, 3, 4, 5]
    assert store.prunable_jobs(NOW - 90 * DAY, [Status.FAILED]) == []
    assert store.delete_jobs([*old, 9, 10, holder.id]) == 5  # active ones named by mistake stay
    assert sorted(j.id for j in store.list_jobs()) == [6, 7, 8, 9, 10, holder.id]
    before, after = store.vacuum()
    assert after < before
    store.close()


def test_pruning_keeps_an_old_job_a_queued_job_still_waits_for(db_path):
    store = JobStore(db_path)
    store.insert_jobs(finished(3, ended=NOW - 100 * DAY))  # 1..3, completed long ago
    waiting = store.insert_job(name="eval", kind="train", argv=[], device="cpu", cards_requested=1,
                               workspace=str(db_path.parent / "runs" / "{id}"), after=[2])  # fmt: skip
    assert store.prunable_jobs(NOW - 90 * DAY) == [1, 3]  # job 2 is what job 4 waits for
    assert store.delete_jobs([1, 2, 3]) == 2 and store.find_job(2) is not None
    assert store.get_job(waiting.id).status is Status.QUEUED
    store.close()


def test_cli_rm_older_than_confirms_and_keeps_active_jobs(capsys, db, monkeypatch):
    import time

    store = JobStore(db)
    now = time.time()
    store.insert_jobs(finished(4, ended=now - 100 * DAY) + finished(2, ended=now, name="new"))
    holder = occupy(store)
    store.close()
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, out, err = run(capsys, "jobs", "rm", "--older-than", "90d")
    assert code != 0 and "--yes" in err  # no terminal to ask: refused, nothing removed
    code, out, err = run(capsys, "jobs", "rm", "--older-than", "90d", "--status", "running", "--yes")
    assert code != 0 and "never removes running" in err
    code, out, _ = run(
        capsys, "jobs", "rm", "--older-than", "90d", "--status", "completed", "--yes", "--vacuum"
    )
    assert code == 0 and "removed 4 jobs" in out and "vacuumed" in out
    code, out, _ = run(capsys, "jobs", "list", "--all", "--json")
    assert [j["id"] for j in json.loads(out)] == [5, 6, holder.id]
    assert run(capsys, "jobs", "vacuum", "--yes")[0] == 0


def test_all_json_streams_the_same_document(capsys, db):
    store = JobStore(db)
    occupy(store)
    store.insert_jobs(finished(1500))  # more than one batch of the stream
    expected = [j.to_dict() for j in store.job_summaries()]
    store.close()
    code, out, _ = run(capsys, "jobs", "list", "--all", "--json")
    streamed = json.loads(out)
    assert code == 0 and len(streamed) == 1501
    assert [{k: v for k, v in j.items() if k in expected[0]} for j in streamed] == json.loads(
        json.dumps(expected)
    )
    code, out, _ = run(capsys, "jobs", "list", "--all", "--json", "--limit", "2000")  # the non-streamed path
    assert json.loads(out) == streamed


def test_status_filter_lists_its_newest_page_and_says_how_many_more(capsys, db):
    store = JobStore(db)
    store.insert_jobs(finished(30) + finished(3, status="failed", name="bad"))
    store.close()
    code, out, err = run(capsys, "jobs", "list", "--status", "completed", "--json")
    assert [j["id"] for j in json.loads(out)] == list(range(11, 31)) and "10 older jobs not shown" in err
    code, out, err = run(capsys, "jobs", "list", "--status", "failed", "--json")
    assert [j["id"] for j in json.loads(out)] == [31, 32, 33] and err == ""


def test_jobs_list_imports_only_what_it_needs(db):
    """Start-up: `jobs list` builds only its own command's parser (not submit's executor flags) and imports
    no transport (psutil, Slurm), no config-file parser and no statistics; a running local job's
    supervisor is checked through /proc (rn50tui.jobs.local.liveness), not psutil."""
    import subprocess
    import sys

    from tests.jobs.conftest import cli_env

    store = JobStore(db)
    store.insert_jobs(finished(30))
    occupy(store)  # a running local job: reconcile asks whether its supervisor (this process) lives
    store.close()
    probe = (
        "import sys; from rn50tui import cli; code = cli.main(['--db', sys.argv[1], 'jobs', 'list']);"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr); sys.exit(code)"
    )
    proc = subprocess.run([sys.executable, "-c", probe, str(db)], capture_output=True, text=True,
                          env=cli_env(), timeout=60)  # fmt: skip
    assert proc.returncode == 0 and "old29" in proc.stdout
    loaded = set(proc.stderr.split())
    for heavy in ("rn50tui.commands.submit", "rn50tui.metrics_server", "psutil", "rn50tui.jobs.slurm.executor",
                  "rn50tui.jobs.local.procs", "tomllib", "statistics", "textual", "rich", "torch"):  # fmt: skip
        assert heavy not in loaded, f"`jobs list` imported {heavy}"


def test_wait_reasons_read_the_queue_once_and_say_what_wait_reason_says(db_path):
    from rn50tui.jobs import scheduler

    store = JobStore(db_path)
    holder = occupy(store)  # holds the one cpu slot
    queued = [store.insert_job(name=f"q{i}", kind="train", argv=[], device="cpu", cards_requested=1,
                               workspace=str(db_path.parent / "runs" / "{id}"), priority=i % 3)
              for i in range(6)]  # fmt: skip
    capacity = {"cpu": 1, "mlu": 0, "cuda": 0}
    jobs = [store.get_job(j.id) for j in queued]
    calls = 0
    list_jobs = store.list_jobs

    def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return list_jobs(*args, **kwargs)

    store.list_jobs = counting  # type: ignore[method-assign]
    batched = scheduler.wait_reasons(store, jobs, capacity)
    assert calls == 1
    store.list_jobs = list_jobs  # type: ignore[method-assign]
    assert batched == {j.id: scheduler.wait_reason(store, j, capacity) for j in jobs}
    first = max(jobs, key=lambda j: (j.priority, -j.id))
    assert f"held by job {holder.id}" in batched[first.id]
    assert all(f"behind job {first.id}" in batched[j.id] for j in jobs if j.id != first.id)
    store.close()


def _raport_line(t: float, step: list, data: dict) -> str:
    return "DLLL " + json.dumps({"timestamp": t, "datetime": "2026-01-01T00:00:00", "elapsedtime": t - NOW,
                                 "type": "LOG", "step": step, "data": data}) + "\n"  # fmt: skip


def test_thinning_keeps_first_last_and_best_and_export_still_gives_full_resolution(capsys, db, tmp_path):
    """A finished job's per-iteration records thinned in place (jobs vacuum): its first, last and
    lowest-loss records and every epoch record stay; an active job is never thinned; `export` reads the
    run's raport.json, so it still writes every record."""
    from engine.events import parse_line
    from rn50tui.jobs.report import _metric_row

    store = JobStore(db)
    workspace = tmp_path / "runs" / "1"
    workspace.mkdir(parents=True)
    lines = []
    for i in range(3000):
        loss = 5.0 - i / 1000 if i != 1234 else 0.01  # the best is in the middle
        lines.append(
            _raport_line(NOW + i, [1 + i // 1000, 1 + i % 1000], {"train.loss": loss, "train.lr": 0.1})
        )
        if i % 1000 == 999:
            lines.append(_raport_line(NOW + i + 0.5, [1 + i // 1000], {"val.top1": 10.0 * (i // 1000)}))
    (workspace / "raport.json").write_text("".join(lines))
    [job] = finished(1)
    store.insert_jobs([dict(job, workspace=str(workspace), started_at=NOW - 1)])
    busy = occupy(store)  # a running job with as many records: never thinned
    rows = [_metric_row(1, 1, parse_line(line.rstrip("\n"))) for line in lines]
    with store.transaction():
        store.add_metrics(rows)
        store.add_metrics([(busy.id, *row[1:]) for row in rows])
    full = [(r.time, r.phase, r.values) for r in store.metrics(1)]
    assert len(full) == 3003
    assert store.thinnable_jobs(100) == [1]  # the running one is not offered
    assert store.thin_metrics(busy.id, 100) == 0
    store.close()

    code, out, _ = run(capsys, "jobs", "vacuum", "--yes", "--keep-points", "100")
    assert code == 0 and "thinned the metrics of 1 finished jobs" in out
    store = JobStore(db)
    kept = store.metrics(1)
    train = [r for r in kept if r.phase == "train"]
    assert 100 <= len(train) <= 110 and len(kept) == len(train) + 3  # every epoch record stays
    assert train[0].iteration == 1 and train[-1].time == NOW + 2999  # the first and the last
    assert min(r.values["train.loss"] for r in train) == 0.01  # the best
    assert store.thinned(1)["removed"] == 3003 - len(kept)
    assert store.metric_count(busy.id) == 3003 and store.thinnable_jobs(100) == []
    store.close()

    code, out, err = run(capsys, "export", "1", "--format", "json")
    exported = json.loads(out)
    assert code == 0 and "full resolution read from" in err
    assert [(r["time"], r["phase"], {k: v for k, v in r.items() if "." in k}) for r in exported] == full
    (workspace / "raport.json").unlink()  # gone: the kept records, and stderr says so
    code, out, err = run(capsys, "export", "1", "--format", "json")
    assert code == 0 and len(json.loads(out)) == len(kept) and "is gone" in err


def test_liveness_reads_the_start_time_psutil_reads_without_importing_it():
    import os
    import subprocess
    import sys

    import psutil

    from rn50tui.jobs.local import liveness

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for pid in (os.getpid(), child.pid, 1):
            ours = liveness.start_time(pid)
            assert ours is not None and abs(ours - psutil.Process(pid).create_time()) <= 0.01
        assert liveness.is_alive(child.pid, psutil.Process(child.pid).create_time())
        assert not liveness.is_alive(child.pid, psutil.Process(child.pid).create_time() - 5)  # a reused pid
    finally:
        child.kill()
    import time

    deadline = time.monotonic() + 5
    while liveness.start_time(child.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.01)  # the signal lands
    assert liveness.start_time(child.pid) is None  # a zombie until reaped: it has exited
    child.wait()
    assert liveness.start_time(child.pid) is None and not liveness.is_alive(None, 1.0)


QUERIES = ["needle", "old1", "#4", "ne", "old 7", "completed old2", 'qu"ote', "cpu", "zz", "running"]


def _matches(store: JobStore, query: str, indexed: bool) -> list[int]:
    store._indexed = indexed
    return [j.id for j in store.job_window(query=query, limit=1000, active=False)[0]]


def test_the_search_index_finds_what_the_scan_finds_after_renames_and_removals(big):
    with big.transaction():
        big.update_job(42, name="needle")
        big.update_job(43, name='qu"ote-old', status="failed")
    big.delete_job(17)
    holder = occupy(big)  # a new job while the index exists: the insert trigger adds it
    with big.transaction():
        big.update_job(holder.id, name="zzneedle")
    assert "job_search" in big.tables()
    for query in QUERIES:
        assert _matches(big, query, True) == _matches(big, query, False), query
    assert _matches(big, "needle", True) == [holder.id, 42]
    assert 17 not in _matches(big, "old1", True)
    big._indexed = True
    assert big.count_matching("completed old2") == len(_matches(big, "completed old2", False))


def test_a_filter_reads_the_search_index_not_every_job(db_path):
    """A word of 3+ characters is looked up in the trigram index: the SQLite work of a filter matching one job
    does not grow with the store (it scanned every job's text: ~150 ms at 100,000 jobs)."""
    store = JobStore(db_path)
    steps = {}
    for n in (300, 6000):
        store.insert_jobs(finished(n - store.count_jobs(), name="job"))
        with store.transaction():
            store.update_job(5, name="needle")
        steps[n], (page, total) = sqlite_steps(
            store, lambda: store.job_window(query="needle", limit=10, active=False)
        )
        assert total == 1 and [j.id for j in page] == [5]
    assert steps[6000] <= steps[300] + 5, steps
    store.close()


def test_an_older_store_gets_its_search_index_filled_on_open(tmp_path):
    copy = tmp_path / "jobs.db"
    shutil.copy(Path(__file__).resolve().parents[1] / "fixtures" / "jobs_v1.db", copy)  # 0001_initial only
    store = JobStore(copy)
    assert "0014_job_search" in store.applied_migrations() and "job_search" in store.tables()
    assert _matches(store, "ngc", True) == [4, 2] == _matches(store, "ngc", False)
    assert _matches(store, "demo interr", True) == [3]
    store.close()


def test_without_fts5_the_filter_scans(db_path, monkeypatch):
    from rn50tui.jobs.core import schema

    monkeypatch.setattr(schema, "has_fts5", lambda conn: False)
    store = JobStore(db_path)
    store.insert_jobs(finished(12))
    assert "job_search" not in store.tables() and "0014_job_search" in store.applied_migrations()
    page, total = store.job_window(query="old1", limit=50, active=False)
    assert total == 3 and [j.id for j in page] == [12, 11, 2]
    store.close()
