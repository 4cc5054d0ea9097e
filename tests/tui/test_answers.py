"""Issue 29: what keeps the app's answers quick and its idle screens quiet — one store read at a time for a
filter typed fast, rows not formatted again when unchanged, text and charts not redrawn when unchanged."""

from __future__ import annotations

import threading

from textual.app import App, ComposeResult
from textual.widgets import Static

from rn50tui.app.widgets import jobs_table
from rn50tui.app.widgets.chart import MetricChart
from rn50tui.app.widgets.footer import KeysFooter, shown_keys
from rn50tui.app.widgets.text import set_text
from rn50tui.jobs.core.errors import ReadInterrupted
from rn50tui.jobs.core.states import Status

from .conftest import SIZE, add_job, make_app, wait_for
from .test_jobs_window import JOBS, fill, open_jobs


def spy_windows(client, gate: threading.Event | None = None) -> list[str]:
    """The queries of the store reads of the table's window, as they start (each held until `gate`); the
    next pages' reads (read ahead) are not counted."""
    read, queries = client.job_window, []

    def spied(**kwargs):
        if kwargs.get("offset"):
            return read(**kwargs)
        queries.append(kwargs["query"])
        if gate is not None:
            gate.wait(10)
        return read(**kwargs)

    client.job_window = spied
    return queries


async def test_a_filter_typed_faster_than_the_store_answers_reads_only_the_latest(db_path, store):
    fill(store)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_jobs(app, pilot)
        gate = threading.Event()  # the first read is held until the typing is done
        queries = spy_windows(app.services.client, gate)
        screen.SHORT_FILTER_S = 5.0  # "o" and "ol" wait for the next key (which comes well within this)
        await pilot.press("slash", *"old7")
        await wait_for(pilot, lambda: queries, what="the first read")
        assert table.query == "" and table.row_count == screen.PAGE  # held rows not filtered meanwhile
        gate.set()
        await wait_for(pilot, lambda: table.query == "old7" and 7 in table.jobs, what="the store's answer")
        assert set(table.jobs) == {j for j in range(1, JOBS + 1) if f"old{j}".startswith("old7")}
        assert queries == ["old", "old7"]  # "o", "ol": no read (a scan of every job); "old7" after "old"


async def test_a_read_for_a_superseded_filter_is_interrupted(db_path, store):
    fill(store)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_jobs(app, pilot)
        client = app.services.client
        interrupted = threading.Event()
        client.read_interrupter = lambda: interrupted.set  # what the poll's thread would stop its read with
        read, queries = client.job_window, []

        def slow(**kwargs):  # "old" reads until interrupted, as a scan of 100,000 jobs would
            if kwargs.get("offset"):  # a next page, read ahead
                return read(**kwargs)
            queries.append(kwargs["query"])
            if kwargs["query"] == "old":
                assert interrupted.wait(10)
                raise ReadInterrupted("job_window interrupted")
            return read(**kwargs)

        client.job_window = slow
        screen.SHORT_FILTER_S = 5.0
        await pilot.press("slash", *"old7")
        await wait_for(
            pilot, lambda: table.query == "old7" and 7 in table.jobs, what="the latest filter's answer"
        )
        assert queries == ["old", "old7"] and interrupted.is_set()
        assert set(table.jobs) == {j for j in range(1, JOBS + 1) if f"old{j}".startswith("old7")}


async def test_a_window_read_but_not_yet_shown_is_not_read_again_by_the_poll_timer(db_path, store):
    fill(store)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_jobs(app, pilot)
        await pilot.pause(0.3)
        started = []
        start = screen.start_poll
        screen.start_poll = lambda: started.append(screen._window()) or start()
        answer = screen.Loaded([], 0.0, token=0, window=screen._window(), full=True)
        screen._unshown = answer  # as a poll leaves it: its answer posted, not yet handled
        screen.poll()  # the timer, meanwhile: the same window is not read a second time
        assert started == []
        screen._unshown = screen.Loaded([], 0.0, token=0, window=("old", "id", False), full=True)
        screen._token = None
        screen.poll()  # the answer on its way is an earlier window's: this one is read
        await wait_for(pilot, lambda: started == [screen._window()], what="the read")
        await wait_for(pilot, lambda: screen._unshown is None, what="its answer handled")


async def test_a_filter_of_short_words_is_read_when_no_key_follows(db_path, store):
    fill(store)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_jobs(app, pilot)
        queries = spy_windows(app.services.client)
        screen.SHORT_FILTER_S = 0.05
        await pilot.press("slash", "7")
        await wait_for(pilot, lambda: table.query == "7", what="the store's answer to a one-letter filter")
        assert set(queries) == {"7"} and set(table.jobs) >= {  # (and the next page, read ahead)
            j for j in range(1, JOBS + 1) if "7" in f"#{j} {j} old{j}"
        }


