"""Requests from the keyboard and the command palette on stored jobs (nothing here starts an engine:
the only CPU slot stays held by a 'running' job this test process supervises)."""

from __future__ import annotations

from rn50tui.app.screens.dialogs import ConfirmScreen, HelpScreen
from rn50tui.app.screens.jobs import JobsScreen
from rn50tui.jobs.core.states import Status

from .conftest import SIZE, add_job, make_app, wait_for


def notes(app) -> str:
    return "\n".join(n.message for n in app._notifications)


def status_of(store, job_id: int) -> Status:
    return store.get_job(job_id).status


async def jobs_table(pilot, app, rows: int):
    return await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen.table.row_count == rows
                          and app.screen.table)  # fmt: skip


async def test_cancel_resume_delete_from_the_keyboard(db_path, store):
    add_job(store, Status.RUNNING, "holder")  # keeps the CPU slot: a resumed job waits, nothing starts
    queued = add_job(store, Status.QUEUED, "waiting")
    stopped = add_job(store, Status.INTERRUPTED, "orphan")
    done = add_job(store, Status.COMPLETED, "done")
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await jobs_table(pilot, app, 4)
        table.select_job(queued.id)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: table.get_cell(str(queued.id), "status").plain == "cancelled")
        assert status_of(store, queued.id) is Status.CANCELLED
        said = lambda: [n for n in app._notifications if f"job {queued.id}" in f"{n.title} {n.message}"]  # noqa: E731
        await wait_for(pilot, said, what="the cancel's toast")
        await pilot.pause(1.0)  # a second toast would have come with the same watch
        assert len(said()) == 1, [(n.title, n.message) for n in said()]

        table.select_job(stopped.id)
        await pilot.press("r")
        await wait_for(pilot, lambda: table.get_cell(str(stopped.id), "status").plain == "queued")
        assert store.get_job(stopped.id).attempt == 2

        table.select_job(done.id)
        await pilot.press("r")
        await wait_for(pilot, lambda: "nothing to resume" in notes(app), what="the refusal toast")
        assert status_of(store, done.id) is Status.COMPLETED

        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # changed my mind
        await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen))
        assert store.find_job(done.id) is not None
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: table.row_count == 3, what="the deleted row to go")
        assert store.find_job(done.id) is None


async def test_command_palette_resumes_a_job_by_name(db_path, store):
    add_job(store, Status.RUNNING, "holder")
    failed = add_job(store, Status.FAILED, "broken", error="boom")
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await jobs_table(pilot, app, 2)
        await pilot.press("ctrl+p")
        await pilot.press(*f"resume job {failed.id}")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: store.get_job(failed.id).status is Status.QUEUED, what="the resume")
        assert f"job {failed.id}: attempt 2 queued" in notes(app)


async def test_help_lists_the_keys_of_the_screen(db_path, store):
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await jobs_table(pilot, app, 0)
        await pilot.press("question_mark")
        help_screen = await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen)
        keys = dict((what, key) for key, what in help_screen.keys)
        assert keys["New"] == "n" and keys["Resume"] == "r" and keys["Cancel"] == "c" and keys["Open"] == "o"
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen))


async def test_quitting_leaves_running_jobs_alone(db_path, store):
    job = add_job(store, Status.RUNNING, "keeps-going")
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await jobs_table(pilot, app, 1)
        await pilot.press("q")
    assert status_of(store, job.id) is Status.RUNNING and store.get_job(job.id).cancel_requested is None


async def test_a_cancel_the_full_disk_refuses_is_a_toast_naming_the_disk(small_disk):
    from rn50tui.jobs.core.store import JobStore

    disk = small_disk(2)
    store = JobStore(disk / "jobs.db")
    queued = add_job(store, Status.QUEUED, "waiting")
    app = make_app(disk / "jobs.db")
    async with app.run_test(size=SIZE) as pilot:
        table = await jobs_table(pilot, app, 1)
        filler = disk / "filler"
        filler.write_bytes(b"")
        with open(filler, "ab") as fh:  # fill every last page of the disk
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError:
                pass
        table.select_job(queued.id)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: "the disk holding it is full" in notes(app), what="the toast")
        assert isinstance(app.screen, JobsScreen)  # a toast, not a traceback screen
        filler.unlink()
    assert status_of(store, queued.id) is Status.QUEUED  # nothing half-done
    store.close()
