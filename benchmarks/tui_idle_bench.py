"""CPU used by the rn50tui app while it watches 8 running jobs (prints it; asserts nothing).

    python benchmarks/tui_idle_bench.py [--seconds 20] [--jobs 8] [--finished 10000]

A store in a temp folder gets 8 `running` jobs "supervised" by this process, and a writer thread here
plays their supervisors: every second it commits each job's progress, latest metrics and a few metric
rows, and every 2 s a card sample, as rn50tui.jobs.local.supervisor does. The app runs in a child process on a
real pseudo-terminal (the real Linux driver, real output, drained here), first on the jobs screen, then
on one job's detail screen with its live charts. The child's CPU time over each window is what prints.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import pty
import re
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any, Optional

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rn50tui.jobs.core.states import Status  # noqa: E402
from rn50tui.jobs.core.store import DeviceSample, JobStore  # noqa: E402
from rn50tui.jobs.local import procs  # noqa: E402

COLS, ROWS = 160, 50


def make_store(path: Path, jobs: int) -> list[int]:
    store = JobStore(path)
    me = os.getpid()
    ids = []
    for i in range(jobs):
        job = store.insert_job(name=f"bench-{i}", kind="train", argv=["--data-backend", "synthetic", "-b", "64"],
                               device="cpu", cards_requested=1, workspace=str(path.parent / "runs" / "{id}"))  # fmt: skip
        with store.transaction():
            store.add_claims(job.id, "cpu", [i], time.time())
            store.update_job(job.id, status=Status.RUNNING.value, supervisor_pid=me, supervisor_started=procs.start_time(me),
                             cards_granted=[i], started_at=time.time(), epochs=90, epoch=1, iteration=0,
                             iters_per_epoch=5000, world_size=1)  # fmt: skip
        ids.append(job.id)
    store.close()
    return ids


def play_supervisors(path: Path, ids: list[int], stop: threading.Event) -> None:
    """What 8 supervisors write: one short transaction per job per second, card samples every 2 s."""
    store = JobStore(path)
    step = 0
    while not stop.is_set():
        step += 1
        now = time.time()
        for jid in ids:
            loss = 7 * math.exp(-step / 300) + 0.05 * math.sin(step + jid)
            rows = [(jid, 1, now, 1, step * 10 + k, "train", json.dumps({"train.loss": loss, "train.total_ips": 400.0 + jid,
                     "train.lr": 0.1})) for k in range(2)]  # fmt: skip
            samples = [DeviceSample(now, "cpu", jid, "bench", 50.0, 1000.0, 8000.0)] if step % 2 == 0 else []
            with store.transaction():
                store.add_metrics(rows)
                if samples:
                    store.add_samples(jid, samples)
                store.update_job(jid, heartbeat=now, iteration=step * 10, loss=loss, ips=400.0 + jid, lr=0.1)
        stop.wait(1.0)
    store.close()


def start_app(db: Path, profile: Optional[Path] = None) -> tuple[subprocess.Popen, int]:
    """The app on `db` in a child process on a new pty (its master returned; what it draws is drained
    into SEEN); with `profile`, the app's main thread runs under cProfile, its stats written there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "PYTHONPATH": str(ROOT),
        "RN50TUI_CARDS": "mlu=0,cuda=0,cpu=8",
    }
    code = "import sys; from rn50tui.app.app import run_app; sys.exit(run_app(sys.argv[1]))"
    if profile is not None:
        code = ("import cProfile, sys; from rn50tui.app.app import run_app; "
                "cProfile.run('run_app(sys.argv[1])', sys.argv[2])")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code, str(db), str(profile)], stdin=slave, stdout=slave, stderr=slave,
                            env=env, start_new_session=True, close_fds=True)  # fmt: skip
    os.close(slave)
    threading.Thread(target=_drain, args=(master,), daemon=True).start()
    return proc, master


SEEN = bytearray()  # the tail of what the app drew (to check the detail screen really opened)
KEEP = 2_000_000  # bytes of SEEN kept
_received = [0]  # bytes read from the app since it started (SEEN's end, as an offset in its output)
_arrived = threading.Condition()


def _drain(fd: int) -> None:
    """Read what the app draws, as a terminal would (else its writes would block)."""
    try:
        while chunk := os.read(fd, 65536):
            with _arrived:
                SEEN.extend(chunk)
                del SEEN[:-KEEP]
                _received[0] += len(chunk)
                _arrived.notify_all()
    except OSError:
        pass


def seen() -> bytes:
    """A copy of SEEN (the reader thread keeps changing it)."""
    with _arrived:
        return bytes(SEEN)


def received() -> int:
    """How many bytes the app has drawn so far (an offset for wait_drawn)."""
    with _arrived:
        return _received[0]


def wait_drawn(pattern: re.Pattern[bytes], since: int, timeout: float) -> Optional[re.Match[bytes]]:
    """The first match of `pattern` in what the app drew after offset `since`, as soon as its bytes
    arrive (None if they did not within `timeout`)."""
    deadline = time.monotonic() + timeout
    with _arrived:
        while True:
            start = max(0, len(SEEN) - (_received[0] - since))
            found = pattern.search(SEEN, start)
            if found is not None:  # matched again on a copy: the reader thread changes SEEN after the lock
                return pattern.search(bytes(SEEN), start)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            _arrived.wait(left)


