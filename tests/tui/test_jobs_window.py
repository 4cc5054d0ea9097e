"""Issue 29: the jobs table holds a window of a big store, reaches every job by scrolling and by filter,
and each poll picks up a change to a job beyond the first page."""

from __future__ import annotations

from rn50tui.app.screens.jobs import JobsScreen
from rn50tui.jobs.core.states import Status

from .conftest import NOW, SIZE, add_job, make_app, wait_for

JOBS = 500


def fill(store) -> None:
    store.insert_jobs([dict(name=f"old{i}", kind="train", argv=[], device="cpu", cards_requested=1,
                            workspace=f"runs/old{i}", status="completed", attempt=1, created_at=NOW - 9000 + i,
                            updated_at=NOW - 9000 + i, finished_at=NOW - 8000 + i) for i in range(1, JOBS + 1)])  # fmt: skip


async def open_jobs(app, pilot):
    screen = await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen, what="jobs")
    table = screen.table
    await wait_for(pilot, lambda: table.row_count >= screen.PAGE, what="the first page")
    return screen, table


async def test_the_window_starts_with_a_page_and_scrolling_reaches_every_job(db_path, store):
    fill(store)
    app = make_app(db_path, poll_scale=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_jobs(app, pilot)
        assert table.row_count == screen.PAGE and JOBS in table.jobs
        assert 1 not in table.jobs  # the oldest job is not read yet
        for _ in range(JOBS // screen.PAGE + 2):  # newest at the bottom: older pages come above
            await pilot.press("ctrl+home")
            await pilot.pause(0.2)
        await wait_for(pilot, lambda: table.row_count == JOBS, what="every job by scrolling")
        assert set(table.jobs) == set(range(1, JOBS + 1))
        table.sort_column = "name"  # sorted by the store: a new window, more at the bottom this time
        await wait_for(pilot, lambda: table.row_count == screen.PAGE, what="the sorted first page")
        for _ in range(JOBS // screen.PAGE + 2):
            await pilot.press("ctrl+end")
            await pilot.pause(0.2)
        await wait_for(pilot, lambda: table.row_count == JOBS, what="every job, sorted, by scrolling")


async def test_the_mouse_wheel_pages_the_window_as_the_keys_do(db_path, store):
    from textual import events

    fill(store)
    app = make_app(db_path, poll_scale=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_jobs(app, pilot)

        async def wheel_for_a_page(down: bool) -> None:
            """Turn the wheel until the window holds another page."""
            kind, before = (events.MouseScrollDown if down else events.MouseScrollUp), table.row_count
            for _ in range(200):
                table.post_message(kind(table, 10, 5, 0, 1 if down else -1, 0, False, False, False))
                await pilot.pause(0.01)
                if table.row_count > before:
                    return
            await wait_for(pilot, lambda: table.row_count > before, what="a page by the wheel")

        cursor = table.cursor_job_id
        while table.row_count < JOBS:  # newest at the bottom: older pages come above the view
            await wheel_for_a_page(down=False)
        assert set(table.jobs) == set(range(1, JOBS + 1)) and table.cursor_job_id == cursor  # the view moved
        assert screen._loaded == JOBS  # each page read once, none skipped, however fast the wheel turns
        table.sort_column = "name"  # sorted: more at the bottom
        await wait_for(pilot, lambda: table.row_count == screen.PAGE, what="the sorted first page")
        cursor = table.cursor_job_id
        while table.row_count < JOBS:
            await wheel_for_a_page(down=True)
        assert table.cursor_job_id == cursor  # the wheel moved the view, not the cursor


async def test_filter_reaches_a_job_beyond_the_first_page(db_path, store):
    fill(store)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_jobs(app, pilot)
        assert 7 not in table.jobs
        await pilot.press("slash", *"old7 ")
        await wait_for(pilot, lambda: 7 in table.jobs and table.get_cell("7", "name").plain == "old7",
                       what="job 7 by filter")  # fmt: skip
        assert set(table.jobs) == {j for j in range(1, JOBS + 1) if f"old{j}".startswith("old7")}


async def test_a_poll_picks_up_a_change_to_an_old_job(db_path, store):
    fill(store)
    running = add_job(store, Status.RUNNING, "live", loss=1.0)
    app = make_app(db_path, poll_scale=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_jobs(app, pilot)
        await wait_for(pilot, lambda: running.id in table.jobs, what="the running job")
        with store.transaction():
            store.update_job(3, name="renamed", top1=12.5)  # beyond the first page
            store.update_job(running.id, loss=0.25)
        await wait_for(pilot, lambda: table.jobs.get(3) and table.jobs[3].name == "renamed", what="old job 3")
        await wait_for(
            pilot, lambda: table.get_cell(str(running.id), "loss").plain == "0.2500", what="new loss"
        )
        store.delete_job(3)
        await wait_for(pilot, lambda: 3 not in table.jobs, what="the removed job gone")


async def test_the_next_page_is_read_ahead_and_kept_up_to_date_until_the_cursor_takes_it(db_path, store):
    fill(store)
    app = make_app(db_path, poll_scale=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_jobs(app, pilot)
        # the page after the first, read while nobody scrolls (jobs 400..301), not yet in the table
        await wait_for(pilot, lambda: screen._ahead is not None, what="the page read ahead")
        assert table.row_count == screen.PAGE and {j.id for j in screen._ahead.jobs} == set(range(301, 401))
        with store.transaction():
            store.update_job(350, name="renamed")  # in the page held ahead
        store.delete_job(360)
        await wait_for(pilot, lambda: any(j.name == "renamed" for j in screen._ahead.jobs), what="the news")
        assert 360 not in {j.id for j in screen._ahead.jobs}
        reads = []
        window = app.services.client.job_window
        app.services.client.job_window = lambda **kw: (
            reads.append((kw["offset"], 301 in table.jobs)) or window(**kw)
        )
        await pilot.press("ctrl+home")  # newest at the bottom: the older page comes above, at once
        assert (
            301 in table.jobs and table.get_cell("350", "name").plain == "renamed" and 360 not in table.jobs
        )
        await wait_for(pilot, lambda: screen._ahead is not None and screen._ahead.offset == 2 * screen.PAGE,
                       what="the page after it, read ahead")  # fmt: skip
        assert reads == [(2 * screen.PAGE, True)]  # the only read: the next page's, once this one was in


def _chars(lines):
    """(character, style) of every cell of a rendered cell's lines: segment boundaries do not matter."""
    return [(ch, seg.style) for line in lines for seg in line for ch in seg.text]


async def test_the_tables_own_cell_renderer_draws_what_textuals_draws(db_path, store):
    """JobsTable renders body cells itself (fast, cached by cell); every kind of cell, under the cursor,
    hovered, on both zebra stripes and unfocused, reads character for character as Textual's own."""
    from textual.widgets import DataTable

    fill(store)
    for status in (Status.QUEUED, Status.RUNNING, Status.FAILED, Status.CANCELLED, Status.INTERRUPTED):
        add_job(store, status, name="a-rather-long-job-name-that-is-cropped", loss=1.23456, top1=55.5, ips=812.25,
                epochs=90, epoch=3, iters_per_epoch=100, iteration=40, started_at=NOW - 3600)  # fmt: skip
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_jobs(app, pilot)
        await wait_for(pilot, lambda: JOBS + 5 in table.jobs, what="the active jobs")
        table.toggle_mark()
        await pilot.pause(0.1)
        compared = 0
        for focused in (True, False):
            if not focused:
                screen.query_one("#filter").display = True
                screen.query_one("#filter").focus()
                await pilot.pause(0.1)
            table._pseudo_class_state = table.get_pseudo_class_state()
            for row in [
                0,
                1,
                table.cursor_row,
                table.row_count - 1,
                *range(table.row_count - 6, table.row_count),
            ]:
                style = table._get_row_style(row, table.rich_style)
                for col, column in enumerate(table.ordered_columns):
                    width = column.get_render_width(table)
                    for cursor, hover in ((False, False), (True, False), (False, True)):
                        table._show_hover_cursor = hover
                        ours = table._render_cell(row, col, style, width, cursor, hover)
                        theirs = DataTable._render_cell(table, row, col, style, width, cursor, hover)
                        assert _chars(ours) == _chars(theirs), (row, column.key, cursor, hover, focused)
                        compared += 1
        assert compared > 500 and len(table._fast_cells) > 500  # drawn by its own renderer
        assert {type(cell).__name__ for cells in table._cells.values() for cell in cells.values()} == {"Cell"}
