"""The detail header shows the engine's input-bound verdict as something to act on (issue 27)."""

from __future__ import annotations

from engine.progress import input_bound_message
from rn50tui.app.screens.detail import summary_text
from rn50tui.jobs.core.states import Status

from .conftest import NOW, add_job


def test_an_input_bound_note_shows_in_yellow_in_the_detail_header(store):
    note = input_bound_message(0.38, 5)
    job = add_job(store, Status.RUNNING, "slow disk", epochs=9, epoch=1, iters_per_epoch=50, note=note)
    text = summary_text(store.get_job(job.id), NOW)
    assert f"[yellow]{note}[/yellow]" in text
    assert "waited for data 38% of each step; more loader workers (-j, now 5)" in text


async def test_the_cards_tab_shows_the_input_bound_note_above_the_cards(db_path, store):
    from textual.widgets import Static

    from rn50tui.jobs.core.store import DeviceSample

    from .conftest import SIZE, make_app, wait_for
    from .test_detail import open_detail

    note = input_bound_message(0.38, 5)
    job = add_job(store, Status.RUNNING, "slow disk", epochs=9, epoch=1, iters_per_epoch=50, note=note)
    with store.transaction():
        store.add_samples(job.id, [DeviceSample(NOW - 10, "cpu", 0, "Test CPU", 40.0, 1500.0, 8192.0)])
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot, app, job.id)
        await pilot.press("2")
        shown = detail.query_one("#cards-note", Static)
        await wait_for(
            pilot, lambda: "waited for data 38%" in str(shown.render()), what="the note on the cards"
        )
        assert shown.display