def cpu_percent(proc: psutil.Process, seconds: float) -> float:
    before, t0 = proc.cpu_times(), time.monotonic()
    time.sleep(seconds)
    after, t1 = proc.cpu_times(), time.monotonic()
    used = (after.user - before.user) + (after.system - before.system)
    return 100.0 * used / (t1 - t0)


def wait_seen(marker: bytes, timeout: float) -> Optional[float]:
    """Seconds until the app drew `marker` (None if it did not within `timeout`)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if marker in SEEN:
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def measure(db: Path, ids: list[int], seconds: float, warmup: float) -> dict[str, Any]:
    """Run the app on `db` while this process plays the supervisors of `ids`: how long it took to show
    the jobs, its CPU on the jobs screen and on a running job's detail, its resident memory on each."""
    SEEN.clear()
    stop = threading.Event()
    writer = threading.Thread(target=play_supervisors, args=(db, ids, stop), daemon=True)
    writer.start()
    t0 = time.monotonic()
    proc, master = start_app(db)
    ps = psutil.Process(proc.pid)
    out: dict[str, Any] = {}
    try:
        shown = wait_seen(b"running", 60.0)  # the summary line's counts: the first poll has landed
        out["open_s"] = None if shown is None else time.monotonic() - t0
        time.sleep(warmup)
        out["jobs_cpu"] = cpu_percent(ps, seconds)
        out["jobs_rss"] = ps.memory_info().rss / 2**20
        os.write(master, b"\x1b[1;5F")  # ctrl+end: the newest jobs (the running ones) at the bottom
        time.sleep(0.5)
        os.write(master, b"\r")  # Enter: open the job under the cursor (live charts, cards, log)
        time.sleep(warmup / 2)
        out["detail_cpu"] = cpu_percent(ps, seconds)
        out["detail_rss"] = ps.memory_info().rss / 2**20
        out["opened"] = b"training loss" in SEEN
    finally:
        close_app(master, proc, [b"\x1bq"], stop, writer)  # Esc, then q: quit (jobs keep running)
    return out


def close_app(master: int, proc: subprocess.Popen, keys: list[bytes], stop: threading.Event,
              writer: threading.Thread, pause: float = 0.0) -> None:  # fmt: skip
    """Quit the app on the pty with `keys` (killed after 10 s), then stop the jobs' writer thread."""
    for key in keys:
        os.write(master, key)
        time.sleep(pause)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    stop.set()
    writer.join()


def add_finished(path: Path, n: int, metrics_per_job: int = 0) -> None:
    """Bulk-load `n` finished jobs (and their metric rows) into the store at `path`."""
    store = JobStore(path)
    now = time.time()
    argv = ["--data-backend", "synthetic", "--device", "cpu", "-b", "32", "--epochs", "90"]
    statuses = ["completed"] * 7 + ["failed", "cancelled", "interrupted"]
    first = store.count_jobs() + 1
    for start in range(0, n, 20_000):
        store.insert_jobs([dict(name=f"old{i}", kind="train", preset="demo", argv=argv, device="cpu", cards_requested=1,
                                cards_granted=[0], workspace=f"runs/old{i}", status=statuses[i % 10], attempt=1,
                                created_at=now - 90 * 86400 + i, updated_at=now - 89 * 86400 + i, epochs=90,
                                epoch=1 + i % 90, iters_per_epoch=1251, iteration=i % 1251, loss=(i % 97) / 20,
                                lr=0.1, ips=800.0 + i % 50, top1=(i % 80) * 1.0, top5=90.0, started_at=now - 90 * 86400 + i,
                                finished_at=now - 89 * 86400 + i) for i in range(start, min(n, start + 20_000))])  # fmt: skip
    data = json.dumps({"train.loss": 2.345678, "train.total_ips": 812.5, "train.lr": 0.1})
    rows, batch = n * metrics_per_job, 200_000
    for start in range(0, rows, batch):
        with store.transaction():
            store.add_metrics([(first + (i // metrics_per_job), 1, now - 89 * 86400 + i, 1 + (i % metrics_per_job) // 10,
                                i % metrics_per_job, "train", data) for i in range(start, min(rows, start + batch))])  # fmt: skip
    store.checkpoint_wal()
    store.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="length of each measured window")
    p.add_argument("--jobs", type=int, default=8, help="running jobs in the store")
    p.add_argument("--finished", type=int, default=0, help="finished jobs in the store besides (issue 29)")
    p.add_argument(
        "--warmup", type=float, default=6.0, help="seconds before measuring (start-up, first reads)"
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "jobs.db"
        if args.finished:
            add_finished(db, args.finished, 100)
        ids = make_store(db, args.jobs)
        out = measure(db, ids, args.seconds, args.warmup)
    print(f"rn50tui idle CPU with {args.jobs} running jobs (supervisors writing every second) and "
          f"{args.finished} finished ones, {COLS}x{ROWS} pty, {args.seconds:.0f} s windows, {os.cpu_count()} cores:")  # fmt: skip
    print(f"  opened in:          {out['open_s'] or float('nan'):5.2f} s")
    print(f"  jobs screen:        {out['jobs_cpu']:5.1f} % of one core   {out['jobs_rss']:5.0f} MiB resident")
    print(
        f"  job detail screen:  {out['detail_cpu']:5.1f} % of one core   {out['detail_rss']:5.0f} MiB resident"
        + ("" if out["opened"] else "  (detail screen not seen!)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
