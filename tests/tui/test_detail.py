"""Job detail, compare and devices on stores filled through the store API (no engine run)."""

from __future__ import annotations

import json
import math
import os
from array import array
from pathlib import Path

import pytest
from textual.widgets import DataTable, Label, Log, Static

from engine.telemetry.detect import HostReport
from engine.telemetry.stats import CardStats
from rn50tui.app import messages
from rn50tui.app.screens.compare import CompareScreen
from rn50tui.app.screens.detail import JobDetailScreen
from rn50tui.app.screens.devices import DevicesScreen
from rn50tui.app.screens.jobs import JobsScreen
from rn50tui.app.series import Series, downsample
from rn50tui.app.widgets.card_panel import CardPanel
from rn50tui.app.widgets.chart import MetricChart
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import DeviceSample, JobStore

from .conftest import NOW, SIZE, add_job, add_metrics, make_app, wait_for


def history(
    store: JobStore, job, epochs: int = 2, iters: int = 50, t0: float = NOW - 600, ema: bool = False
) -> None:
    rows = []
    for e in range(1, epochs + 1):
        for it in range(1, iters + 1):
            step = (e - 1) * iters + it
            rows.append((t0 + step, e, it, "train", {"train.loss": 7 * math.exp(-step / 40), "train.total_ips": 90.0 + it % 7,
                                                       "train.lr": 0.1 * step / (epochs * iters)}))  # fmt: skip
        rows.append(
            (
                t0 + e * iters,
                e,
                None,
                "epoch",
                {"val.top1": 10.0 * e, "val.top5": 30.0 * e, "train.loss": 2.0}
                | ({"val_ema.top1": 12.0 * e} if ema else {}),
            )
        )
    add_metrics(store, job, rows)


def running_job(store: JobStore):
    job = add_job(store, Status.RUNNING, "watched", started_at=NOW - 90, epoch=2, epochs=3, iteration=10,
                  iters_per_epoch=50, ips=95.0, loss=2.0, top1=20.0, world_size=1)  # fmt: skip
    history(store, job)
    with store.transaction():
        store.add_samples(job.id, [DeviceSample(NOW - 100 + 2 * i, "cpu", 0, "Test CPU", 40.0 + i % 50, 1500.0 + i, 8192.0)
                                   for i in range(60)])  # fmt: skip
    ws = Path(job.workspace)
    ws.mkdir(parents=True)
    (ws / "stdout.log").write_text("".join(f"[train] step {i}\n" for i in range(30)))
    (ws / "checkpoint.pth.tar").write_bytes(b"\0" * 2048)
    (ws / "model_best.pth.tar").write_bytes(b"\0" * 1024)
    with store.transaction():
        store.update_job(job.id, last_checkpoint=str(ws / "checkpoint.pth.tar"))
    return job


def curve_sizes(chart: MetricChart) -> dict[str, int]:
    """Points per curve of a chart, by the first word of its legend (raw, smoothed, epoch)."""
    return {label.split()[0]: len(xs) for label, (xs, _) in chart.curves}


async def open_detail(pilot, app, job_id: int) -> JobDetailScreen:
    table = await wait_for(
        pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen.table.row_count and app.screen.table
    )
    table.select_job(job_id)
    await pilot.press("enter")
    return await wait_for(
        pilot, lambda: isinstance(app.screen, JobDetailScreen) and app.screen, what="the detail screen"
    )


