from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from rn50tui.jobs.core import schema
from rn50tui.jobs.core.errors import JobNotFound, StoreError, StoreMissing, TransitionError
from rn50tui.jobs.core.schema import migrations_of
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import MIGRATIONS, DeviceSample, JobStore

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jobs_v1.db"


def _job(store: JobStore, **kw):
    values = {"name": "demo", "kind": "train", "argv": ["-b", "4"], "device": "cpu", "cards_requested": 1,
              "workspace": str(store.path.parent / "runs" / "{id}")}  # fmt: skip
    return store.insert_job(**{**values, **kw})


def test_a_new_store_is_wal_with_busy_timeout_and_every_migration(store):
    assert store.settings() == {"journal_mode": "wal", "busy_timeout": 30000}
    assert store.applied_migrations() == sorted(name for name, _ in MIGRATIONS)
    assert {"jobs", "metrics", "claims", "device_samples"} <= set(store.tables())


def test_reopening_applies_nothing_twice(db_path):
    JobStore(db_path).close()
    again = JobStore(db_path)
    assert len(again.applied_migrations()) == len(MIGRATIONS)


def test_the_committed_v1_database_opens_and_is_upgraded(tmp_path):
    copy = tmp_path / "old.db"
    shutil.copy(FIXTURE, copy)
    assert migrations_of(copy) == ["0001_initial"]
    store = JobStore(copy)
    assert "device_samples" in store.tables()
    jobs = store.list_jobs()
    assert [(j.id, j.name, j.status.value) for j in jobs] == [
        (1, "demo", "completed"), (2, "ngc-amp-90e", "failed"), (3, "demo", "interrupted"), (4, "ngc-infer", "queued")]  # fmt: skip
    assert jobs[0].top1 == 31.5 and jobs[0].progress == 1.0
    assert store.metric_count(1) == 14
    assert store.metrics(1, phase="epoch")[-1].values["val.top1"] == 30.0
    store.add_samples(1, [DeviceSample(time.time(), "cpu", 0, util_percent=50.0)])  # the new table works


def test_a_store_from_a_newer_version_is_refused(db_path, monkeypatch):
    future = [*MIGRATIONS, ("9999_future", lambda db: None)]
    monkeypatch.setattr(schema, "MIGRATIONS", future)
    JobStore(db_path).close()  # a newer rn50tui wrote it
    monkeypatch.setattr(schema, "MIGRATIONS", future[:-1])
    with pytest.raises(StoreError, match="newer rn50tui.*9999_future"):
        JobStore(db_path)


def test_read_only_clients_do_not_create_a_store(tmp_path):
    with pytest.raises(StoreMissing, match="no job store at"):
        JobStore(tmp_path / "nothing.db", create=False)
    assert not (tmp_path / "nothing.db").exists()


def test_insert_fills_the_workspace_with_the_id_and_round_trips(store):
    job = _job(store, argv=["--lr", "0.1", "x y"])
    assert job.status is Status.QUEUED and job.attempt == 1
    assert job.workspace.endswith(f"runs/{job.id}")
    assert store.get_job(job.id).argv == ["--lr", "0.1", "x y"]
    d = job.to_dict()
    assert d["status"] == "queued" and json.dumps(d)
    with pytest.raises(JobNotFound, match="no job 99"):
        store.get_job(99)


def test_transitions_are_checked_and_compare_and_set(store):
    job = _job(store)
    store.transition(job.id, Status.STARTING, expect=[Status.QUEUED], cards_granted=[0])
    with pytest.raises(TransitionError, match="is starting now, not queued"):
        store.transition(job.id, Status.CANCELLED, expect=[Status.QUEUED])  # a stale caller
    with pytest.raises(TransitionError, match="is starting: it cannot become starting"):
        store.transition(job.id, Status.STARTING)
    store.transition(job.id, Status.RUNNING)
    store.transition(job.id, Status.COMPLETED)
    with pytest.raises(TransitionError, match="nothing to resume"):
        store.transition(job.id, Status.QUEUED)


def test_list_filters_by_status_and_limits_to_the_newest(store):
    ids = [_job(store).id for _ in range(5)]
    store.transition(ids[1], Status.CANCELLED)
    assert [j.id for j in store.list_jobs([Status.CANCELLED])] == [ids[1]]
    assert [j.id for j in store.list_jobs(limit=2)] == ids[-2:]


def test_metrics_by_attempt_and_since_id(store):
    job = _job(store)
    rows = [
        (job.id, a, 1.0 + i, 1, i, "train", json.dumps({"train.loss": float(i)}))
        for a in (1, 2)
        for i in range(3)
    ]
    with store.transaction():
        store.add_metrics(rows)
    all_rows = store.metrics(job.id)
    assert len(all_rows) == 6 and store.metric_count(job.id, attempt=2) == 3
    assert [r.values["train.loss"] for r in store.metrics(job.id, attempt=2)] == [0.0, 1.0, 2.0]
    assert [r.id for r in store.metrics(job.id, since_id=all_rows[3].id)] == [r.id for r in all_rows[4:]]


def test_device_samples_are_pruned_to_the_retention_limit(store):
    job = _job(store)
    with store.transaction():
        store.add_samples(job.id, [DeviceSample(float(t), "mlu", t % 2, util_percent=t) for t in range(10)])
        store.prune_samples(job.id, keep=4)
    kept = store.device_samples(job.id)
    assert [s.time for s in kept] == [6.0, 7.0, 8.0, 9.0]
    assert [s.time for s in store.device_samples(job.id, since=7.0, card=1)] == [9.0]


def test_delete_removes_the_job_and_its_rows(store):
    job = _job(store)
    with store.transaction():
        store.add_metrics([(job.id, 1, 1.0, 1, 1, "train", "{}")])
        store.add_samples(job.id, [DeviceSample(1.0, "cpu", 0)])
    store.delete_job(job.id)
    assert store.find_job(job.id) is None
    assert store.metric_count(job.id) == 0 and store.device_samples(job.id) == []
