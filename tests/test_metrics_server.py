"""`rn50tui metrics`: the collector reads the store at each scrape, names follow Prometheus's rules, the
endpoint listens on loopback unless --allow-remote, and a missing prometheus-client is one line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rn50tui.extras import MissingExtra, require
from rn50tui.jobs.core.records import DeviceSample
from rn50tui.jobs.core.store import JobStore
from tests.conftest import engine_env

pytest.importorskip(
    "prometheus_client", reason="rn50tui metrics needs prometheus-client (rn50tui[prometheus])"
)

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from rn50tui.metrics_server import StoreCollector  # noqa: E402

NOW = 1_700_000_000.0


def running_job(store: JobStore, name: str, **values) -> int:
    """A running job with progress columns as its supervisor writes them (no process behind it)."""
    job = store.insert_job(name=name, kind="train", argv=[], device="cuda", cards_requested=2,
                           workspace=str(store.path.parent / "runs" / "{id}"))  # fmt: skip
    store.update_job(job.id, status="running", attempt=1, epoch=2, epochs=4, iteration=5, iters_per_epoch=10,
                     heartbeat=NOW - 1, **values)  # fmt: skip
    return job.id


def window(job_id: int, at: float, data_time: float, compute_time: float) -> tuple:
    data = {"train.loss": 2.0, "train.data_time": data_time, "train.compute_time": compute_time}
    return (job_id, 1, at, 2, 5, "train", json.dumps(data))


def fill(store: JobStore) -> tuple[int, int]:
    a = running_job(store, "resnet a", loss=1.25, ips=812.5, top1=37.5, eta_end=NOW + 600)
    b = running_job(store, "b", stalled_at=NOW - 50, last_progress_at=NOW - 900)
    for status in ("completed", "completed", "failed", "queued"):
        job = store.insert_job(name="old", kind="train", argv=[], device="cpu", cards_requested=1,
                               workspace="runs/{id}")  # fmt: skip
        store.update_job(job.id, status=status)
    with store.transaction():
        store.add_metrics([window(a, NOW - 20, 0.5, 0.5), window(a, NOW - 10, 0.1, 0.3)])
        old = DeviceSample(NOW - 100, "cuda", 0, "H100", 10.0, 100.0, 80_000.0, 40.0, 100.0, 700.0)
        new = [DeviceSample(NOW - 2, "cuda", card, "H100", 90.0, 1024.0, 81_559.0, 65.0, 350.5, 700.0)
               for card in (0, 1)]  # fmt: skip
        store.add_samples(a, [old, *new])
    return a, b


def scrape(store: JobStore) -> dict[str, list]:
    """name → [(labels, value)] as Prometheus's own parser reads the exposition."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, clock=lambda: NOW, hostname="gpu-host-1"))
    text = generate_latest(registry).decode()
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def test_a_scrape_shows_running_jobs_counts_and_cards_with_prometheus_names(store):
    a, b = fill(store)
    got = scrape(store)
    counts = {labels["status"]: value for labels, value in got["rn50tui_jobs"]}
    assert (
        counts["running"] == 2
        and counts["completed"] == 2
        and counts["failed"] == 1
        and counts["queued"] == 1
    )
    labels_a = {"job": str(a), "name": "resnet a", "executor": "local", "node": "gpu-host-1", "kind": "cuda"}
    assert got["rn50tui_job_images_per_second"] == [(labels_a, 812.5)]  # b has no figure yet: no sample
    assert got["rn50tui_job_train_loss"] == [(labels_a, 1.25)]
    assert got["rn50tui_job_val_top1_ratio"] == [(labels_a, 0.375)]
    assert got["rn50tui_job_eta_seconds"] == [(labels_a, 600.0)]
    assert got["rn50tui_job_data_wait_ratio"] == [(labels_a, pytest.approx(0.25))]  # the last window's
    assert {lb["job"]: v for lb, v in got["rn50tui_job_progress_ratio"]} == {str(a): 0.375, str(b): 0.375}
    assert {lb["job"]: v for lb, v in got["rn50tui_job_stalled"]} == {str(a): 0.0, str(b): 1.0}
    assert {lb["job"]: v for lb, v in got["rn50tui_job_epoch"]} == {str(a): 2.0, str(b): 2.0}
    card0 = {"node": "gpu-host-1", "kind": "cuda", "card": "0", "job": str(a), "name": "resnet a"}
    assert [v for lb, v in got["rn50tui_card_utilization_ratio"] if lb == card0] == [0.9]  # the newest sample
    assert [v for lb, v in got["rn50tui_card_memory_used_bytes"] if lb == card0] == [1024.0 * 2**20]
    assert [v for lb, v in got["rn50tui_card_temperature_celsius"] if lb == card0] == [65.0]
    assert [v for lb, v in got["rn50tui_card_power_watts"] if lb == card0] == [350.5]
    assert got["rn50tui_card_info"][0] == ({**card0, "executor": "local", "model": "H100"}, 1.0)
    assert len(got["rn50tui_card_info"]) == 2


