"""The app driving the real job manager: real supervisors, real engine runs (tiny, synthetic, CPU)."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from rn50tui.app.screens.detail import JobDetailScreen
from rn50tui.app.screens.dialogs import ConfirmScreen
from rn50tui.app.screens.jobs import JobsScreen
from rn50tui.app.screens.new_job import NewJobScreen
from rn50tui.app.widgets.card_panel import CardPanel
from rn50tui.app.widgets.chart import MetricChart
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.manager import JobManager

from .conftest import CAPACITY, SIZE, make_app, wait_for

pytestmark = pytest.mark.slow

TINY = "--image-size 32 -p 1 --warmup 0"  # a demo run of seconds: 32 px, a log line per iteration


@pytest.fixture(autouse=True)
def quick_supervisor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RN50TUI_POLL_S", "0.2")  # the supervisor follows the engine every 0.2 s
    monkeypatch.setenv("RN50TUI_SAMPLE_INTERVAL_S", "0.5")
    monkeypatch.setenv("RN50TUI_CANCEL_GRACE_S", "30")


def status_cell(app, job_id: int) -> str:
    screen = app.screen
    if not isinstance(screen, JobsScreen) or str(job_id) not in {k.value for k in screen.table.rows}:
        return ""
    return screen.table.get_cell(str(job_id), "status").plain


async def test_submit_demo_from_the_form_watch_it_run_quit_and_reopen(db_path, store, cleanup_jobs):
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.services.client is not None)
        await pilot.press("n")
        form = await wait_for(pilot, lambda: isinstance(app.screen, NewJobScreen) and app.screen)
        form.query_one("#epochs", Input).value = "1"
        form.query_one("#batch_size", Input).value = "8"
        form.query_one("#extra", Input).value = f"{TINY} --synthetic-size 96"
        await wait_for(pilot, lambda: form.verdict is not None and form.verdict.ok and form.values().epochs == "1",
                       what=f"a valid form ({form.verdict})")  # fmt: skip
        await pilot.press("ctrl+s")
        await wait_for(
            pilot, lambda: isinstance(app.screen, JobsScreen), timeout=60, what="the form to close"
        )
        job_id = store.list_jobs()[0].id
        await wait_for(pilot, lambda: status_cell(app, job_id) == "running", timeout=60, what="running")
        await pilot.press("q")  # quitting never stops a job
    assert store.get_job(job_id).status in (Status.RUNNING, Status.COMPLETED)

    app = make_app(db_path)  # reopening shows the job as it is, and it goes on to finish
    async with app.run_test(size=SIZE) as pilot:
        table = await wait_for(
            pilot,
            lambda: isinstance(app.screen, JobsScreen) and app.screen.table.row_count and app.screen.table,
        )
        table.select_job(job_id)
        await pilot.press("enter")
        detail = await wait_for(pilot, lambda: isinstance(app.screen, JobDetailScreen) and app.screen)
        loss = detail.query_one("#chart-loss", MetricChart)
        await wait_for(pilot, lambda: loss.point_count > 0, timeout=120, what="the loss chart to fill")
        summary = detail.query_one("#job-summary", Static)
        await wait_for(pilot, lambda: "completed" in str(summary.render()), timeout=180, what="completed")
        acc = detail.query_one("#chart-acc", MetricChart)
        await wait_for(pilot, lambda: acc.point_count >= 2, what="top-1 and top-5 of the epoch")
        raw = lambda: len(loss.curves[-1][1][0]) if loss.curves else 0  # noqa: E731 (the raw -p window curve)
        await wait_for(pilot, lambda: raw() == 12, what="every training iteration (96 / 8)")
        assert detail.query_one("#chart-ips", MetricChart).point_count > 0
        await pilot.press("2")
        await wait_for(pilot, lambda: detail.query(CardPanel), what="the CPU's card panel")
    job = store.get_job(job_id)
    assert job.status is Status.COMPLETED and job.top1 is not None and job.last_checkpoint


async def test_cancel_and_resume_from_the_keyboard(db_path, store, cleanup_jobs):
    jm = JobManager(db_path, capacity=dict(CAPACITY))
    flags = ["--epochs", "1", "-b", "8", "--synthetic-size", "480", *TINY.split()]
    job_id = jm.submit(preset="demo", engine_flags=flags).id
    jm.close()
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await wait_for(
            pilot,
            lambda: isinstance(app.screen, JobsScreen) and app.screen.table.row_count and app.screen.table,
        )
        await wait_for(
            pilot, lambda: (store.get_job(job_id).iteration or 0) >= 2, timeout=120, what="training steps"
        )
        table.select_job(job_id)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: status_cell(app, job_id) == "cancelled", timeout=90, what="cancelled")
        stopped = store.get_job(job_id)
        assert stopped.last_checkpoint, "a cancelled run checkpoints before it stops"
        await pilot.press("r")
        await wait_for(pilot, lambda: store.get_job(job_id).attempt == 2, what="the next attempt")
        await wait_for(pilot, lambda: status_cell(app, job_id) == "running", timeout=60, what="running again")
        await wait_for(pilot, lambda: status_cell(app, job_id) == "completed", timeout=240, what="completed")
    job = store.get_job(job_id)
    assert job.attempt == 2 and job.resume_from, "the second attempt continued from the checkpoint"
