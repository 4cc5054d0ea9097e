"""A job store on a full disk: a message that names the disk, a non-zero exit, and no job lost."""

from __future__ import annotations

import subprocess

import pytest

from rn50tui.jobs.core import schema
from rn50tui.jobs.core.errors import StoreError
from rn50tui.jobs.core.store import JobStore

from .conftest import run_cli


def test_a_store_that_cannot_open_on_a_full_disk_says_the_disk_is_full(tmp_path, monkeypatch):
    path = tmp_path / "jobs.db"
    path.write_bytes(b"not a database, and no room to write a new one" * 100)
    monkeypatch.setattr(schema, "free_bytes", lambda folder: 0)
    with pytest.raises(StoreError, match=r"the disk holding it is full: 0 MiB free; free space there"):
        JobStore(path)
    monkeypatch.setattr(schema, "free_bytes", lambda folder: 1 << 30)
    with pytest.raises(StoreError) as caught:  # a disk with room: the cause is the file, say only that
        JobStore(path)
    assert "file is not a database" in str(caught.value) and "disk holding it" not in str(caught.value)


def test_jobs_list_on_a_full_disk_exits_1_naming_it_and_works_again_once_space_is_freed(small_disk):
    disk = small_disk(2)
    store = JobStore(disk / "jobs.db")
    job = store.insert_job(name="kept", kind="train", argv=[], device="cpu", cards_requested=1,
                           workspace=str(disk / "runs" / "{id}"))  # fmt: skip
    store.close()
    filler = disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, timeout=60)
    out = run_cli("jobs", "list", db=disk / "jobs.db")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "the disk holding it is full" in out.stderr and "no job is lost" in out.stderr
    filler.unlink()
    out = run_cli("jobs", "list", db=disk / "jobs.db")
    assert out.returncode == 0, out.stderr
    assert f"{job.id}   kept" in out.stdout
