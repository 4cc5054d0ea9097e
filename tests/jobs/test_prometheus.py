"""A real Prometheus server (Debian's `prometheus`) scrapes `rn50tui metrics` while a real job runs, and its
HTTP API returns the job's series: the endpoint works with the server people run, not just our parser."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Optional

import pytest

from rn50tui.jobs.core.states import Status

from .conftest import TWO_TINY_EPOCHS, cli_env, wait_for

pytestmark = pytest.mark.prometheus

PROMETHEUS = shutil.which("prometheus") or (
    "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
)
TINY = TWO_TINY_EPOCHS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(port: int, promql: str) -> Optional[list[dict[str, Any]]]:
    """The instant vector Prometheus answers for `promql`, or None while it cannot answer."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        body = json.loads(urllib.request.urlopen(url, timeout=5).read())
    except OSError:
        return None
    return body["data"]["result"] if body.get("status") == "success" else None


def start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:  # a file: a full pipe would block the server
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=cli_env())


def stop(proc: Optional[subprocess.Popen]) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(
    PROMETHEUS is None,
    reason="no prometheus binary (Debian: apt-get install prometheus; .ci/install-prometheus)",
)
@pytest.mark.timeout(600)
def test_prometheus_scrapes_a_running_job_and_returns_its_series(jm, tmp_path, monkeypatch):
    pytest.importorskip("prometheus_client", reason="rn50tui metrics needs prometheus-client")
    monkeypatch.setenv("RN50TUI_TEST_HANG_AFTER_ITERS", "3")  # the job stays running after 3 iterations
    monkeypatch.setenv("RN50TUI_STALL_WARMUP_S", "600")
    job = jm.submit(preset="demo", name="prom demo", engine_flags=TINY)
    exporter_port, prom_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: rn50tui\n    honor_labels: true\n"  # keep our `job` label
        f"    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n"
    )
    exporter = server = None
    try:
        exporter = start([sys.executable, "-m", "rn50tui", "--db", str(jm.db_path), "metrics", "--listen",
                          f"127.0.0.1:{exporter_port}"], tmp_path / "exporter.log")  # fmt: skip
        server = start([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}"], tmp_path / "prometheus.log")  # fmt: skip
        wait_for(lambda: jm.get_job(job.id).iteration and jm.get_job(job.id).ips, 300, 0.5,
                 "the job's first training window in the store")  # fmt: skip
        ips = wait_for(lambda: query(prom_port, f'rn50tui_job_images_per_second{{job="{job.id}"}}'), 120, 0.5,
                       "Prometheus to scrape the job's throughput")  # fmt: skip
        assert ips[0]["metric"]["name"] == "prom demo" and ips[0]["metric"]["kind"] == "cpu"
        assert float(ips[0]["value"][1]) > 0
        running = wait_for(lambda: query(prom_port, 'rn50tui_jobs{status="running"}'), 60, 0.5, "the counts")
        assert float(running[0]["value"][1]) == 1
        epoch = query(prom_port, f'rn50tui_job_epoch{{job="{job.id}"}}')
        assert epoch and float(epoch[0]["value"][1]) == 1
        progress = query(prom_port, f'rn50tui_job_progress_ratio{{job="{job.id}"}}')
        assert progress and 0 < float(progress[0]["value"][1]) < 1
        wait = query(prom_port, f'rn50tui_job_data_wait_ratio{{job="{job.id}"}}')
        assert wait and 0 <= float(wait[0]["value"][1]) <= 1
        holder = wait_for(lambda: query(prom_port, f'rn50tui_card_info{{job="{job.id}"}}'), 60, 0.5,
                          "the job's sampled card")  # fmt: skip
        assert holder[0]["metric"]["kind"] == "cpu" and holder[0]["metric"]["card"] == "0"
        assert jm.get_job(job.id).status is Status.RUNNING  # the endpoint changed nothing
    finally:
        stop(server)
        stop(exporter)
        jm.cancel(job.id, wait=False)
