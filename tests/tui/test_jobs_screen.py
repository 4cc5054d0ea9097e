"""The jobs screen on a store with a job in every state: rows, live values, sort, filter, keys."""

from __future__ import annotations

from rn50tui.app.screens.jobs import JobsScreen
from rn50tui.app.widgets.jobs_table import JobsTable
from rn50tui.jobs.core.states import Status

from .conftest import NOW, SIZE, add_job, make_app, wait_for


def fill(store):
    jobs = {}
    jobs["queued"] = add_job(store, Status.QUEUED, "waiting")
    jobs["starting"] = add_job(store, Status.STARTING, "booting", cards_granted=[0])
    jobs["running"] = add_job(store, Status.RUNNING, "training", started_at=NOW - 125, epoch=2, epochs=3,
                              iteration=15, iters_per_epoch=30, ips=100.0, loss=2.5, world_size=1)  # fmt: skip
    jobs["completed"] = add_job(store, Status.COMPLETED, "done", started_at=NOW - 4000, finished_at=NOW - 400,
                                epoch=3, epochs=3, top1=71.25, loss=1.1)  # fmt: skip
    jobs["failed"] = add_job(store, Status.FAILED, "broken", error="the engine exited with 1")
    jobs["cancelled"] = add_job(store, Status.CANCELLED, "stopped")
    jobs["interrupted"] = add_job(store, Status.INTERRUPTED, "orphan", error="its supervisor is gone")
    return jobs


def cell(table: JobsTable, job_id: int, column: str) -> str:
    return table.get_cell(str(job_id), column).plain


async def test_every_state_is_listed_with_rendered_values(db_path, store):
    jobs = fill(store)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await wait_for(
            pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen.table, what="jobs"
        )
        await wait_for(pilot, lambda: table.row_count == 7, what="7 rows")
        for status, job in jobs.items():
            assert cell(table, job.id, "status") == status
        running = jobs["running"].id
        assert cell(table, running, "eta") == "14s"  # 45 iterations × 32 images / 100 img/s
        assert cell(table, running, "duration") == "2m05s"  # the fixed clock's now - started_at
        assert cell(table, running, "epoch") == "2/3 · 15/30"
        assert cell(table, running, "progress").endswith("50%")
        assert cell(table, jobs["completed"].id, "top1") == "71.25"
        summary = str(app.screen.query_one("#summary").render())
        assert "1 running" in summary and "1 interrupted" in summary


async def test_rows_update_in_place(db_path, store):
    jobs = fill(store)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen.table)
        await wait_for(pilot, lambda: table.row_count == 7)
        keys_before = list(table.rows)
        with store.transaction():
            store.update_job(jobs["running"].id, loss=0.1234, iteration=20)
        await wait_for(pilot, lambda: cell(table, jobs["running"].id, "loss") == "0.1234", what="new loss")
        assert list(table.rows) == keys_before  # same row objects: updated, not rebuilt
        new = add_job(store, Status.QUEUED, "late")
        await wait_for(pilot, lambda: table.row_count == 8, what="the new job")
        store.delete_job(new.id)
        await wait_for(pilot, lambda: table.row_count == 7, what="the removed job")


def names(table) -> list[str]:
    return [table.get_row_at(i)[2].plain for i in range(table.row_count)]


async def test_sort_and_filter(db_path, store):
    jobs = fill(store)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen.table)
        await wait_for(pilot, lambda: table.row_count == 7)
        await pilot.press("slash", *"fail")
        await wait_for(pilot, lambda: table.row_count == 1, what="filtered to one")
        assert cell(table, jobs["failed"].id, "name") == "broken"
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == 7)
        table.focus()
        table.sort_column = "name"  # the store's answer, sorted
        await wait_for(pilot, lambda: names(table) == sorted(names(table)), what="sorted by name")
        await pilot.press("S")
        await wait_for(pilot, lambda: names(table) == sorted(names(table), reverse=True), what="reversed")
        assert table.row_count == 7
