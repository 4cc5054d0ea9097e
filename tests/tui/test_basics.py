"""The pieces without a screen: formatting with an injected time, and the no-torch boundary."""

from __future__ import annotations

import subprocess
import sys

from rn50tui.app import fmt
from rn50tui.app.app import Rn50App
from rn50tui.app.screens.dialogs import ErrorScreen
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import Job

from .conftest import ROOT_ENV, SIZE, wait_for


def job(**values) -> Job:
    base = {"id": 1, "name": "j", "kind": "train", "argv": ["-b", "16"], "device": "cpu", "cards_requested": 1,
            "workspace": "/tmp/nowhere", "status": Status.RUNNING}  # fmt: skip
    return Job.of(**{**base, **values})


def test_durations_and_numbers():
    assert [fmt.duration(s) for s in (None, 0, 59, 61, 3599, 3600, 90061)] == [
        "—",
        "0s",
        "59s",
        "1m01s",
        "59m59s",
        "1h00m",
        "1d01h",
    ]
    assert fmt.progress_bar(0.5, 4) == "██░░  50%" and fmt.progress_bar(None) == "—"
    assert fmt.mib(512) == "512 MiB" and fmt.mib(2048) == "2.0 GiB"
    # as the engine's parser reads it: the last flag wins, and without one the engine's default
    assert fmt.batch_size(["-b", "8", "--batch-size=64"]) == 64 and fmt.batch_size(["--lr", "1"]) == 256


def test_eta_from_images_per_second_or_from_elapsed_time():
    running = job(epoch=1, epochs=2, iteration=50, iters_per_epoch=100, ips=160.0, started_at=1000.0)
    assert fmt.eta_seconds(running, now=1100.0) == 150 * 16 / 160.0  # remaining images / rate
    no_rate = job(epoch=1, epochs=2, iteration=50, iters_per_epoch=100, argv=[], started_at=1000.0)
    assert fmt.eta_seconds(no_rate, now=1100.0) == 300.0  # a quarter done in 100 s
    assert fmt.eta_seconds(job(status=Status.QUEUED), now=0) is None
    assert fmt.run_time(job(status=Status.COMPLETED, started_at=10.0, finished_at=70.0), now=1e9) == 60.0


def test_the_app_never_imports_torch():
    code = (
        "import sys, pkgutil, importlib, rn50tui, rn50tui.app.screens, rn50tui.app.widgets\n"
        "for pkg in (rn50tui, rn50tui.app.screens, rn50tui.app.widgets):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if not m.name.endswith('__main__'):  # that one runs the CLI\n"
        "            importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ROOT_ENV, timeout=120,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


async def test_a_store_that_cannot_open_says_why(tmp_path):
    bad = tmp_path / "jobs.db"
    bad.write_bytes(b"this is not a database" * 100)
    app = Rn50App(bad)
    async with app.run_test(size=SIZE) as pilot:
        screen = await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen) and app.screen)
        assert "cannot open the job store" in screen.title_text
