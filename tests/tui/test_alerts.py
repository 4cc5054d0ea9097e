"""Notifications wherever the user is: a job that ends or stalls shows a toast (and rings if asked);
the table and the detail header mark a stalled job with the time since its last progress."""

from __future__ import annotations

from rn50tui.app import messages
from rn50tui.app.screens.detail import JobDetailScreen
from rn50tui.app.screens.jobs import JobsScreen
from rn50tui.jobs.core.states import Status

from .conftest import NOW, SIZE, add_job, make_app, wait_for


def header(app) -> str:
    """The detail screen's header text ('' until it is composed)."""
    found = app.screen.query("#job-summary")
    return str(found.first().render()) if found else ""


def toasts(app) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def test_final_states_and_stalls_notify_on_any_screen_and_ring_if_asked(db_path, store):
    done_before = add_job(store, Status.COMPLETED, "old", best_top1=50.0)
    running = add_job(store, Status.RUNNING, "trainer", started_at=NOW - 900, heartbeat=NOW)
    other = add_job(store, Status.RUNNING, "second", started_at=NOW - 900, heartbeat=NOW)
    app = make_app(db_path, bell=True)
    rings = []
    app.bell = lambda: rings.append(1)
    async with app.run_test(size=SIZE) as pilot:
        table = await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen.table)
        await wait_for(pilot, lambda: table.row_count == 3, what="3 rows")
        await wait_for(pilot, lambda: app.alerts.seen is not None, what="the alerts' baseline")
        app.post_message(
            messages.OpenJob(running.id)
        )  # the user is elsewhere: on another job's detail screen
        await wait_for(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        with store.transaction():
            store.update_job(running.id, stalled_at=NOW - 10, last_progress_at=NOW - 700)
        await wait_for(pilot, lambda: any("stalled" in t for t in toasts(app)), what="the stall toast")
        assert "job 1 " not in " ".join(toasts(app))  # a job that ended before the app opened is not news
        await wait_for(pilot, lambda: "stalled: no training progress for 11m40s"
                       in header(app), what="the detail header's mark")  # fmt: skip
        with store.transaction():
            store.update_job(other.id, status="completed", finished_at=NOW, best_top1=76.5)
        await wait_for(pilot, lambda: any("completed" in t for t in toasts(app)), what="the final toast")
        assert f"job {other.id} completed: second: best top-1 76.50" in toasts(app)
        assert f"job {running.id} stalled: trainer: no progress for 11m40s" in toasts(app)
        assert len(rings) == 2
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen))
        await wait_for(pilot, lambda: table.get_cell(str(running.id), "status").plain == "⚠ stall 11m")
    assert done_before.id == 1


async def test_no_bell_unless_asked(db_path, store):
    running = add_job(store, Status.RUNNING, "trainer", started_at=NOW - 900)
    app = make_app(db_path, bell=False)
    rings = []
    app.bell = lambda: rings.append(1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.alerts.seen is not None, what="the first watch")
        with store.transaction():
            store.update_job(
                running.id, status="failed", finished_at=NOW, error="the engine exited with 1\ntrace"
            )
        await wait_for(pilot, lambda: toasts(app), what="the failure toast")
    assert toasts(app) == [f"job {running.id} failed: trainer: the engine exited with 1"] and rings == []


async def test_a_queued_job_held_back_by_a_busy_card_is_marked_and_its_detail_says_why(db_path, store):
    waiting = add_job(store, Status.QUEUED, "waiter", device="mlu")
    store.update_job(waiting.id, wait_reason="MLU 2 in use outside rn50tui: 11.2 GiB, pid 4711")
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen.table)
        await wait_for(pilot, lambda: table.row_count == 1, what="the row")
        assert table.get_cell(str(waiting.id), "status").plain == "queued ⚠"
        app.post_message(messages.OpenJob(waiting.id))
        await wait_for(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        await wait_for(pilot, lambda: "waits: MLU 2 in use outside rn50tui: 11.2 GiB, pid 4711"
                       in header(app), what="the reason")  # fmt: skip


def test_the_watch_reads_only_the_jobs_that_left_the_active_ones():
    from types import SimpleNamespace

    from rn50tui.app.alerts import JobAlerts

    def job(id_, status, **kw):
        cols = {"name": f"j{id_}", "best_top1": None, "error": None, "heartbeat": NOW, "stalled_at": None,
                "last_progress_at": None, **kw}  # fmt: skip
        return SimpleNamespace(id=id_, status=status, **cols)

    alerts = JobAlerts()
    first = [job(1, Status.RUNNING), job(2, Status.QUEUED), job(3, Status.RUNNING)]
    assert alerts.gone(first) == [] and alerts.changes(first, [], NOW) == []  # the baseline
    now_active = [
        job(2, Status.RUNNING),
        job(3, Status.RUNNING, stalled_at=NOW - 5, last_progress_at=NOW - 90),
    ]
    assert alerts.gone(now_active) == [1]  # only job 1 is read again
    told = alerts.changes(now_active, [job(1, Status.FAILED, error="boom\ntrace")], NOW)
    assert [(a.title, a.message, a.severity) for a in told] == [
        ("job 1 failed", "j1: boom", "error"),
        ("job 3 stalled", "j3: no progress for 1m30s", "warning"),
    ]
    assert alerts.changes(now_active, [], NOW) == []  # a stall is news once