async def test_the_footer_is_rebuilt_once_per_change_of_its_keys_and_s_sorts_only_from_the_table(
    db_path, store
):
    fill(store)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_jobs(app, pilot)
        footer = screen.query_one(KeysFooter)
        await pilot.pause(0.2)
        rebuilt = []
        recompose = footer.recompose
        footer.recompose = lambda: rebuilt.append(1) or recompose()
        on_table = shown_keys(screen)
        assert ("s", "sort", "Sort", True, "") in on_table
        await pilot.press("slash", *"old12s")  # "s" goes into the filter box, it does not sort
        await wait_for(pilot, lambda: table.query == "old12s", what="the filter with an s")
        assert table.sort_column == "id" and ("s", "sort", "Sort", True, "") not in shown_keys(screen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.query == "" and table.has_focus, what="the filter cleared")
        await pilot.press("s")  # from the table: the next column
        await wait_for(pilot, lambda: table.sort_column == "name", what="sorted by name")
        await pilot.pause(0.2)
        # Textual asks twice per focus move (Footer rebuilt 4 times): once per change of the keys shown
        assert len(rebuilt) == 2 and shown_keys(screen) == on_table
        footer.bindings_changed(screen)  # asked again with nothing changed: not rebuilt
        await pilot.pause(0.1)
        assert len(rebuilt) == 2


async def test_a_new_window_formats_only_the_rows_that_changed(db_path, store, monkeypatch):
    fill(store)
    live = add_job(store, Status.RUNNING, "live")
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_jobs(app, pilot)
        await wait_for(pilot, lambda: live.id in table.jobs, what="the running job")
        made = []
        cells = jobs_table.job_cells
        monkeypatch.setattr(jobs_table, "job_cells", lambda job, *a: made.append(job.id) or cells(job, *a))
        with store.transaction():
            store.update_job(JOBS, name="renamed")
        screen._token = None  # the whole window read again, as after a filter or a sort
        await wait_for(pilot, lambda: table.jobs[JOBS].name == "renamed", what="the renamed job")
        assert set(made) == {JOBS, live.id}  # the changed job and the running one, not the 99 others
        assert table.get_cell(str(JOBS), "name").plain == "renamed"


class _Widgets(App):
    def compose(self) -> ComposeResult:
        yield Static("", id="text")
        yield MetricChart("loss", id="chart")


async def test_text_is_redrawn_only_when_it_changes_and_laid_out_only_when_its_size_does():
    app = _Widgets()
    async with app.run_test(size=(60, 20)) as pilot:
        text = app.query_one("#text", Static)
        calls = []
        update = text.update
        text.update = lambda content, layout=True: calls.append(layout) or update(content, layout=layout)
        await pilot.pause()
        assert set_text(text, "ran 1m30s") and not set_text(text, "ran 1m30s")
        await pilot.pause()
        assert set_text(text, "ran 1m31s")  # the same lines, as wide: no layout
        assert set_text(text, "ran 1m31s\nstalled")  # a line more: laid out again
        assert calls[1:] == [False, True] and str(text.render()) == "ran 1m31s\nstalled"


async def test_a_chart_is_drawn_when_its_data_changes_at_most_every_min_redraw_s():
    app = _Widgets()
    async with app.run_test(size=(60, 20)) as pilot:
        chart = app.query_one(MetricChart)
        chart.min_redraw_s = 0.3
        first = chart.draws
        chart.plot([("loss", ((1.0, 2.0), (3.0, 2.5)))])
        assert chart.draws == first + 1  # the first data: drawn at once
        chart.plot([("loss", ((1.0, 2.0), (3.0, 2.5)))])
        assert chart.draws == first + 1  # the same data: not drawn again
        chart.plot([("loss", ((1.0, 2.0, 3.0), (3.0, 2.5, 2.0)))])
        chart.plot([("loss", ((1.0, 2.0, 3.0, 4.0), (3.0, 2.5, 2.0, 1.5)))])
        assert chart.draws == first + 1 and chart.point_count == 4  # put off, the latest kept
        await wait_for(pilot, lambda: chart.draws == first + 2, what="the put-off draw")
        await pilot.pause(0.5)
        assert chart.draws == first + 2  # one draw for both changes
        chart.plot([("loss", ((1.0,), (3.0,)))], at_once=True)  # a new window: at once
        assert chart.draws == first + 3