async def test_detail_shows_charts_cards_log_config_and_checkpoints(db_path, store):
    job = running_job(store)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot, app, job.id)
        loss = detail.query_one("#chart-loss", MetricChart)
        await wait_for(
            pilot, lambda: loss.point_count == 202, what="100 loss points, smoothed and raw, 2 means"
        )
        assert curve_sizes(loss) == {"epoch": 2, "smoothed": 100, "raw": 100}
        legend = [label for label, _ in loss.curves]  # each curve says what it is and its latest value
        assert (
            legend[0] == "epoch mean 2.0000" and legend[2] == f"raw -p window {7 * math.exp(-100 / 40):.4f}"
        )
        acc = detail.query_one("#chart-acc", MetricChart)
        assert [len(xs) for _, (xs, _) in acc.curves] == [2, 2]  # top-1 and top-5, per epoch
        assert detail.query_one("#chart-lr", MetricChart).point_count == 100
        summary = str(detail.query_one("#job-summary", Static).render())
        assert "job 1 watched" in summary and "ran 1m30s" in summary  # the fixed clock
        assert "loss 2.0000 (epoch 2 mean)" in summary  # the same number as the list, and what it is
        await pilot.press("w")
        assert "last hour" in str(detail.query_one("#window-label", Label).render())
        await pilot.press("2")
        panel = await wait_for(
            pilot, lambda: detail.query(CardPanel).first() if detail.query(CardPanel) else None
        )
        assert "Test CPU" in panel.border_title
        assert "/ 8192 MiB" in str(
            panel.query_one("#value-mem_used_mib").render()
        )  # as `rn50tui devices` reads
        assert not panel.query_one("#row-temp_c").display  # a CPU reports no temperature: no empty row
        await pilot.press("3")
        log = detail.query_one("#log-view", Log)
        await wait_for(pilot, lambda: "[train] step 29" in "\n".join(log.lines), what="the log")
        with open(Path(job.workspace) / "stdout.log", "a") as fh:
            fh.write("[train] a new line\n")
        await wait_for(
            pilot, lambda: "[train] a new line" in "\n".join(log.lines), what="the log followed live"
        )
        await pilot.press("4")
        config = detail.query_one("#config-table", DataTable)
        await wait_for(pilot, lambda: config.row_count > 10)
        assert config.get_row("batch_size")[1] == "32"
        await pilot.press("5")
        ckpts = detail.query_one("#ckpt-table", DataTable)
        await wait_for(pilot, lambda: ckpts.row_count == 2)
        assert "latest" in ckpts.get_row("checkpoint.pth.tar")[3]
        assert "best" in ckpts.get_row("model_best.pth.tar")[3]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen))


async def test_time_window_cuts_the_time_charts(db_path, store):
    job = add_job(store, Status.COMPLETED, "long", epochs=1)
    add_metrics(
        store, job, [(NOW - 3600 * 3 + 120 * i, 1, i + 1, "train", {"train.loss": 1.0}) for i in range(90)]
    )
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot, app, job.id)
        loss = detail.query_one("#chart-loss", MetricChart)
        await wait_for(pilot, lambda: curve_sizes(loss)["raw"] == 90)
        await pilot.press("w")  # last hour: 31 of the 90 two-minute points
        await wait_for(pilot, lambda: curve_sizes(loss) == {"epoch": 0, "smoothed": 31, "raw": 31},
                       what="the last hour only")  # fmt: skip


def test_a_million_points_draw_as_a_few_hundred():
    n = 1_000_000
    s = Series()
    s.x = array("d", range(n))
    s.y = array("d", (math.sin(i / 1000) for i in range(n)))
    s.y[654_321] = 50.0  # one spike must survive decimation
    xs, ys = s.view(150)
    assert len(xs) <= 300 and 50.0 in ys and list(xs) == sorted(xs)
    xs, _ = s.view(150, span=1000)
    assert xs[0] >= n - 1001
    assert downsample(array("d", [1, 2]), array("d", [3, 4]), 0, 2, 10) == ((1.0, 2.0), (3.0, 4.0))


async def test_compare_overlays_marked_jobs(db_path, store):
    first = add_job(store, Status.COMPLETED, "lr-0.1", epochs=2, iters_per_epoch=50)
    second = add_job(store, Status.COMPLETED, "lr-0.2", epochs=2, iters_per_epoch=50)
    history(store, first)
    history(store, second, ema=True)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, JobsScreen) and app.screen.table.row_count == 2 and app.screen.table
            ),
        )
        await pilot.press("C")  # nothing marked: a hint, no screen
        assert isinstance(app.screen, JobsScreen)
        table.select_job(first.id)
        await pilot.press("space")
        table.select_job(second.id)
        await pilot.press("space", "C")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen)
        loss = screen.query_one("#compare-loss", MetricChart)
        await wait_for(
            pilot, lambda: len(loss.curves) == 2 and loss.point_count == 200, what="two loss curves"
        )
        assert [label for label, _ in loss.curves] == ["1 lr-0.1", "2 lr-0.2"]
        top1 = screen.query_one("#compare-top1", MetricChart)
        await wait_for(pilot, lambda: top1.point_count == 6, what="two top-1 curves and one EMA curve")
        assert [label for label, _ in top1.curves] == ["1 lr-0.1", "2 lr-0.2", "2 lr-0.2 EMA"]