def test_a_held_card_idle_past_the_threshold_shows_its_idle_seconds_and_a_busy_one_zero(store):
    # Issue 28: the "held, idle 14m" flag of `jobs show` and `devices`, for alerting rules.
    job = running_job(store, "forgotten")
    quiet = [
        DeviceSample(NOW - t, "cuda", 0, "H100", 1.0, 10.0, 80_000.0, 40.0, 60.0, 700.0)
        for t in (900, 300, 2)
    ]
    used = [DeviceSample(NOW - t, "cuda", 1, "H100", 1.0 if t > 100 else 80.0, 10.0, 80_000.0, 40.0, 60.0, 700.0)
            for t in (900, 300, 2)]  # fmt: skip
    with store.transaction():
        store.add_samples(job, [*quiet, *used])
    got = {lb["card"]: v for lb, v in scrape(store)["rn50tui_card_held_idle_seconds"]}
    assert got == {"0": 900.0, "1": 0.0}


def test_each_scrape_reads_the_store_afresh(store):
    a, _ = fill(store)
    collector_store = JobStore(store.path)  # the server's own connection, as in `rn50tui metrics`
    try:
        assert scrape(collector_store)["rn50tui_job_train_loss"][0][1] == 1.25
        store.update_job(a, loss=0.5)
        assert scrape(collector_store)["rn50tui_job_train_loss"][0][1] == 0.5
        store.update_job(a, status="completed")
        assert scrape(collector_store)["rn50tui_job_train_loss"] == []  # a finished job drops out
    finally:
        collector_store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics_cmd(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rn50tui", "--db", str(db), "metrics", *args]


def test_the_endpoint_serves_the_store_on_loopback(store, tmp_path):
    fill(store)
    port = free_port()
    proc = subprocess.Popen(metrics_cmd(store.path, "--listen", f"127.0.0.1:{port}"), env=engine_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline, body = time.monotonic() + 60, None
        while body is None and time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                assert proc.poll() is None, proc.communicate()[1]
                time.sleep(0.2)
        assert body is not None and 'rn50tui_job_train_loss{executor="local",job="1"' in body
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_another_address_needs_allow_remote_and_a_bad_one_is_a_usage_error(store):
    out = subprocess.run(metrics_cmd(store.path, "--listen", "0.0.0.0:9"), env=engine_env(), capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 1 and "--allow-remote" in out.stderr and len(out.stderr.splitlines()) == 1
    out = subprocess.run(metrics_cmd(store.path, "--listen", "localhost"), env=engine_env(), capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2 and "HOST:PORT" in out.stderr


def test_a_missing_extra_is_one_line_naming_the_pip_command():
    with pytest.raises(
        MissingExtra,
        match=r"^rn50tui metrics needs the no_such_pkg package: pip install 'rn50tui\[prometheus\]'$",
    ):
        require("no_such_pkg", "prometheus", "rn50tui metrics")
