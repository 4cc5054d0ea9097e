"""Make docs/screenshot.svg (and docs/screenshot-jobs.svg): the app watching a live `demo` run.

    python docs/make_screenshot.py

Runs the real thing in a temp folder: a short demo job that completes, then the `demo` preset submitted
from the new-job form (as a person would: n, Ctrl+S) and watched until its first epoch is validated,
with a third job queued behind it. Takes about a minute on two CPU cores.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RN50TUI_CARDS", "mlu=0,cuda=0,cpu=1")
os.environ.setdefault("RN50TUI_POLL_S", "0.5")
os.environ.setdefault("RN50TUI_SAMPLE_INTERVAL_S", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")

from rn50tui.app.app import Rn50App  # noqa: E402
from rn50tui.app.screens.detail import JobDetailScreen  # noqa: E402
from rn50tui.app.screens.jobs import JobsScreen  # noqa: E402
from rn50tui.app.screens.new_job import NewJobScreen  # noqa: E402
from rn50tui.jobs.core.states import Status  # noqa: E402
from rn50tui.jobs.manager import JobManager  # noqa: E402

SIZE = (140, 42)
CAPACITY = {"mlu": 0, "cuda": 0, "cpu": 1}


async def until(pilot, condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        await pilot.pause(0.2)
    return value


async def shoot(db: Path, out: Path) -> None:
    jm = JobManager(db, capacity=CAPACITY)
    warmup = jm.submit(
        preset="demo",
        name="demo-short",
        engine_flags=["--epochs", "1", "--warmup", "0", "--synthetic-size", "320"],
    )
    app = Rn50App(db, capacity=CAPACITY)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: jm.get_job(warmup.id).status.terminal, 300, "the short demo")
        await pilot.press("n")
        form = await until(pilot, lambda: isinstance(app.screen, NewJobScreen) and app.screen, 30, "the form")
        await until(pilot, lambda: form.verdict is not None and form.verdict.ok, 30, "a valid form")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen), 60, "the submit")
        live = max(j.id for j in jm.list_jobs())
        data = db.parent / "imagenet"
        for split in ("train", "val"):
            (data / split).mkdir(parents=True, exist_ok=True)
        jm.submit(
            preset="ngc-amp-90e", name="imagenet-amp", cards=1, device="cpu", data=str(data), start=False
        )
        await until(pilot, lambda: jm.get_job(live).status is Status.RUNNING, 120, "the demo to run")
        await until(
            pilot,
            lambda: (jm.get_job(live).epoch or 0) >= 2 and (jm.get_job(live).iteration or 0) >= 10,
            600,
            "epoch 2",
        )
        await pilot.pause(2.0)
        app.save_screenshot(filename="screenshot-jobs.svg", path=str(out))
        app.screen.table.select_job(live)
        await pilot.press("enter")
        detail = await until(
            pilot, lambda: isinstance(app.screen, JobDetailScreen) and app.screen, 30, "the detail"
        )
        await until(pilot, lambda: detail.query_one("#chart-acc").point_count >= 2, 60, "top-1 of epoch 1")
        await pilot.pause(3.0)
        app.save_screenshot(filename="screenshot.svg", path=str(out))
    for job in reversed(jm.list_jobs([Status.QUEUED, Status.STARTING, Status.RUNNING])):  # queued first
        jm.cancel(job.id, wait=True)
    jm.close()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(shoot(Path(tmp) / "jobs.db", ROOT / "docs"))
    print(f"wrote {ROOT / 'docs' / 'screenshot.svg'} and screenshot-jobs.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
