"""How fast `rn50tui metrics` answers a scrape with 100 running and 10,000 finished jobs in the store.

    python benchmarks/metrics_scrape_bench.py [--running 100] [--finished 10000] [--windows 2000]
                                              [--cards 8] [--rounds 50] [--db PATH]

Builds the store (unless --db names one that already has jobs): finished jobs as `jobs_list_bench.py` makes
them, running jobs each with `--windows` training records and `--cards` cards sampled 300 times. Then times
the collector in process (the three store reads and the exposition text) and a real HTTP GET /metrics of
`rn50tui metrics` in a subprocess, as Prometheus sees it. The goal is under 50 ms a scrape.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rn50tui.jobs.core.records import DeviceSample  # noqa: E402
from rn50tui.jobs.core.store import JobStore  # noqa: E402

FINISHED = ["completed"] * 7 + ["failed", "cancelled", "interrupted"]
SAMPLE_ROUNDS = 300  # the supervisor's retention keeps a bounded number of rounds per job


def build(db: Path, running: int, finished: int, windows: int, cards: int) -> None:
    store = JobStore(db)
    if store.count_jobs():
        return
    rng, now = random.Random(1), time.time()
    argv = ["--data-backend", "synthetic", "--device", "cuda", "-b", "256", "--epochs", "90"]

    def job(i: int, status: str) -> dict:
        return dict(name=f"job{i}", kind="train", preset="ngc-amp-90e", argv=argv, device="cuda",
                    cards_requested=cards, cards_granted=list(range(cards)), workspace=f"runs/{i}", status=status,
                    attempt=1, created_at=now - i, updated_at=now - i, epochs=90, epoch=rng.randint(1, 90),
                    iters_per_epoch=1251, iteration=rng.randint(0, 1251), loss=rng.random() * 5, lr=0.1,
                    ips=rng.random() * 3000, top1=rng.random() * 80, top5=rng.random() * 95, heartbeat=now,
                    eta_end=now + rng.random() * 86400)  # fmt: skip

    store.insert_jobs([job(i, rng.choice(FINISHED)) for i in range(1, finished + 1)])
    store.insert_jobs([job(i, "running") for i in range(finished + 1, finished + running + 1)])
    window = json.dumps({"train.loss": 2.345678, "train.total_ips": 2812.5, "train.lr": 0.1,
                         "train.data_time": 0.01, "train.compute_time": 0.09})  # fmt: skip
    epoch = json.dumps({"train.loss": 2.3, "val.top1": 40.0, "val.top5": 70.0, "epoch.time": 600.0})
    for job_id in range(finished + 1, finished + running + 1):
        rows = [
            (job_id, 1, now - windows + i, 1 + i // 1251, 1 + i % 1251, "train", window)
            for i in range(windows)
        ]
        rows += [
            (job_id, 1, now - windows + i, 1 + i // 1251, None, "epoch", epoch)
            for i in range(0, windows, 1251)
        ]
        samples = [DeviceSample(now - 2 * (SAMPLE_ROUNDS - r), "cuda", c, "H100", 90.0, 60_000.0, 81_559.0, 65.0,
                                500.0, 700.0) for r in range(SAMPLE_ROUNDS) for c in range(cards)]  # fmt: skip
        with store.transaction():
            store.add_metrics(rows)
            store.add_samples(job_id, samples)
    store.checkpoint_wal()
    store.close()


def time_collector(db: Path, rounds: int) -> tuple[list[float], int]:
    from prometheus_client import CollectorRegistry, generate_latest

    from rn50tui.metrics_server import StoreCollector

    store = JobStore(db, create=False)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    times, size = [], 0
    for _ in range(rounds):
        t = time.perf_counter()
        size = len(generate_latest(registry))
        times.append(time.perf_counter() - t)
    store.close()
    return times, size


def time_http(db: Path, rounds: int) -> list[float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    proc = subprocess.Popen([sys.executable, "-m", "rn50tui", "--db", str(db), "metrics", "--listen",
                             f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    url, times = f"http://127.0.0.1:{port}/metrics", []
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until it answers
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("rn50tui metrics did not start") from None
                time.sleep(0.1)
        for _ in range(rounds):
            t = time.perf_counter()
            urllib.request.urlopen(url, timeout=5).read()
            times.append(time.perf_counter() - t)
    finally:
        proc.terminate()
        proc.wait()
    return times


def report(label: str, times: list[float]) -> None:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    print(f"{label:<40} median {statistics.median(ms):7.1f} ms   min {ms[0]:7.1f} ms   p95 {p95:7.1f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--running", type=int, default=100, help="running jobs")
    p.add_argument("--finished", type=int, default=10_000, help="finished jobs")
    p.add_argument("--windows", type=int, default=2000, help="training records per running job")
    p.add_argument("--cards", type=int, default=8, help="cards per running job, sampled 300 times each")
    p.add_argument("--rounds", type=int, default=50, help="timed scrapes of each kind")
    p.add_argument("--db", help="store to use (built if empty; default: a temporary one)")
    args = p.parse_args()
    tmp = None if args.db else tempfile.TemporaryDirectory()
    db = Path(args.db) if args.db else Path(tmp.name) / "jobs.db"
    t = time.perf_counter()
    build(db, args.running, args.finished, args.windows, args.cards)
    print(f"store: {db} ({db.stat().st_size / 2**20:.0f} MiB), built in {time.perf_counter() - t:.1f} s: "
          f"{args.running} running, {args.finished} finished jobs")  # fmt: skip
    times, size = time_collector(db, args.rounds)
    report(f"collector in process ({size // 1024} KiB of text)", times)
    report("GET /metrics of `rn50tui metrics`", time_http(db, args.rounds))
    print("goal: under 50 ms a scrape")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
