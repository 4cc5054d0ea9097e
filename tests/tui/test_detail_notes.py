"""The detail header shows the engine's input-bound verdict as something to act on (issue 27)."""

from __future__ import annotations

from engine.progress import input_bound_message
from rn50tui.app.screens.detail import summary_text
from rn50tui.jobs.states import Status

from .conftest import NOW, add_job


def test_an_input_bound_note_shows_in_yellow_in_the_detail_header(store):
    note = input_bound_message(0.38, 5)
    job = add_job(store, Status.RUNNING, "slow disk", epochs=9, epoch=1, iters_per_epoch=50, note=note)
    text = summary_text(store.get_job(job.id), NOW)
    assert f"[yellow]{note}[/yellow]" in text
    assert "waited for data 38% of each step; more loader workers (-j, now 5)" in text
