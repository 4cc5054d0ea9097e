"""Issue 29: how rn50tui grows with its store — 1k, 10k and 100k jobs (100 metric rows each), 8 running.

    python benchmarks/scale_bench.py [--sizes 1000,10000,100000] [--cache /tmp/rn50tui-scale]
                                     [--rounds 3] [--seconds 10] [--no-cli] [--no-app] [--no-idle]
                                     [--no-compile]

Each size's store of finished jobs is built once with bulk inserts and kept under --cache (100k jobs and
10M metric rows take minutes to build; the next run reuses it); each run copies it and adds 8 running jobs
whose supervisors this process plays. Then, per size:
  - `rn50tui jobs list` (and filtered, and `--all --json`, streamed) in a fresh interpreter, start-up included;
  - the app driven in-process (Textual's test pilot): open until the first rows, the next page when the
    cursor reaches the window's end, a filter, a sort — each until the table shows the answer;
  - the app on a real pty (tui_idle_bench.measure): open time, idle CPU and resident memory on the jobs
    screen and on a running job's detail screen.
The CLI runs from byte-compiled modules, as an installed package does (--no-compile: compiled on every run,
where PYTHONDONTWRITEBYTECODE is set). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import tui_idle_bench  # noqa: E402

from rn50tui.jobs.core.store import JobStore  # noqa: E402

METRICS_PER_JOB = 100


def cached_store(cache: Path, jobs: int) -> Path:
    """The finished-jobs store of this size, built once (bulk inserts) and reused."""
    path = cache / f"finished-{jobs}.db"
    if path.exists() and JobStore(path).count_jobs() == jobs:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    part.unlink(missing_ok=True)
    t = time.perf_counter()
    tui_idle_bench.add_finished(part, jobs, METRICS_PER_JOB)
    for suffix in ("-wal", "-shm"):
        Path(f"{part}{suffix}").unlink(missing_ok=True)
    part.rename(path)
    print(
        f"  built {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.0f} s",
        flush=True,
    )
    return path


def time_cli(db: Path, args: list[str], rounds: int) -> float:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    argv = (
        [sys.executable, *args]
        if args[:1] == ["-c"]
        else [sys.executable, "-m", "rn50tui", "--db", str(db), *args]
    )
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
    return statistics.median(times)


def time_first_bytes(db: Path, rounds: int) -> float:
    """`jobs list --all --json | head -c 4096`: until its first 4 KiB arrive (the list streams)."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "rn50tui", "--db", str(db), "jobs", "list", "--all", "--json"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
        assert proc.stdout is not None
        got = b""
        while len(got) < 4096 and (chunk := proc.stdout.read1(4096 - len(got))):  # type: ignore[attr-defined]
            got += chunk
        times.append(time.perf_counter() - t)
        proc.stdout.close()  # as head does: the writer meets a closed pipe and ends
        proc.wait()
    return statistics.median(times)


async def _app_responses(db: Path) -> dict[str, float]:
    from rn50tui.app.app import Rn50App
    from rn50tui.app.screens.jobs import JobsScreen

    out: dict[str, float] = {}
    app = Rn50App(db, capacity={"mlu": 0, "cuda": 0, "cpu": 8})

    async def until(pilot: Any, cond: Callable[[], Any], timeout: float = 30.0) -> float:
        t = time.perf_counter()
        while not cond():
            if time.perf_counter() - t > timeout:
                return float("nan")
            await pilot.pause(0.005)
        return time.perf_counter() - t

    t0 = time.perf_counter()
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen.table.row_count > 0, 60)
        out["app open (rows shown)"] = time.perf_counter() - t0
        screen = app.screen
        table = screen.table
        await pilot.pause(0.3)
        before, t = table.row_count, time.perf_counter()
        await pilot.press("ctrl+home")  # newest at the bottom: the older page comes above
        await until(pilot, lambda: table.row_count > before)
        out["scroll: next page"] = time.perf_counter() - t
        box = screen.query_one("#filter")
        t = time.perf_counter()
        box.value = "old12"  # as typed: the rows held filter at once, the store's answer follows
        await pilot.pause(0)
        await until(pilot, lambda: screen._token is not None and table.query == "old12")
        out["filter 'old12' (store's answer)"] = time.perf_counter() - t
        box.value = ""
        await pilot.pause(0)
        await until(pilot, lambda: screen._token is not None)
        table.focus()
        t = time.perf_counter()
        table.sort_column = "loss"
        await pilot.pause(0)
        await until(pilot, lambda: screen._token is not None)
        out["sort by loss (store's answer)"] = time.perf_counter() - t
        n, t = table.row_count, time.perf_counter()
        await pilot.press("ctrl+end")  # sorted: the next page comes below
        await until(pilot, lambda: table.row_count > n)
        out["scroll to bottom (sorted): next page"] = time.perf_counter() - t
    return out


