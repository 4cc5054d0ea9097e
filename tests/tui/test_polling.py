"""One way to receive data: a screen polls only while it is on top, one timer each."""

from __future__ import annotations

from rn50tui.app.screens.detail import JobDetailScreen
from rn50tui.app.screens.jobs import JobsScreen
from rn50tui.jobs.core.states import Status

from .conftest import SIZE, add_job, make_app, wait_for


async def test_a_hidden_jobs_screen_reads_nothing_and_polls_again_when_back(db_path, store):
    add_job(store, Status.RUNNING, "watched")
    app = make_app(db_path, poll_scale=0.2)  # polls every 0.1 s: a second timer would show at once
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.services.client is not None)
        client, reads = app.services.client, []
        changed_since = client.changed_since  # every poll after the first reads what changed
        client.changed_since = lambda *a, **kw: reads.append(1) or changed_since(*a, **kw)
        await wait_for(pilot, lambda: len(reads) >= 3, what="the jobs screen polling")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobDetailScreen), what="the detail screen")
        await pilot.pause(0.3)
        hidden = len(reads)
        await pilot.pause(1.5)  # 15 poll periods
        assert len(reads) == hidden
        await pilot.press("escape")
        await wait_for(
            pilot, lambda: isinstance(app.screen, JobsScreen) and len(reads) > hidden, what="polls"
        )
