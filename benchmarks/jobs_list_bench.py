"""How fast `rn50tui jobs list` answers with 10,000 jobs and a million metric rows in the store.

    python benchmarks/jobs_list_bench.py [--jobs 10000] [--metrics 1000000] [--db PATH] [--rounds 5]

Builds the store (unless --db names one that already has jobs), then times the real command in a fresh
interpreter (start-up included, as a user sees it): the default list (active jobs and the newest ones),
every job (--all, as a table and as JSON), and the in-process query.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rn50tui.jobs.core.store import JobStore  # noqa: E402

STATUSES = ["completed"] * 6 + ["failed", "cancelled", "interrupted", "queued"]


def build(db: Path, jobs: int, metrics: int) -> None:
    store = JobStore(db)
    if store.count_jobs():
        return
    rng = random.Random(1)
    now = time.time()
    argv = ["--data-backend", "synthetic", "--device", "cpu", "-b", "32", "--epochs", "90"]
    store.insert_jobs([dict(name=f"job{i}", kind="train", preset="demo", argv=argv, device="cpu", cards_requested=1,
                            cards_granted=[0], workspace=f"runs/{i}", status=rng.choice(STATUSES), attempt=1,
                            created_at=now - i, updated_at=now - i, epochs=90, epoch=rng.randint(1, 90),
                            iters_per_epoch=1251, iteration=rng.randint(0, 1251), loss=rng.random() * 5, lr=0.1,
                            ips=800.0, top1=rng.random() * 80, top5=rng.random() * 95)
                       for i in range(1, jobs + 1)])  # fmt: skip
    data = json.dumps({"train.loss": 2.345678, "train.total_ips": 812.5, "train.lr": 0.1})
    batch = 100_000
    for start in range(0, metrics, batch):
        with store.transaction():
            store.add_metrics(
                [
                    (1 + (i % jobs), 1, now, 1, i, "train", data)
                    for i in range(start, min(metrics, start + batch))
                ]
            )
    store.checkpoint_wal()
    store.close()


def time_command(args: list[str], rounds: int) -> list[float]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "rn50tui", *args], env=env, capture_output=True, text=True
        )
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=10_000, help="jobs in the store")
    p.add_argument("--metrics", type=int, default=1_000_000, help="metric rows in the store")
    p.add_argument("--db", help="store to use (built if empty; default: a temporary one)")
    p.add_argument("--rounds", type=int, default=5, help="timed runs of each command")
    args = p.parse_args()
    tmp = None
    if args.db:
        db = Path(args.db)
    else:
        tmp = tempfile.TemporaryDirectory()
        db = Path(tmp.name) / "jobs.db"
    t = time.perf_counter()
    build(db, args.jobs, args.metrics)
    print(f"store: {db} ({db.stat().st_size / 2**20:.0f} MiB), built in {time.perf_counter() - t:.1f} s")
    for label, cmd in (("rn50tui jobs list", ["jobs", "list"]), ("rn50tui jobs list --all", ["jobs", "list", "--all"]),
                       ("rn50tui jobs list --all --json", ["jobs", "list", "--all", "--json"]),
                       ("rn50tui jobs list --status running", ["jobs", "list", "--status", "running"]),
                       ("rn50tui --help (start-up floor)", ["--help"])):  # fmt: skip
        times = time_command(["--db", str(db), *cmd], args.rounds)
        print(
            f"{label:<38} median {statistics.median(times) * 1000:7.1f} ms   min {min(times) * 1000:7.1f} ms"
        )
    store = JobStore(db)
    t = time.perf_counter()
    n = len(store.list_jobs())
    print(f"{'JobStore.list_jobs() in process':<38} {(time.perf_counter() - t) * 1000:7.1f} ms for {n} jobs")
    store.close()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
