"""Several writers following event streams into one store while clients list it: no lock errors, no lost rows."""

from __future__ import annotations

import subprocess
import sys

from .conftest import cli_env, run_cli

# A stand-in for a supervisor's follow loop: the real EventWriter appends, the real ReportReader commits.
_WRITER = """
import sys, time
from engine.events import EventWriter
from rn50tui.jobs.report import ReportReader, commit
from rn50tui.jobs.core.store import JobStore
store = JobStore(sys.argv[1]); job = store.get_job(int(sys.argv[2])); n = int(sys.argv[3])
w = EventWriter(job.files.raport); f = ReportReader(job.id, 1, job.files.raport)
for i in range(1, n + 1):
    w.metrics([1, i], {"train.loss": 1.0 / i, "train.total_ips": 100.0})
    if i % 7 == 0:
        commit(store, job.id, f.poll(), [], time.time())
        time.sleep(0.002)  # a supervisor commits between engine steps, not in a tight loop
w.close()
commit(store, job.id, f.poll(), [], time.time())
"""


def test_writers_and_listers_at_once_lose_nothing(store, tmp_path):
    jobs = [store.insert_job(name=f"w{i}", kind="train", argv=[], device="cpu", cards_requested=1,
                             workspace=str(tmp_path / f"w{i}")) for i in range(3)]  # fmt: skip
    for job in jobs:
        (tmp_path / job.name).mkdir()
    n = 1500
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(store.path), str(j.id), str(n)], env=cli_env(),
                                stderr=subprocess.PIPE, text=True) for j in jobs]  # fmt: skip
    lists = 0
    while any(w.poll() is None for w in writers):
        assert len(store.list_jobs()) == 3
        lists += 1
        if lists % 50 == 1:
            proc = run_cli("jobs", "list", "--json", db=store.path)
            assert proc.returncode == 0, proc.stderr
    errors = [w.communicate()[1] for w in writers]
    assert [w.returncode for w in writers] == [0, 0, 0], errors
    assert not any("locked" in e for e in errors)
    assert [store.metric_count(j.id) for j in jobs] == [n, n, n]
    assert lists > 10  # the lists really ran while the writers wrote
