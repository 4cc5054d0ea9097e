"""One card formatter for `rn50tui devices`, the devices screen and the card panels; samples from stats."""

from __future__ import annotations

from engine.telemetry.stats import CardStats
from rn50tui.app.jobdata import CardView
from rn50tui.app.screens.devices import card_cells
from rn50tui.app.widgets.card_panel import value_text
from rn50tui.cards import NONE, card_row
from rn50tui.commands.devices import _card_cells
from rn50tui.jobs.core.records import DeviceSample

MLU = CardStats("mlu", 1, "MLU370-X8", 31.0, 18190, 23374, 52.0, 248.5, 250.0, bus_id="0000:3b:00.0")


def test_the_cli_and_both_app_views_read_a_card_the_same():
    row = card_row(MLU)
    assert (row.util, row.memory, row.temp, row.power) == (
        "31 %",
        "18190 / 23374 MiB",
        "52 °C",
        "248.5 / 250 W",
    )
    assert _card_cells(MLU)[:7] == [row.kind, row.card, row.name, row.util, row.memory, row.temp, row.power]
    assert [c.plain for c in card_cells(MLU, None)[:7]] == _card_cells(MLU)[:7]
    sample = DeviceSample.from_stats(MLU, 1.0)
    latest = {m: getattr(sample, m) for m in ("util_percent", "mem_used_mib", "temp_c", "power_w")}
    view = CardView("mlu", 1, sample.name, latest, {}, sample.mem_total_mib, sample.power_cap_w)
    assert [value_text(m, view) for m in latest] == [row.util, row.memory, row.temp, row.power]


def test_a_sample_keeps_every_shared_field_and_unknowns_stay_unknown():
    sample = DeviceSample.from_stats(MLU, 5.0)
    assert sample == DeviceSample(5.0, "mlu", 1, "MLU370-X8", 31.0, 18190, 23374, 52.0, 248.5, 250.0)
    bare = card_row(CardStats("cuda", 0))
    assert (bare.name, bare.util, bare.memory, bare.power) == (NONE, NONE, NONE, NONE)
