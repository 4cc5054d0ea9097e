"""`python -m engine.bench report`: the batch search, the published figures, the rendering, and --quick."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.bench.published import card_entry, inference_rows, load_published, training_rows
from engine.bench.report import NOT_HERE, QUICK, Report, Section, find_batch, published
from engine.bench.report_md import render_markdown
from engine.bench.train import EXIT_OOM
from tests.conftest import engine_env

SECTIONS = ["environment", "device_tests", "train_synthetic", "train_real", "input_pipeline", "infer",
            "compile", "peak_memory", "published"]  # fmt: skip


def test_the_batch_search_steps_down_from_256_on_out_of_memory_only():
    fits = 96
    tried = []

    def run(batch):
        tried.append(batch)
        return (0, {"batch_size": batch}, "") if batch <= fits else (EXIT_OOM, None, "out of memory")

    found = find_batch(run, (256, 224, 192, 160, 128, 96, 64))
    assert found["record"] == {"batch_size": 96} and tried == [256, 224, 192, 160, 128, 96]
    broken = find_batch(lambda b: (1, None, "error: boom"), (256, 128))
    assert broken["record"] is None and broken["error"] == "error: boom" and len(broken["attempts"]) == 1
    never = find_batch(lambda b: (EXIT_OOM, None, "oom"), (16, 8))
    assert never["error"] == "out of memory at every batch down to 8"


def test_published_figures_are_nvidias_with_their_source():
    pub = load_published()
    assert (
        "NVIDIA/DeepLearningExamples" in pub["source"]["url"]
        and "resnet50v1.5/README.md" in pub["source"]["url"]
    )
    a100 = card_entry("NVIDIA A100-SXM4-80GB", pub)
    assert a100["training"]["images_per_s"]["1"]["amp"] == 2470  # the figures of the NGC recipe's notes
    v100 = card_entry("Tesla V100-SXM2-16GB", pub)
    assert v100["training"]["images_per_s"]["1"]["amp"] == 1200
    amp1 = v100["inference"]["amp"][0]
    assert (amp1["batch"], amp1["images_per_s"], amp1["latency_mean_ms"], amp1["latency_p99_ms"]) == (
        1,
        78,
        12.78,
        14.36,
    )
    assert v100["inference"]["amp"][-1]["images_per_s"] == 3382
    assert card_entry("Tesla T4", pub)["card"] == "T4"
    assert (
        card_entry("NVIDIA H100 80GB HBM3", pub) is None and card_entry("NVIDIA A100-SXM4-40GB", pub) is None
    )
    assert card_entry("NVIDIA GeForce RTX 4070 Ti", pub) is None
    ours = [{"precision": "amp", "batch_size": 1, "images_per_s": 90.0, "latency_p99_ms": 12.0}]
    row = inference_rows(v100, ours)[9]  # amp comes after the nine fp32 rows
    assert (row["batch"], row["published_images_per_s"], row["ours_images_per_s"]) == (1, 78, 90.0)
    assert training_rows(v100, 1100.0, 224)[1] == {"precision": "amp", "published_images_per_s": 1200,
        "published_batch": 256, "ours_images_per_s": 1100.0, "ours_batch": 224}  # fmt: skip


def test_a_v100_report_puts_nvidias_figures_beside_ours(tmp_path):
    report = Report(tmp_path, quick=False, argv=["--out", str(tmp_path)])
    record = {"batch_size": 256, "images_per_s": 1150.0}
    report.add(Section("train_synthetic", "t", data={"record": record, "attempts": []}))
    report.add(Section("infer", "i", data={"rows": [{"precision": "fp32", "batch_size": 256, "images_per_s": 1250.0,
                                                      "latency_p99_ms": 210.0}]}))  # fmt: skip
    section = published({"kind": "cuda", "name": "Tesla V100-SXM2-16GB"}, report)
    assert section.status == "ok" and section.data["card"] == "V100 16GB"
    report.add(section)
    md = (tmp_path / "report.md").read_text()
    assert (
        "| amp | 256 | 1,200 | 256 | 1,150 |" in md
        and "| fp32 | 256 | 1,261 | 1,250 | 202.88 | 210.00 |" in md
    )
    assert "Source: NVIDIA DeepLearningExamples" in md


def test_every_section_renders_its_reason_when_it_has_no_figures(tmp_path):
    report = Report(tmp_path, quick=True, argv=["--quick"])
    for sid in SECTIONS[1:]:
        report.add(Section(sid, f"title {sid}", NOT_HERE, f"why {sid}"))
    md = render_markdown(json.loads((tmp_path / "report.json").read_text()))
    for sid in SECTIONS[1:]:
        assert f"**Not available here:** why {sid}" in md


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_quick_report_fills_or_explains_every_section(tmp_path):
    # A relative --out, from a folder of the user's: the steps run from the checkout and must still find it.
    out = subprocess.run([sys.executable, "-m", "engine.bench", "report", "--quick", "--out", "r"],
                         cwd=tmp_path, env=engine_env(), capture_output=True, text=True, timeout=1700)  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [s["id"] for s in report["sections"]] == SECTIONS and report["quick"]
    for s in report["sections"]:
        assert s["status"] in ("ok", NOT_HERE), s
        assert s["data"] if s["status"] == "ok" else s["reason"], s
    by_id = {s["id"]: s for s in report["sections"]}
    assert by_id["train_synthetic"]["data"]["record"]["images_per_s"] > 0
    assert by_id["train_real"]["data"]["jpegs"] >= 30
    assert {r["batch_size"] for r in by_id["infer"]["data"]["rows"]} == {1, 2, 4}
    assert (
        "passed" in by_id["device_tests"]["data"]["summary"]
        or "skipped" in by_id["device_tests"]["data"]["summary"]
    )
    assert by_id["compile"]["status"] == NOT_HERE and "--quick on a CPU" in by_id["compile"]["reason"]
    md = (tmp_path / "r" / "report.md").read_text()
    assert md.count("\n## ") == len(SECTIONS) and "| batch/card |" in md
    assert QUICK.image_size == 64


def test_a_section_that_crashes_is_reported_failed_and_the_rest_goes_on(tmp_path):
    from engine.bench.report import timed

    def broken(*_):
        raise RuntimeError("no card after all")

    section = timed("infer", broken)
    assert (section.id, section.status, section.reason) == (
        "infer",
        "failed",
        "RuntimeError: no card after all",
    )
