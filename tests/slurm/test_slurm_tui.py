"""The app on the real two-node cluster: the devices screen lists sinfo's nodes, and a 2-node job shows
live with both nodes' cards, driven through App.run_test() as a user would with keys."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import DataTable, Static

from rn50tui.app.app import Rn50App
from rn50tui.app.screens.detail import JobDetailScreen
from rn50tui.app.screens.devices import CLUSTER_COLUMNS, DevicesScreen
from rn50tui.app.widgets.card_panel import CardPanel
from rn50tui.jobs.core.states import Status

from ..tui.conftest import SIZE, wait_for
from ..tui.test_detail import open_detail
from .test_slurm_jobs import LONG

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CAPACITY = {"mlu": 0, "cuda": 0, "cpu": 1}


def test_the_devices_screen_lists_the_clusters_nodes_from_sinfo(slurm_jm, db_path):
    async def scenario() -> None:
        app = Rn50App(db_path, capacity=dict(CAPACITY))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.services.client is not None)
            await pilot.press("D")
            screen = await wait_for(pilot, lambda: isinstance(app.screen, DevicesScreen) and app.screen)
            table = screen.query_one("#cluster", DataTable)
            await wait_for(pilot, lambda: table.row_count == 2, timeout=30, what="sinfo's two nodes")
            assert table.display
            rows = [dict(zip(CLUSTER_COLUMNS, table.get_row_at(i))) for i in range(table.row_count)]
            assert [r["node"] for r in rows] == ["node1", "node2"]
            assert {r["partition"] for r in rows} == {"debug*"}  # sinfo marks the default partition
            assert all(r["gres"].startswith("mlu:") and r["cards used"] == "0" for r in rows), rows

    asyncio.run(scenario())


def test_a_two_node_job_shows_live_with_both_nodes_cards(slurm_jm, db_path):
    job = slurm_jm.submit(preset="demo", device="cpu", cards=1, engine_flags=LONG, executor="slurm",
                          slurm={"nodes": 2})  # fmt: skip

    async def scenario() -> None:
        app = Rn50App(db_path, capacity=dict(CAPACITY))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.services.client is not None)
            detail = await open_detail(pilot, app, job.id)
            assert isinstance(detail, JobDetailScreen)

            def nodes_shown() -> set[str]:
                return {p.view.node for p in detail.query(CardPanel) if p.view is not None}

            await wait_for(pilot, lambda: nodes_shown() == {"node1", "node2"}, timeout=300,
                           what="a card panel for each node")  # fmt: skip
            running = slurm_jm.get_job(job.id)
            assert running.status is Status.RUNNING, running.error
            await wait_for(pilot, lambda: detail.history.records > 0, timeout=120, what="live metrics")
            slurm_id = running.executor_handle["slurm_job_id"]
            header = lambda: str(detail.query_one("#job-summary", Static).render())  # noqa: E731
            await wait_for(
                pilot,
                lambda: f"slurm {slurm_id} RUNNING node[1-2]" in header(),
                what="the Slurm line in the header",
            )

    asyncio.run(scenario())
    slurm_jm.cancel(job.id)
