"""The app and the jobs that are not training runs: a completed job's exported models in its Checkpoints
tab, with their check; `e` on its detail screen queues an export job (refused for an unfinished job)."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import DataTable

from rn50tui.app.screens.detail import JobDetailScreen, summary_text
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import JobStore

from .conftest import NOW, SIZE, add_job, make_app, wait_for
from .test_detail import open_detail

CHECK = {"images": 32, "what": "synthetic images", "precision": "fp32", "max_abs_diff": 2.1e-6,
         "max_rel_diff": 3.4e-7, "tolerance": 1e-3, "top1_agreement": 1.0, "top1_pytorch": None,
         "top1_exported": None, "ok": True}  # fmt: skip


def trained_and_exported(store: JobStore):
    job = add_job(
        store, Status.COMPLETED, "trained", epoch=2, epochs=2, started_at=NOW - 60, finished_at=NOW - 5
    )
    ws = Path(job.workspace)
    (ws / "export").mkdir(parents=True)
    (ws / "model_best.pth.tar").write_bytes(b"\0" * 1024)
    model = ws / "export" / "resnet50-best-fp32.onnx"
    model.write_bytes(b"\0" * 4096)
    Path(f"{model}.json").write_text(json.dumps({"format": "onnx", "precision": "fp32", "check": CHECK}))
    return job


async def test_checkpoints_tab_lists_exported_models_and_e_queues_an_export(db_path, store):
    add_job(store, Status.RUNNING, "holder")  # keeps the only CPU slot: the export job waits, nothing starts
    job = trained_and_exported(store)
    unfinished = add_job(store, Status.QUEUED, "waiting")
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_detail(pilot, app, job.id)
        await pilot.press("5")
        ckpts = detail.query_one("#ckpt-table", DataTable)
        await wait_for(pilot, lambda: ckpts.row_count == 2, what="the checkpoint and the exported model")
        note = str(ckpts.get_row("export/resnet50-best-fp32.onnx")[3])
        assert "onnx fp32" in note and "relative 3.4e-07, ok" in note and "top-1 agreement 100.0%" in note
        await pilot.press("e")
        exports = lambda: [j for j in store.list_jobs() if j.kind == "export"]  # noqa: E731
        await wait_for(pilot, exports, what="the export job")
        (export,) = exports()
        assert export.status is Status.QUEUED
        assert export.argv[:2] == ["--resume", str(Path(job.workspace) / "model_best.pth.tar")]
        assert str(Path(job.workspace) / "export" / "resnet50-best-fp32.onnx") in export.argv
        await pilot.press("escape")
        detail = await open_detail(pilot, app, unfinished.id)
        assert isinstance(detail, JobDetailScreen)
        await pilot.press("e")
        said = lambda: [n for n in app._notifications if "not completed" in n.message]  # noqa: E731
        await wait_for(pilot, said, what="the refusal")
        assert len([j for j in store.list_jobs() if j.kind == "export"]) == 1


def test_a_prepare_jobs_header_says_images_mb_and_eta(store):
    job = add_job(store, Status.RUNNING, "prep", kind="prepare", argv=["/src", "/dest"], epoch=1, epochs=1,
                  iteration=12_300_000, iters_per_epoch=48_000_000, ips=150.0, eta_end=NOW + 185,
                  note="1,234 images · 12.3 of 48.0 MB", started_at=NOW - 60)  # fmt: skip
    text = summary_text(job, NOW)
    assert "1,234 images · 12.3 of 48.0 MB · ETA 3m05s" in text and "loss" not in text