async def test_compare_times_each_marked_job_to_a_top1_the_user_moves(db_path, store):
    fast = [
        {"top1": 41.0, "epoch": 2, "train_seconds": 600.0},
        {"top1": 76.2, "epoch": 9, "train_seconds": 2700.0},
    ]
    slow = [
        {"top1": 55.0, "epoch": 5, "train_seconds": 1500.0},
        {"top1": 78.0, "epoch": 20, "train_seconds": 7260.0},
    ]
    a = add_job(store, Status.COMPLETED, "fast", epochs=9, time_to_best=json.dumps(fast))
    b = add_job(store, Status.COMPLETED, "slow", epochs=20, time_to_best=json.dumps(slow))
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen.table.row_count == 2)
        app.screen.post_message(messages.CompareJobs([a.id, b.id]))
        screen = await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen)
        times = screen.query_one("#compare-time", Static)
        await wait_for(
            pilot, lambda: "time to 75%" in str(times.render()), what="the highest top-1 both reached"
        )
        text = str(times.render())
        assert f"{a.id} fast 45m00s (epoch 9)" in text and f"{b.id} slow 2h01m (epoch 20)" in text, text
        await pilot.press("plus")
        await wait_for(pilot, lambda: "time to 80%" in str(times.render()))
        assert "not reached (best 76.20%)" in str(times.render()) and "not reached (best 78.00%)" in str(
            times.render()
        )
        await pilot.press("minus", "minus", "minus", "minus", "minus", "minus")
        await wait_for(pilot, lambda: "time to 50%" in str(times.render()))
        assert f"{a.id} fast 45m00s (epoch 9)" in str(times.render())  # 41% at epoch 2 is not yet 50%
        assert f"{b.id} slow 25m00s (epoch 5)" in str(times.render())


async def test_detail_draws_the_ema_curve_and_the_early_stopping_note(db_path, store):
    note = "early stopping: val top-1 has not improved for 3 epochs (best 20.00 at epoch 2)"
    job = add_job(store, Status.COMPLETED, "ema", epochs=9, epoch=2, iters_per_epoch=50, note=note)
    history(store, job, ema=True)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot, app, job.id)
        acc = detail.query_one("#chart-acc", MetricChart)
        await wait_for(pilot, lambda: len(acc.curves) == 3, what="top-1, top-5 and EMA top-1")
        assert [label for label, _ in acc.curves] == ["top-1", "top-5", "EMA top-1"]
        assert acc.curves[2][1] == ((1.0, 2.0), (12.0, 24.0))
        assert note in str(detail.query_one("#job-summary", Static).render())


async def test_an_engine_warning_shows_in_yellow_under_a_running_job(db_path, store):
    warning = "warning: /ws has 60 MiB free, but this run's checkpoints need about 539 MiB"
    job = add_job(store, Status.RUNNING, "small disk", epochs=9, epoch=1, iters_per_epoch=50, note=warning)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot, app, job.id)
        summary = detail.query_one("#job-summary", Static)
        await wait_for(pilot, lambda: "60 MiB free" in str(summary.render()), what="the warning")
        text = summary.render()
        start = str(text).index("warning:")
        assert any(span.start <= start < span.end and "yellow" in str(span.style) for span in text.spans)


class TwoMlus:
    """A stand-in host sampler: two MLU cards and a CPU, shaped like engine.telemetry's HostSampler."""

    def sample(self) -> HostReport:
        report = HostReport(sampled_at=NOW)
        report.cards["mlu"] = [CardStats("mlu", i, "MLU370-X8", 30.0 + i, 1000 * (i + 1), 24576, 50.0, 80.0, 150.0)
                               for i in range(2)]  # fmt: skip
        report.cards["cpu"] = [CardStats("cpu", 0, "Test CPU", 12.0, 2048, 8192)]
        report.unavailable["cuda"] = "NVML sees no card"
        return report

    def close(self) -> None:
        pass


async def test_devices_lists_every_card_and_its_holder(db_path, store):
    add_job(store, Status.RUNNING, "on-mlu", device="mlu")  # holds mlu:0
    app = make_app(db_path, sampler_factory=TwoMlus)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.services.client is not None)
        await pilot.press("D")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, DevicesScreen) and app.screen)
        table = screen.query_one("#devices", DataTable)
        await wait_for(pilot, lambda: table.row_count == 3, what="three cards")
        assert table.get_cell("mlu:0", "held by").plain == "job 1 (on-mlu)"
        assert table.get_cell("mlu:1", "held by").plain == "free"
        assert table.get_cell("mlu:1", "power").plain == "80 / 150 W"  # the formatter `rn50tui devices` uses
        assert "no CUDA card found" in str(screen.query_one("#devices-notes", Static).render())


