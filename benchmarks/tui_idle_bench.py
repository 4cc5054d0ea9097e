"""CPU used by the rn50tui app while it watches 8 running jobs (prints it; asserts nothing).

    python benchmarks/tui_idle_bench.py [--seconds 20] [--jobs 8]

A store in a temp folder gets 8 `running` jobs "supervised" by this process, and a writer thread here
plays their supervisors: every second it commits each job's progress, latest metrics and a few metric
rows, and every 2 s a card sample, as rn50tui.jobs.supervisor does. The app runs in a child process on a
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
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rn50tui.jobs import procs  # noqa: E402
from rn50tui.jobs.states import Status  # noqa: E402
from rn50tui.jobs.store import DeviceSample, JobStore  # noqa: E402

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


def start_app(db: Path) -> tuple[subprocess.Popen, int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "PYTHONPATH": str(ROOT),
        "RN50TUI_CARDS": "mlu=0,cuda=0,cpu=8",
    }
    code = "import sys; from rn50tui.app.app import run_app; sys.exit(run_app(sys.argv[1]))"
    proc = subprocess.Popen([sys.executable, "-c", code, str(db)], stdin=slave, stdout=slave, stderr=slave,
                            env=env, start_new_session=True, close_fds=True)  # fmt: skip
    os.close(slave)
    threading.Thread(target=_drain, args=(master,), daemon=True).start()
    return proc, master


SEEN = bytearray()  # the tail of what the app drew (to check the detail screen really opened)


def _drain(fd: int) -> None:
    """Read what the app draws, as a terminal would (else its writes would block)."""
    try:
        while chunk := os.read(fd, 65536):
            SEEN.extend(chunk)
            del SEEN[:-200_000]
    except OSError:
        pass


def cpu_percent(proc: psutil.Process, seconds: float) -> float:
    before, t0 = proc.cpu_times(), time.monotonic()
    time.sleep(seconds)
    after, t1 = proc.cpu_times(), time.monotonic()
    used = (after.user - before.user) + (after.system - before.system)
    return 100.0 * used / (t1 - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="length of each measured window")
    p.add_argument("--jobs", type=int, default=8, help="running jobs in the store")
    p.add_argument(
        "--warmup", type=float, default=6.0, help="seconds before measuring (start-up, first reads)"
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "jobs.db"
        ids = make_store(db, args.jobs)
        stop = threading.Event()
        writer = threading.Thread(target=play_supervisors, args=(db, ids, stop), daemon=True)
        writer.start()
        proc, master = start_app(db)
        ps = psutil.Process(proc.pid)
        try:
            time.sleep(args.warmup)
            jobs_cpu = cpu_percent(ps, args.seconds)
            os.write(master, b"\r")  # Enter: open the job under the cursor (live charts, cards, log)
            time.sleep(args.warmup / 2)
            detail_cpu = cpu_percent(ps, args.seconds)
            opened = b"training loss" in SEEN
            rss = ps.memory_info().rss / 2**20
        finally:
            os.write(master, b"\x1bq")  # Esc, then q: quit (jobs keep running; here they are only rows)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            stop.set()
            writer.join()
    print(f"rn50tui idle CPU with {args.jobs} running jobs (supervisors writing every second), "
          f"{COLS}x{ROWS} pty, {args.seconds:.0f} s windows, {os.cpu_count()} cores:")  # fmt: skip
    print(f"  jobs screen:        {jobs_cpu:5.1f} % of one core")
    print(
        f"  job detail screen:  {detail_cpu:5.1f} % of one core"
        + ("" if opened else "  (detail screen not seen!)")
    )
    print(f"  resident memory:    {rss:5.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
