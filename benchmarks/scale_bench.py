"""Issue 29: how rn50tui grows with its store — 1k, 10k and 100k jobs (100 metric rows each), 8 running.

    python benchmarks/scale_bench.py [--sizes 1000,10000,100000] [--cache /tmp/rn50tui-scale]
                                     [--rounds 3] [--seconds 10] [--no-cli] [--no-app] [--no-idle]
                                     [--no-compile] [--app-rounds 3] [--app-root DIR] [--profile DIR]
                                     [--pilot]

Each size's store of finished jobs is built once with bulk inserts and kept under --cache (100k jobs and
10M metric rows take minutes to build; the next run reuses it); each run copies it and adds 8 running jobs
whose supervisors this process plays. Then, per size:
  - `rn50tui jobs list` (and filtered, and `--all --json`, streamed) in a fresh interpreter, start-up included;
  - the app on a real pty answering keys, as a user sees it: from the key's bytes written to the pty until
    the bytes that show the answer are drawn (the summary line's "N of M loaded" grown by a page after
    ctrl+home and after ctrl+end; "filter: 'old12' (… shown of <the store's count>)" after "/old12" typed
    80 ms a key, timed from the last key; the count of all jobs back after Esc, which Textual holds
    ESCDELAY = 100 ms to tell from a key sequence; the oldest job, old0, drawn after a click on the loss
    header) — each the median of --app-rounds sessions; --app-root runs the app from another checkout
    (before and after on the same machine); --profile writes cProfile stats of the app's main thread;
  - with --pilot, the same answers in-process through Textual's test pilot (its own floor is 65-90 ms);
  - the app on a real pty (tui_idle_bench.measure): open time, idle CPU and resident memory on the jobs
    screen and on a running job's detail screen.
The CLI runs from byte-compiled modules, as an installed package does (--no-compile: compiled on every run,
where PYTHONDONTWRITEBYTECODE is set). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

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


CTRL_HOME, CTRL_END = b"\x1b[1;5H", b"\x1b[1;5F"
LOADED = re.compile(rb"(\d+) of (\d+) loaded")  # the summary line: how many jobs the window holds


def _click(x: int, y: int) -> bytes:
    """A left click at screen cell (x, y), 0-based, as an xterm sends it in SGR mouse mode."""
    return b"\x1b[<0;%d;%dM\x1b[<0;%d;%dm" % (x + 1, y + 1, x + 1, y + 1)


def _header_x(column: str) -> int:
    """The screen column of the middle of a jobs-table header (each column padded by one each side)."""
    from rn50tui.app.widgets.jobs_table import COLUMNS

    x = 0
    for col in COLUMNS:
        if col.key == column:
            return x + 1 + col.width // 2
        x += col.width + 2
    raise ValueError(column)


def _answer(master: int, keys: list[bytes], drawn: Callable[[int], Optional[Any]], gap: float = 0.0) -> float:
    """Seconds from the last of `keys` written to the app's pty until `drawn(offset)` finds the answer in
    what the app drew after it (keys before the last are typed `gap` apart, as a user types; nan if the
    answer never came)."""
    for key in keys[:-1]:
        os.write(master, key)
        time.sleep(gap)
    since = tui_idle_bench.received()
    t = time.perf_counter()
    os.write(master, keys[-1])
    return float("nan") if drawn(since) is None else time.perf_counter() - t


def _text(pattern: bytes, timeout: float = 30.0) -> Callable[[int], Optional[Any]]:
    return lambda since: tui_idle_bench.wait_drawn(re.compile(pattern), since, timeout)


def _more_than(held: int, timeout: float = 30.0) -> Callable[[int], Optional[Any]]:
    """The summary line saying the window holds more than `held` jobs."""

    def drawn(since: int) -> Optional[Any]:
        deadline = time.monotonic() + timeout
        while (found := tui_idle_bench.wait_drawn(LOADED, since, deadline - time.monotonic())) is not None:
            if int(found.group(1)) > held:
                return found
            since = tui_idle_bench.received() - (len(tui_idle_bench.SEEN) - found.end())
        return None

    return drawn


def _held() -> int:
    """How many jobs the summary line said the window holds, last."""
    found = list(LOADED.finditer(tui_idle_bench.seen()))
    return int(found[-1].group(1)) if found else 0


def _settle(seconds: float = 1.5) -> None:
    time.sleep(seconds)  # the answer before has landed and its polls have settled


def pty_answers(db: Path, ids: list[int], profile: Optional[Path] = None) -> dict[str, float]:
    """The app on a real pty, 8 jobs running: from a key written to the screen's answer drawn."""
    store = JobStore(db)
    total, matching = store.count_jobs(), store.count_matching("old12")
    store.close()
    stop = threading.Event()
    writer = threading.Thread(target=tui_idle_bench.play_supervisors, args=(db, ids, stop), daemon=True)
    writer.start()
    t0 = time.perf_counter()
    start = tui_idle_bench.received()
    proc, master = tui_idle_bench.start_app(db, profile)
    out: dict[str, float] = {}
    try:
        tui_idle_bench.wait_drawn(LOADED, start, 60.0)
        out["pty: open (rows and summary drawn)"] = time.perf_counter() - t0
        _settle()
        # the newest jobs at the bottom: ctrl+home goes to the top, where the older page comes above
        out["pty: ctrl+home, next page (summary)"] = _answer(master, [CTRL_HOME], _more_than(_held()))
        _settle()
        typed = [b"/", *(bytes([c]) for c in b"old12")]
        answer = rb"filter: 'old12' \(\d+ shown of %d\)" % matching
        out["pty: filter 'old12' typed (store's answer)"] = _answer(master, typed, _text(answer), gap=0.08)
        _settle()
        out["pty: filter cleared (Esc)"] = _answer(master, [b"\x1b"], _text(rb"\d+ of %d loaded" % total))
        _settle()
        # a click on the loss header: the lowest losses (0.0) are the oldest jobs, old0 first
        click = _click(_header_x("loss"), 1)
        out["pty: click 'loss' header (store's first row)"] = _answer(master, [click], _text(rb"old0[^0-9]"))
        _settle()
        out["pty: ctrl+end sorted, next page (summary)"] = _answer(master, [CTRL_END], _more_than(_held()))
    finally:  # Esc (the filter, if any), then quit
        tui_idle_bench.close_app(master, proc, [b"\x1b", b"q"], stop, writer, pause=0.3)
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
        if args.pilot:
            row.update(asyncio.run(_app_responses(db)))
        if not args.no_app:  # each answer's median over --app-rounds sessions of the app
            runs = [pty_answers(db, ids, args.profile and args.profile / f"answers-{jobs}.prof")
                    for _ in range(args.app_rounds)]  # fmt: skip
            row.update({label: statistics.median(run[label] for run in runs) for label in runs[0]})
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
    p.add_argument("--no-app", action="store_true", help="skip the app's answers to keys on a pty")
    p.add_argument(
        "--profile",
        type=Path,
        help="a folder for cProfile stats of the app's main thread "
        "while it answers keys on the pty (answers-<size>.prof)",
    )
    p.add_argument("--app-rounds", type=int, default=3, help="sessions of the app answering keys (median)")
    p.add_argument(
        "--app-root",
        type=Path,
        help="run the app on the pty from this checkout instead "
        "(e.g. `git worktree add /tmp/base main`: before and after on the same machine)",
    )
    p.add_argument("--pilot", action="store_true",
                   help="also time the answers in-process with Textual's test pilot (its own floor is 65-90 ms)")  # fmt: skip
    p.add_argument("--no-idle", action="store_true", help="skip the pty idle measurements")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.app_root:
        tui_idle_bench.ROOT = args.app_root.resolve()  # the pty app's PYTHONPATH
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