async def test_devices_shows_no_cluster_table_where_slurm_is_not_installed(
    db_path, store, tmp_path, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sinfo, sbatch, … on PATH
    app = make_app(db_path, sampler_factory=TwoMlus)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.services.client is not None)
        await pilot.press("D")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, DevicesScreen) and app.screen)
        await wait_for(
            pilot, lambda: screen.query_one("#devices", DataTable).row_count == 3, what="the cards"
        )
        assert screen._cluster_at > 0  # the screen did look for a cluster
        polls = lambda: [w for w in app.workers if w.group == "cluster-poll" and not w.is_finished]  # noqa: E731
        await wait_for(pilot, lambda: not polls(), what="the cluster poll to end")
        assert not screen.query_one("#cluster", DataTable).display  # hidden, not an empty table
        assert not screen.query_one("#cluster-title", Static).display


async def test_devices_says_one_quiet_line_where_slurms_client_has_no_cluster(
    db_path, store, tmp_path, monkeypatch
):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sbatch", "squeue", "scancel", "scontrol", "sinfo"):  # a client, no slurmctld to ask
        script = bin_dir / tool
        script.write_text(
            "#!/bin/sh\necho 'sinfo: fatal: Could not establish a configuration source' >&2\nexit 1\n"
        )
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    app = make_app(db_path, sampler_factory=TwoMlus)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.services.client is not None)
        await pilot.press("D")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, DevicesScreen) and app.screen)
        title = screen.query_one("#cluster-title", Static)
        await wait_for(pilot, lambda: title.display, what="the cluster's answer")
        text = str(title.render())
        assert not screen.query_one("#cluster", DataTable).display  # no empty cluster table
        assert text.startswith("no Slurm cluster answers from this host") and len(text.splitlines()) == 1
        assert "sinfo failed" not in text and "fatal: Could not establish" in text


@pytest.mark.slow
async def test_a_million_stored_points_load_while_the_screen_stays_responsive(db_path, store):
    job = add_job(store, Status.COMPLETED, "long-run", epochs=100, iters_per_epoch=10_000)
    n = 1_000_000
    with store.transaction():
        store.add_metrics([(job.id, 1, NOW - n + i, 1 + i // 10_000, i % 10_000 + 1, "train",
                            json.dumps({"train.loss": 5.0 / (1 + i / 1000), "train.total_ips": 100.0, "train.lr": 0.1}))
                           for i in range(n)])  # fmt: skip
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot, app, job.id)
        label = detail.query_one("#window-label", Label)
        await pilot.press("w")  # answered while the history loads in the worker
        await wait_for(pilot, lambda: "last hour" in str(label.render()), what="the key to be handled")
        await wait_for(pilot, lambda: detail.history.records == n, timeout=120, what="the whole history")
        loss = detail.query_one("#chart-loss", MetricChart)
        buckets = loss.size.width
        await wait_for(
            pilot,
            lambda: loss.curves and loss.curves[-1][1][0] and min(loss.curves[-1][1][0]) > n / 60 - 61,
            what="the last hour",
        )
        assert 0 < loss.point_count <= 2 * buckets * len(loss.curves)  # each curve downsampled
        await pilot.press("w", "w", "w", "w")  # back to "all": a million points, still a few hundred drawn
        await wait_for(pilot, lambda: "all" in str(label.render()) and min(loss.curves[-1][1][0]) == 0.0)
        assert loss.point_count <= 2 * buckets * len(loss.curves)


async def test_a_multi_node_jobs_cards_are_grouped_by_node(db_path, store):
    job = add_job(store, Status.RUNNING, "two nodes", started_at=NOW - 90, epoch=1, epochs=1, world_size=4)
    with store.transaction():  # what the Slurm follower stores: each node's samples name their node
        store.add_samples(job.id, [DeviceSample(NOW - 10 + i, "mlu", card, "MLU370-X8", 50.0, 1000.0, 24576.0, node=node)
                                   for i in range(3) for node in ("node2", "node1") for card in (0, 1)])  # fmt: skip
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot, app, job.id)
        await pilot.press("2")
        panels = await wait_for(pilot, lambda: len(detail.query(CardPanel)) == 4 and list(detail.query(CardPanel)),
                                what="four card panels")  # fmt: skip
        titles = [p.border_title for p in panels]
        assert [t.split(" · ")[:2] for t in titles] == [["node1", "mlu 0"], ["node1", "mlu 1"], ["node2", "mlu 0"],
                                                         ["node2", "mlu 1"]]  # fmt: skip