def run_size(cache: Path, jobs: int, args: argparse.Namespace) -> dict[str, Any]:
    print(f"{jobs} jobs:", flush=True)
    template = cached_store(cache, jobs)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "jobs.db"
        shutil.copy(template, db)
        ids = tui_idle_bench.make_store(db, 8)
        row: dict[str, Any] = {}
        for label, cmd in () if args.no_cli else (("jobs list", ["jobs", "list"]),
                           ("jobs list --status running", ["jobs", "list", "--status", "running"]),
                           ("jobs list --status failed", ["jobs", "list", "--status", "failed"]),
                           ("jobs list --status completed", ["jobs", "list", "--status", "completed"]),
                           ("jobs list --all --json", ["jobs", "list", "--all", "--json"]),
                           ("--help (every command's parser)", ["--help"]),
                           ("python -c pass (interpreter, site)", ["-c", "pass"])):  # fmt: skip
            row[label] = time_cli(db, cmd, args.rounds)
        if not args.no_cli:
            row["jobs list --all --json | head (first 4 KiB)"] = time_first_bytes(db, args.rounds)
        store = JobStore(db)
        t = time.perf_counter()
        store.changed_since(store.change_token())
        row["poll, nothing changed (in process)"] = time.perf_counter() - t
        store.close()
        if not args.no_app:
            row.update(asyncio.run(_app_responses(db)))
        if not args.no_idle:
            idle = tui_idle_bench.measure(db, ids, args.seconds, 4.0)
            row["app open on a pty"] = idle["open_s"]
            row["idle CPU, jobs screen (%)"] = idle["jobs_cpu"]
            row["idle CPU, detail screen (%)"] = idle["detail_cpu"]
            row["RSS, jobs screen (MiB)"] = idle["jobs_rss"]
            row["RSS, detail screen (MiB)"] = idle["detail_rss"]
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000", help="store sizes in jobs, comma-separated")
    p.add_argument("--cache", default="/tmp/rn50tui-scale", help="where the built stores are kept")
    p.add_argument("--rounds", type=int, default=3, help="timed runs of each CLI command (median)")
    p.add_argument("--seconds", type=float, default=10.0, help="each idle CPU window")
    p.add_argument("--no-cli", action="store_true", help="skip the CLI timings")
    p.add_argument("--no-compile", action="store_true",
                   help="time the CLI without byte-compiling rn50tui and engine first (each run compiles "
                   "every module it imports where PYTHONDONTWRITEBYTECODE is set)")  # fmt: skip
    p.add_argument("--no-app", action="store_true", help="skip the in-process app (pilot) timings")
    p.add_argument("--no-idle", action="store_true", help="skip the pty idle measurements")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if not args.no_compile:  # as an installed wheel has them (this machine sets PYTHONDONTWRITEBYTECODE)
        import compileall

        for package in ("rn50tui", "engine"):
            compileall.compile_dir(ROOT / package, quiet=1)
    rows = {n: run_size(Path(args.cache), n, args) for n in sizes}
    labels = list(next(iter(rows.values())))
    print(
        f"\nrn50tui at scale ({os.cpu_count()} cores; times in ms unless marked; {METRICS_PER_JOB} metric rows per job):"
    )
    print(f"{'':<46}" + "".join(f"{n:>12,}" for n in sizes))
    for label in labels:
        cells = []
        for n in sizes:
            v = rows[n].get(label)
            if v is None:
                cells.append(f"{'-':>12}")
            elif "%" in label or "MiB" in label:
                cells.append(f"{v:>12.1f}")
            else:
                cells.append(f"{v * 1000:>12.1f}")
        print(f"{label:<46}" + "".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
